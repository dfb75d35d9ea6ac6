"""Whole builds against the independent naive implementation of the docs' definitions (tests/naive.py)."""
import numpy as np
import pytest

import simmine
from conftest import BACKENDS, METRICS, load_weak, random_rows, write_parquet, stable_seed
from naive import anchors_from_rows, mine

SELECTIONS = [
    dict(alpha=0.2),
    dict(alpha=0.05, alpha_scope="global"),
    dict(alpha=0.3, alpha_scope="global"),
    dict(k=3),
    dict(min_sim=0.25),
    dict(min_sim=0.0),
    dict(k=4, max_per_anchor=2),
    dict(alpha=0.5, alpha_scope="global", max_per_anchor=3),
]


def _compare(weak, strong, want_weak, want_strong, metric):
    assert [s.tolist() for s in strong] == want_strong
    for i, ((nbr, sc), (wn, ws)) in enumerate(zip(weak, want_weak)):
        if metric == "tfidf":  # summation order differs from the naive code: compare up to 1e-6 near-ties
            assert len(nbr) == len(wn), i
            np.testing.assert_allclose(sc, ws, atol=1e-6)
        else:
            assert nbr.tolist() == wn, i
            assert sc.tolist() == pytest.approx(ws, abs=1e-6), i


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_build_matches_naive(tmp_path, backend, metric, sel):
    rng = np.random.default_rng(stable_seed(metric, sel))
    rows = random_rows(rng)
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = simmine.build(input=path, out=str(tmp_path / "out"), metric=metric, backend=backend, quiet=True, **sel)
    anchors, skipped = anchors_from_rows(rows)
    want_weak, want_strong, tau = mine(anchors, metric, **sel)
    weak, strong = load_weak(out)
    assert len(weak) == len(anchors)
    assert simmine.open(out).manifest["skipped"] == skipped
    _compare(weak, strong, want_weak, want_strong, metric)
    if sel.get("alpha_scope") == "global" and metric != "tfidf":
        got = simmine.open(out).manifest["tau"]
        assert (got is None and tau is None) or got == pytest.approx(float(tau), abs=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_bucketed_build_matches_naive(tmp_path, backend, metric):
    rng = np.random.default_rng(7)
    rows = random_rows(rng, n_users=30, with_city=True)
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=True)
    for sel in (dict(alpha=0.25), dict(alpha=0.1, alpha_scope="global"), dict(k=2)):
        out = simmine.build(input=path, out=str(tmp_path / "out"), metric=metric, backend=backend,
                            bucket_by="city", quiet=True, **sel)
        anchors, _ = anchors_from_rows(rows, buckets=lambda r: r[3])
        want_weak, want_strong, _ = mine(anchors, metric, **sel)
        weak, strong = load_weak(out)
        _compare(weak, strong, want_weak, want_strong, metric)
        seqs = simmine.open(out).sequences()
        assert seqs.column("bucket").to_pylist() == [a["bucket"] for a in anchors]


@pytest.mark.parametrize("split,compare,max_len", [("none", "history", 50), ("loo", "full", 3), ("none", "full", 4)])
def test_split_compare_maxlen_match_naive(tmp_path, split, compare, max_len):
    rng = np.random.default_rng(3)
    rows = random_rows(rng)
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = simmine.build(input=path, out=str(tmp_path / "out"), metric="levenshtein", k=3, split=split,
                        compare=compare, max_len=max_len, quiet=True)
    anchors, skipped = anchors_from_rows(rows, split=split, max_len=max_len, compare=compare)
    want_weak, want_strong, _ = mine(anchors, "levenshtein", k=3)
    weak, strong = load_weak(out)
    _compare(weak, strong, want_weak, want_strong, "levenshtein")
    seqs = simmine.open(out).sequences()
    assert seqs.column("history").to_pylist() == [a["history"] for a in anchors]
    assert seqs.column("target").to_pylist() == [a["target"] for a in anchors]
    assert seqs.column("user_id").to_pylist() == [a["user"] for a in anchors]
    assert simmine.open(out).manifest["skipped"] == skipped


@pytest.mark.parametrize("ngram_n", [1, 3])
def test_ngram_sizes(tmp_path, ngram_n):
    rng = np.random.default_rng(11)
    rows = random_rows(rng, n_items=5)
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = simmine.build(input=path, out=str(tmp_path / "out"), metric="ngram", ngram_n=ngram_n, k=5, quiet=True)
    anchors, _ = anchors_from_rows(rows)
    want_weak, want_strong, _ = mine(anchors, "ngram", k=5, n=ngram_n)
    weak, strong = load_weak(out)
    _compare(weak, strong, want_weak, want_strong, "ngram")


def test_manifest_records_the_routes_taken(tmp_path):
    """The rows the C++ core scored per route: the sweep for Jaccard prefix anchors, the inverted index for
    user anchors, the prefix filter for a high threshold."""
    from simmine.backends import available_backends

    if "cpp" not in available_backends():
        pytest.skip("the C++ core is not built")
    cases = [({"k": 5, "anchors": "prefix"}, "prefix sweep"), ({"k": 5}, "inverted index + bitmaps"),
             ({"min_sim": 0.5}, "prefix filter"), ({"k": 5, "metric": "levenshtein"}, "bit-parallel alignment")]
    for kw, route in cases:
        out = simmine.build(out=str(tmp_path / "o"), backend="cpp", quiet=True, **kw)
        routes = simmine.open(out).manifest["routes"]
        assert list(routes) == [route] and routes[route] >= 3000
    log = tmp_path / "small.txt"
    log.write_text("".join(f"{u} {u % 7} {u % 5 + 10} {u % 3 + 20} {u % 4 + 30} 40\n" for u in range(40)))
    out = simmine.build(str(log), out=str(tmp_path / "p"), backend="python", k=5, quiet=True)
    assert simmine.open(out).manifest["routes"] is None
