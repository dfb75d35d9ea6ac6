"""--method minhash: unbiased signatures, identical across backends, exact re-scoring, reported recall."""
import json
import os

import numpy as np
import pytest

import simmine
from conftest import BACKENDS, METRICS, NATIVE, load_weak
from simmine.approx.minhash import Limits, MinHashParams, _candidate_keys, band_runs, choose_bands
from simmine.backends import get_backend, reference
from simmine.engines.local import assemble_pairs


def _random_pair(rng, size, overlap):
    common = rng.choice(10**6, size=overlap, replace=False)
    a = np.concatenate((common, rng.integers(10**6, 2 * 10**6, size=size - overlap)))
    b = np.concatenate((common, rng.integers(2 * 10**6, 3 * 10**6, size=size - overlap)))
    return a, b, overlap / (2 * size - overlap)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signatures_identical_across_backends(backend):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, size=40)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    codes = rng.integers(0, 500, size=indptr[-1]).astype(np.int64)
    want = reference.minhash(indptr, codes, 64, 7)
    np.testing.assert_array_equal(get_backend(backend).minhash(indptr, codes, 64, 7), want)
    assert (want[lengths == 0] == 0xFFFFFFFF).all()


def test_signature_agreement_is_an_unbiased_jaccard_estimate():
    """Over many random pairs, mean(estimate − J) is within 3 standard errors of 0 (fixed seed)."""
    rng = np.random.default_rng(1)
    be = get_backend("auto")
    errors = []
    for _ in range(300):
        a, b, jac = _random_pair(rng, int(rng.integers(5, 60)), 0)
        overlap = int(rng.integers(1, len(a)))
        a, b, jac = _random_pair(rng, len(a), overlap)
        indptr = np.array([0, len(a), len(a) + len(b)], dtype=np.int64)
        sig = be.minhash(indptr, np.concatenate((a, b)).astype(np.int64), 128, int(rng.integers(0, 2**31)))
        errors.append(np.mean(sig[0] == sig[1]) - jac)
    errors = np.asarray(errors)
    assert abs(errors.mean()) < 3 * errors.std(ddof=1) / np.sqrt(len(errors))
    assert np.abs(errors).mean() < 0.06  # 128 permutations: standard error about sqrt(J(1-J)/128)


@pytest.mark.parametrize("backend", NATIVE)
def test_assemble_pairs_backend_equals_numpy(backend):
    rng = np.random.default_rng(2)
    n = 60
    key = np.unique(rng.integers(0, n, 800) * n + rng.integers(0, n, 800))
    i, j = key // n, key % n
    keep = i < j
    i, j = i[keep], j[keep]
    s = (rng.integers(0, 10, len(i)) / 10).astype(np.float32)
    k = rng.integers(0, 8, n).astype(np.int64)
    want = assemble_pairs(n, i, j, s, k, 0.2)
    got = assemble_pairs(n, i, j, s, k, 0.2, get_backend(backend))
    for w, g in ((want.offsets, got.offsets), (want.neighbors, got.neighbors), (want.scores, got.scores)):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein"])
def test_score_pairs_equals_reference(backend, metric):
    from test_backends import _seqs
    from simmine.metrics import prepare_features, resolve_metric

    rng = np.random.default_rng(3)
    hists = [rng.integers(0, 12, size=int(rng.integers(1, 80))).tolist() for _ in range(30)]
    tile = prepare_features(_seqs(hists), resolve_metric(metric)).tile(np.arange(30))
    row_ids = np.array([0, 4, 9, 29], dtype=np.int64)
    ptr = np.array([0, 5, 7, 12, 15], dtype=np.int64)
    cols = rng.integers(0, 30, size=15).astype(np.int32)
    np.testing.assert_array_equal(get_backend(backend).score_pairs(tile, row_ids, ptr, cols),
                                  reference.score_pairs(tile, row_ids, ptr, cols))


def test_choose_bands():
    b, r = choose_bands(128, 0.5)
    assert b * r <= 128 and 1 - (1 - 0.5 ** r) ** b >= 0.95
    assert 1 - (1 - 0.5 ** (r + 1)) ** (128 // (r + 1)) < 0.95  # the most selective that still qualifies


def _small_signatures(rng, m=70, num_perm=24):
    sig = rng.integers(0, 3, size=(m, num_perm)).astype(np.uint32)
    sig[[5, 17]] = 0xFFFFFFFF  # empty sets share nothing
    return sig


def _band_tuples(sig, bands, rows):
    return [[tuple(sig[a, t * rows:(t + 1) * rows].tolist()) for t in range(bands)] for a in range(len(sig))]


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_band_runs_group_equal_band_keys(rows):
    rng = np.random.default_rng(4)
    sig = _small_signatures(rng)
    bands = sig.shape[1] // rows
    runs = band_runs(sig, bands, rows)
    tuples = _band_tuples(sig, bands, rows)
    empty = (sig == 0xFFFFFFFF).all(axis=1)
    for a in range(len(sig)):
        for t in range(bands):
            same = [j for j in range(len(sig)) if not empty[j] and tuples[j][t] == tuples[a][t]]
            r = runs.run_of[a, t]
            if empty[a] or len(same) < 2:
                assert r == -1
            else:
                assert runs.run_members[runs.run_ptr[r]:runs.run_ptr[r + 1]].tolist() == same


@pytest.mark.parametrize("backend", ["python", *NATIVE])
def test_band_candidates_count_shared_bands(backend):
    """Each anchor's candidates are the anchors sharing a band, with how many; a limit keeps the most-sharing
    ones, ties kept."""
    rng = np.random.default_rng(5)
    sig = _small_signatures(rng)
    bands, rows = 12, 2
    runs = band_runs(sig, bands, rows)
    tuples = _band_tuples(sig, bands, rows)
    empty = (sig == 0xFFFFFFFF).all(axis=1)
    anchors = rng.permutation(len(sig))[:40].astype(np.int64)
    limits = rng.integers(0, 6, size=len(anchors)).astype(np.int64)
    ptr, nbr, shared = get_backend(backend).band_candidates(runs.run_of, runs.run_ptr, runs.run_members, anchors,
                                                            limits)
    for x, a in enumerate(anchors.tolist()):
        count = {j: sum(tuples[j][t] == tuples[a][t] for t in range(bands))
                 for j in range(len(sig)) if j != a and not empty[j] and not empty[a]}
        count = {j: c for j, c in count.items() if c}
        if limits[x] and len(count) > limits[x]:
            floor = sorted(count.values(), reverse=True)[limits[x] - 1]
            count = {j: c for j, c in count.items() if c >= floor}
        assert nbr[ptr[x]:ptr[x + 1]].tolist() == sorted(count)
        assert shared[ptr[x]:ptr[x + 1]].tolist() == [count[j] for j in sorted(count)]


def test_candidate_pairs_stay_in_buckets():
    from simmine.engines.local import make_plan

    rng = np.random.default_rng(6)
    n = 90
    lengths = rng.integers(1, 6, size=n)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    features = type("F", (), {"indptr": indptr, "indices": rng.integers(0, 8, size=indptr[-1]), "n": n})()
    bucket = rng.integers(0, 3, size=n).astype(np.int32)
    plan = make_plan(n, bucket)
    limits = Limits(False, None, False, np.zeros(n, np.int64), 0, [])
    keys = np.concatenate(list(_candidate_keys(features, plan, None, get_backend("auto"), MinHashParams(16), 8, 2,
                                               limits, np.zeros(0, np.int64))))
    i, j = keys // n, keys % n
    assert len(keys) and (i < j).all() and (bucket[i] == bucket[j]).all()


@pytest.mark.parametrize("method", ["minhash", "faiss"])
@pytest.mark.parametrize("sel", [dict(k=5), dict(alpha=0.05), dict(min_sim=0.3)], ids=str)
def test_rescoring_in_small_batches_equals_one_batch(tmp_path, monkeypatch, method, sel):
    """Candidates folded into the selection batch by batch (memory O(batch + kept)) give the same output
    as one batch of every candidate."""
    import simmine.approx.minhash as mh

    if method == "faiss":
        pytest.importorskip("faiss")
    kw = dict(method=method, quiet=True, bucket_by="city", **sel)
    one = load_weak(simmine.build(out=str(tmp_path / "one"), **kw))[0]
    monkeypatch.setattr(mh.batched, "__defaults__", (20_000,))  # about 50 batches on the demo log
    many = load_weak(simmine.build(out=str(tmp_path / "many"), **kw))[0]
    assert [(a.tolist(), b.tolist()) for a, b in one] == [(a.tolist(), b.tolist()) for a, b in many]


@pytest.mark.parametrize("sel", [dict(k=10), dict(alpha=0.01), dict(min_sim=0.3)], ids=str)
@pytest.mark.parametrize("metric", ["jaccard", "levenshtein"])
def test_minhash_build_rescored_exactly_with_recall(tmp_path, sel, metric):
    approx = simmine.build(metric=metric, method="minhash", out=str(tmp_path / "a"), quiet=True, recall_sample=300,
                           **sel)
    exact = simmine.build(metric=metric, out=str(tmp_path / "e"), quiet=True, **sel)
    m = json.load(open(os.path.join(approx, "manifest.json")))
    assert m["method"] == "minhash" and m["recall"]["sample"] == 300 and 0 <= m["recall"]["value"] <= 1
    weak_a, strong_a = load_weak(approx)
    weak_e, strong_e = load_weak(exact)
    assert [s.tolist() for s in strong_a] == [s.tolist() for s in strong_e]
    found = wanted = 0
    for (na, sa), (ne, se) in zip(weak_a, weak_e):
        exact_score = dict(zip(ne.tolist(), se.tolist()))
        assert np.all(np.diff(sa) <= 0) and len(na) <= len(ne)
        if "min_sim" in sel:  # a threshold join: every pair found is an exact pair with its exact score
            assert all(exact_score[j] == s for j, s in zip(na.tolist(), sa.tolist()))
        found += sum(j in exact_score for j in na.tolist())
        wanted += len(ne)
    assert m["recall"]["value"] >= 0.8 and found / wanted >= 0.7


def test_minhash_rejects_global_alpha(tmp_path):
    with pytest.raises(simmine.InputError, match="global"):
        simmine.build(method="minhash", alpha=0.1, alpha_scope="global", out=str(tmp_path / "o"), quiet=True)


def test_calibrated_candidates_reach_the_recall_target_on_a_zipf_log(tmp_path):
    """Top-10 neighbours of a Zipf log are barely more similar than random pairs; the calibrated number of
    most-colliding candidates per anchor still finds 90% of them, checked against an exact build."""
    from simmine.synth import synth

    log = str(tmp_path / "zipf.parquet")
    synth(log, users=3000, items=2000, mean_len=20, seed=3)
    kw = dict(input=log, k=10, quiet=True)
    exact = load_weak(simmine.build(out=str(tmp_path / "e"), **kw))[0]
    found = {}
    for candidates in (None, 12):
        out = simmine.build(out=str(tmp_path / f"a{candidates}"), method="minhash", num_perm=256,
                            candidates=candidates, recall_sample=300, **kw)
        approx = load_weak(out)[0]
        hits = sum(min(len(ne), int(np.sum(sa >= se.min()))) for (_, sa), (ne, se) in zip(approx, exact) if len(ne))
        found[candidates] = hits / sum(len(ne) for ne, _ in exact)
        m = json.load(open(os.path.join(out, "manifest.json")))["approximate"]
        assert m["candidates"] == "lsh-collisions" and (m["bands"], m["rows"]) == (128, 2)
        assert m["kept_per_anchor"] == (12 if candidates else m["kept_per_anchor"])
    assert found[None] >= 0.9 and found[12] < found[None]


@pytest.mark.parametrize("backend", NATIVE)
def test_minhash_builds_identical_across_backends(tmp_path, backend):
    """Signatures, band counts, calibration and re-scoring agree bit for bit with the reference backend."""
    kw = dict(method="minhash", k=10, bucket_by="city", quiet=True)
    want = simmine.build(out=str(tmp_path / "python"), backend="python", **kw)
    got = simmine.build(out=str(tmp_path / backend), backend=backend, **kw)
    for name in ("weak.arrow", "strong.arrow"):
        assert open(os.path.join(got, name), "rb").read() == open(os.path.join(want, name), "rb").read()


@pytest.mark.planner
@pytest.mark.parametrize("metric", METRICS)
def test_buckets_where_exact_search_is_cheaper_are_searched_exactly(tmp_path, metric):
    """On a small bucketed log the cost model sends every bucket to exact search: the lists equal an exact
    build's byte for byte, recall is 1 and the manifest says why, bucket by bucket."""
    kw = dict(k=5, metric=metric, bucket_by="city", quiet=True)
    exact = simmine.build(out=str(tmp_path / "e"), **kw)
    approx = simmine.build(out=str(tmp_path / "a"), method="minhash", **kw)
    assert open(os.path.join(approx, "weak.arrow"), "rb").read() == open(os.path.join(exact, "weak.arrow"), "rb").read()
    m = json.load(open(os.path.join(approx, "manifest.json")))
    assert m["recall"]["value"] == 1.0
    a = m["approximate"]
    assert a["candidates"] == "exact" and a["exact_buckets"] == m["n_buckets"]
    assert a["exact_anchors"] == m["n_anchors"]
    assert sum(v["buckets"] for v in a["exact_why"].values()) == a["exact_buckets"]


@pytest.mark.planner
def test_exact_reason_follows_the_cost_model(monkeypatch):
    """Unreachable recall, or candidates dearer than exact search, choose exact; cheap candidates keep
    minhash. The exact cost is the cheaper of all pairs and the inverted index's Σ df²/2."""
    from simmine.approx import minhash
    from simmine.metrics import Features

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 10, size=400)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    items = np.concatenate([np.sort(rng.choice(300, size=n, replace=False)) for n in lengths]).astype(np.int32)
    features = Features("set", indptr, items)
    members = np.arange(400, dtype=np.int64)
    runs = minhash.BandRuns(np.zeros((400, 1), np.int32), np.array([0, 2, 5], np.int64), np.arange(5, dtype=np.int32))
    df = np.bincount(items, minlength=300).astype(np.float64)
    want_exact = min(minhash.PAIR_NS["set"] * 400 * 399 / 2, minhash.INCIDENCE_NS * float(df @ df) / 2) \
        + minhash.ANCHOR_NS * 400
    assert minhash.exact_cost_ns(features, members) == pytest.approx(want_exact)
    unreachable = minhash.Calibration(0.0, False, 10.0)
    assert "recall" in minhash.exact_reason(features, members, runs, unreachable)
    collisions_ns = minhash.COLLISION_NS * (2 ** 2 + 3 ** 2)
    cheap = (want_exact - collisions_ns) / minhash.LISTED_NS / 400 * 0.99  # kept candidates per anchor
    assert minhash.exact_reason(features, members, runs, minhash.Calibration(1.0, True, cheap)) is None
    dear = minhash.Calibration(1.0, True, cheap / 0.99 * 1.01)
    assert "costs more" in minhash.exact_reason(features, members, runs, dear)
