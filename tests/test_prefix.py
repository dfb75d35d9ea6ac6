"""Prefix anchors (docs/input.md): every t >= 1 of T an anchor, same-user exclusion, strong groups, positions,
on every metric, selection, method, backend and route, against the naive implementation (tests/naive.py)."""
import glob
import json
import os

import numpy as np
import pyarrow as pa
import pytest

import simmine
from conftest import BACKENDS, METRICS, load_weak, random_rows, write_parquet, stable_seed
from naive import anchors_from_rows, mine

SELECTIONS = [dict(alpha=0.2), dict(alpha=0.05, alpha_scope="global"), dict(k=3), dict(min_sim=0.25),
              dict(k=4, max_per_anchor=2)]


def _check(out, anchors, metric, same_user, **sel):
    want_weak, want_strong, tau = mine(anchors, metric, same_user=same_user, **sel)
    weak, strong = load_weak(out)
    assert len(weak) == len(anchors)
    assert [s.tolist() for s in strong] == want_strong
    for i, ((nbr, sc), (wn, ws)) in enumerate(zip(weak, want_weak)):
        if metric == "tfidf":  # summation order differs from the naive code
            assert len(nbr) == len(wn), i
            np.testing.assert_allclose(sc, ws, atol=1e-6)
        else:
            assert nbr.tolist() == wn, i
            assert sc.tolist() == pytest.approx(ws, abs=1e-6), i
    pos = simmine.open(out)
    table = pos.sequences()  # derived from users.arrow on read: exactly what was compared
    assert table.column("history").to_pylist() == [a["history"] for a in anchors]
    assert table.column("target").to_pylist() == [a["target"] for a in anchors]
    assert table.column("position").to_pylist() == [a["position"] for a in anchors]
    assert [pos.history(i).to_pylist() for i in range(len(anchors))] == [a["history"] for a in anchors]
    m = pos.manifest
    assert m["pairs"]["strong_kept"] == sum(len(s) for s in want_strong)
    users = [a["user"] for a in anchors]
    pairs = sum(1 for i in range(len(anchors)) for j in range(i + 1, len(anchors))
                if anchors[i]["bucket"] == anchors[j]["bucket"] and (same_user == "keep" or users[i] != users[j]))
    assert m["pairs"]["compared"] == pairs
    if sel.get("alpha_scope") == "global" and metric != "tfidf":
        assert (m["tau"] is None and tau is None) or m["tau"] == pytest.approx(float(tau), abs=0)


@pytest.mark.parametrize("split,compare,max_len", [("loo", "history", 50), ("none", "full", 3), ("loo", "history", 2)])
def test_prefix_anchors_rows_and_positions(tmp_path, split, compare, max_len):
    rows = random_rows(np.random.default_rng(5), with_city=True)
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=True)
    out = simmine.build(input=path, out=str(tmp_path / "o"), anchors="prefix", k=2, split=split, compare=compare,
                        max_len=max_len, bucket_by="city", quiet=True)
    anchors, skipped = anchors_from_rows(rows, split, max_len, compare, buckets=lambda r: r[3], anchors="prefix")
    seqs = simmine.open(out).sequences()
    for col, key in (("user_id", "user"), ("target", "target"), ("history", "history"), ("bucket", "bucket"),
                     ("position", "position")):
        assert seqs.column(col).to_pylist() == [a[key] for a in anchors], col
    m = simmine.open(out).manifest
    assert m["skipped"] == skipped and m["params"]["anchors"] == "prefix" and m["params"]["same_user"] == "exclude"
    user_out = simmine.build(input=path, out=str(tmp_path / "u"), k=2, split=split, compare=compare,
                             max_len=max_len, quiet=True)
    user_anchors, _ = anchors_from_rows(rows, split, max_len, compare)  # user anchors: position |T| - 1
    assert simmine.open(user_out).positions().tolist() == [a["position"] for a in user_anchors]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_prefix_builds_match_naive(tmp_path, backend, metric, sel):
    rng = np.random.default_rng(stable_seed(metric, sel))
    rows = random_rows(rng, n_users=12, max_len=9)
    path = write_parquet(tmp_path / "log.parquet", rows)
    anchors, _ = anchors_from_rows(rows, anchors="prefix")
    for same_user in ("exclude", "keep"):
        out = simmine.build(input=path, out=str(tmp_path / same_user), metric=metric, backend=backend,
                            anchors="prefix", same_user=same_user, quiet=True, **sel)
        _check(out, anchors, metric, same_user, **sel)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_bucketed_full_maxlen_match_naive(tmp_path, backend):
    rows = random_rows(np.random.default_rng(8), n_users=15, with_city=True)
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=True)
    anchors, _ = anchors_from_rows(rows, compare="full", max_len=3, buckets=lambda r: r[3], anchors="prefix")
    for metric in METRICS:
        out = simmine.build(input=path, out=str(tmp_path / metric), metric=metric, backend=backend,
                            anchors="prefix", compare="full", max_len=3, bucket_by="city", alpha=0.3, quiet=True)
        _check(out, anchors, metric, "exclude", alpha=0.3)


def test_prefix_embeddings_match_naive(tmp_path):
    rows = random_rows(np.random.default_rng(9), n_users=10)
    path = write_parquet(tmp_path / "log.parquet", rows)
    anchors, _ = anchors_from_rows(rows, anchors="prefix")
    vectors = np.random.default_rng(1).integers(-2, 3, size=(len(anchors), 4)).astype(np.float64)
    emb = tmp_path / "e.npy"
    np.save(emb, vectors)
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="embedding", embeddings=str(emb),
                        anchors="prefix", k=3, quiet=True)
    want_weak, want_strong, _ = mine(anchors, "embedding", k=3, embeddings=vectors.tolist(), same_user="exclude")
    weak, strong = load_weak(out)
    assert [w[0].tolist() for w in weak] == [w[0] for w in want_weak]
    assert [s.tolist() for s in strong] == want_strong


@pytest.mark.parametrize("method", ["minhash", "faiss"])
def test_exhaustive_approximate_equals_exact(tmp_path, method):
    if method == "faiss":
        pytest.importorskip("faiss")
    rows = random_rows(np.random.default_rng(4), n_users=20)
    path = write_parquet(tmp_path / "log.parquet", rows)
    exact = simmine.build(input=path, out=str(tmp_path / "e"), anchors="prefix", k=3, quiet=True)
    n = simmine.open(exact).manifest["n_anchors"]
    banding = {"bands": 64, "rows": 1} if method == "minhash" else {}  # on this log every exact pair collides
    approx = simmine.build(input=path, out=str(tmp_path / "a"), anchors="prefix", k=3, method=method,
                           candidates=n, quiet=True, **banding)
    a, b = load_weak(exact), load_weak(approx)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a[0], b[0]))
    assert simmine.open(approx).manifest["recall"]["value"] == 1.0


def _tables(path):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(os.path.join(path, "*.arrow")))}


@pytest.mark.parametrize("kw", [dict(metric="jaccard", k=3), dict(metric="tfidf", alpha=0.1),
                                dict(metric="jaccard", alpha=0.05, alpha_scope="global", bucket_by="city"),
                                dict(metric="levenshtein", min_sim=0.3, same_user="keep"),
                                dict(metric="ngram", k=3, bucket_by="city")], ids=str)
def test_prefix_routes_are_byte_identical(tmp_path, kw):
    """In memory, streamed (--memory-gb), sharded: the same tables."""
    rows = random_rows(np.random.default_rng(6), n_users=60, with_city=True)
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=True)
    mem = simmine.build(input=path, out=str(tmp_path / "mem"), anchors="prefix", quiet=True, **kw)
    from simmine.backends import cpp

    swept = cpp.stats["sweep_rows"]
    low = simmine.build(input=path, out=str(tmp_path / "low"), anchors="prefix", quiet=True, memory_gb=0.00002, **kw)
    assert _tables(mem) == _tables(low)
    assert simmine.open(low).manifest["streamed"]["partitions"] > 1
    if "cpp" in BACKENDS and kw.get("metric", "jaccard") in ("jaccard", "ngram", "tfidf") and "backend" not in kw:
        assert cpp.stats["sweep_rows"] > swept  # streamed groups slide the sweep as the in-memory build does
    for key in ("pairs", "strong_groups", "tau", "n_anchors", "skipped"):
        assert simmine.open(mem).manifest[key] == simmine.open(low).manifest[key], key
    shards = simmine.build(input=path, out=str(tmp_path / "sh"), anchors="prefix", shard_rows=40, quiet=True, **kw)
    a, b = load_weak(mem), load_weak(shards)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a[0], b[0]))
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))


@pytest.fixture(scope="module")
def prefix_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("p")
    rows = random_rows(np.random.default_rng(2), n_users=40, n_items=4, max_len=14)  # big strong groups
    path = write_parquet(d / "log.parquet", rows)
    return simmine.build(input=path, out=str(d / "o"), anchors="prefix", k=3, quiet=True), rows


def test_strong_groups_are_o_n_and_exclude_the_user(prefix_build):
    out, rows = prefix_build
    pos = simmine.open(out)
    anchors, _ = anchors_from_rows(rows, anchors="prefix")
    groups = pa.ipc.open_file(os.path.join(out, "groups.arrow")).read_all().column("members").combine_chunks()
    assert len(groups.values) == len(pos)  # every anchor in exactly one group
    for i in range(len(pos)):
        want = [j for j, a in enumerate(anchors) if a["target"] == anchors[i]["target"]
                and a["user"] != anchors[i]["user"]]
        assert pos.strong(i).tolist() == want
    assert pos.strong_counts().tolist() == [len(pos.strong(i)) for i in range(len(pos))]
    off, nbr = pos.gather_strong(np.array([5, 0, 5]))
    assert nbr[off[0]:off[1]].tolist() == pos.strong(5).tolist() == nbr[off[2]:off[3]].tolist()


def test_sampler_draws_uniformly_from_the_group_less_the_user(prefix_build):
    torch = pytest.importorskip("torch")
    from simmine.torch import PositiveSampler

    out, _ = prefix_build
    pos = simmine.open(out)
    anchor = int(np.argmax(pos.strong_counts()))
    strong = pos.strong(anchor).tolist()
    sampler = PositiveSampler(pos, seed=3)
    counts = {}
    for epoch in range(3000):
        sampler.set_epoch(epoch)
        got = int(sampler.sample(torch.tensor([anchor])).strong[0])
        counts[got] = counts.get(got, 0) + 1
    assert set(counts) == set(strong)
    expected = 3000 / len(strong)
    assert sum((c - expected) ** 2 / expected for c in counts.values()) < len(strong) + 5 * np.sqrt(2 * len(strong))
    batch = sampler.sample(torch.arange(len(pos)))
    for i in range(len(pos)):
        assert bool(batch.strong_mask[i]) == bool(len(pos.strong(i)))
        assert int(batch.strong[i]) in (pos.strong(i).tolist() or [i])


def test_seq_ids_from_user_and_position(prefix_build):
    out, rows = prefix_build
    pos = simmine.open(out)
    seqs = pos.sequences()
    users, positions = seqs.column("user_id").to_pylist(), pos.positions()
    assert pos.seq_ids(users, positions).tolist() == list(range(len(pos)))
    assert pos.seq_ids([users[0], users[0], "nobody"], [0, 10**6, 1]).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("version", [1, 2])
def test_older_formats_still_open(prefix_build, tmp_path, version):
    """A prefix build as format 2 wrote it (every history in sequences.arrow) and as format 1 (also strong
    positives as lists per anchor) reads, samples and verifies as the current format does."""
    import shutil

    from simmine.io import large_list, sha256_file, write_table

    out, _ = prefix_build
    old = tmp_path / "old"
    shutil.copytree(out, old)
    pos = simmine.open(out)
    m = json.loads((old / "manifest.json").read_text())
    write_table(str(old / "sequences.arrow"), pos.sequences())
    for name in ("users.arrow", "vocabulary.arrow"):
        os.remove(old / name)
        del m["files"][name]
    if version == 1:
        off, nbr = pos.gather_strong(np.arange(len(pos)))
        write_table(str(old / "strong.arrow"), pa.table({"neighbors": large_list(off, nbr, pa.uint32())}))
        os.remove(old / "groups.arrow")
        del m["files"]["groups.arrow"]
    m["format_version"] = version
    for name in m["files"]:
        m["files"][name]["sha256"] = sha256_file(str(old / name))
    (old / "manifest.json").write_text(json.dumps(m))
    reopened = simmine.open(str(old))
    assert reopened.sequences().equals(pos.sequences())
    assert [reopened.history(i).to_pylist() for i in range(0, len(pos), 7)] == \
        [pos.history(i).to_pylist() for i in range(0, len(pos), 7)]
    assert [reopened.strong(i).tolist() for i in range(len(pos))] == [pos.strong(i).tolist() for i in range(len(pos))]
    u = np.linspace(0, 0.999, len(pos))
    assert np.array_equal(reopened.draw_strong(np.arange(len(pos)), u)[0], pos.draw_strong(np.arange(len(pos)), u)[0])
    from simmine.report import summary_lines, verify

    assert verify(str(old), sample=5) == []
    assert any("strong" in line for line in summary_lines(str(old)))


def test_prefix_verify_and_inspect(prefix_build):
    from simmine.report import summary_lines, verify

    out, _ = prefix_build
    assert verify(out, sample=15) == []
    assert any("one per prefix (a user's own never paired)" in line for line in summary_lines(out))


@pytest.mark.parametrize("flags,message", [(["--anchors", "suffix"], "unknown --anchors 'suffix'"),
                                           (["--anchors", "prefix", "--same-user", "maybe"],
                                            "unknown --same-user 'maybe'")])
def test_bad_anchor_flags(tmp_path, capsys, flags, message):
    from simmine.cli import main

    assert main(["build", "--k", "3", "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_output_size_ignores_strong_group_sizes(tmp_path):
    """One target for everyone: Σc(c−1) strong pairs, but O(N) bytes, so the estimate does not refuse it."""
    rows = [(f"u{u}", item, t) for u in range(300) for t, item in enumerate([1, 2, 3, 4, 5, 6])]
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = simmine.build(input=path, out=str(tmp_path / "o"), anchors="prefix", k=2, max_output_gb=0.001,
                        split="none", quiet=True)
    m = simmine.open(out).manifest
    assert m["pairs"]["strong_kept"] == 5 * 300 * 299 and m["files"]["groups.arrow"]["bytes"] < 20_000


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the sweep is the C++ core's")
@pytest.mark.parametrize("metric", ["jaccard", "ngram", "tfidf"])
@pytest.mark.parametrize("seed", range(6))
def test_prefix_sweep_equals_the_reference(tmp_path, seed, metric):
    """The C++ core's sweeps over nested windows (long users, repeated items, sliding windows, buckets that
    make windows jump, both same-user modes, small and large k) against the reference backend; for n-grams
    the windows of the gram stream, empty where a history is shorter than n; for TF-IDF term counts above 1
    and many tied scores (small vocabularies)."""
    from simmine.backends import cpp

    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", int(rng.integers(0, 12 + 8 * seed)), t, f"c{int(rng.integers(0, 1 + seed % 3))}")
            for u in range(30) for t in range(int(rng.integers(2, 45)))]
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=True)
    kw = dict(anchors="prefix", max_len=int(rng.choice([3, 8, 50])), k=int(rng.choice([1, 4, 40])),
              same_user="keep" if seed % 2 else "exclude", bucket_by="city" if seed % 3 else None,
              compare="full" if seed == 4 else "history", metric=metric)
    if metric == "ngram":
        kw["ngram_n"] = 1 + seed % 3
    before = cpp.stats["sweep_rows"]
    fast = simmine.build(input=path, out=str(tmp_path / "cpp"), backend="cpp", quiet=True, **kw)
    assert cpp.stats["sweep_rows"] > before
    slow = simmine.build(input=path, out=str(tmp_path / "ref"), backend="python", quiet=True, **kw)
    a, b = load_weak(fast), load_weak(slow)
    for (na, sa), (nb, sb) in zip(a[0], b[0]):
        assert na.tolist() == nb.tolist() and sa.tolist() == sb.tolist()


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the sweep is the C++ core's")
@pytest.mark.parametrize("min_sim", [0.05, 0.3])
def test_tfidf_sweep_with_weightless_items_and_thresholds(tmp_path, min_sim):
    """An item in every history weighs 0 (it sits in the sweep's windows as a gap); users whose histories
    are nothing else have a zero vector and no neighbours; --min-sim with top-k and alpha's per-anchor k
    take the sweep as well, equal to the reference backend."""
    from simmine.backends import cpp

    rng = np.random.default_rng(11)
    rows = []
    for u in range(25):
        items = [0] + [int(rng.integers(1, 9)) if u % 5 else 0 for _ in range(int(rng.integers(3, 30)))]
        rows += [(f"u{u}", x, t) for t, x in enumerate(items)]
    path = write_parquet(tmp_path / "log.parquet", rows)
    for sel in (dict(k=5), dict(min_sim=min_sim, max_per_anchor=5), dict(alpha=0.2)):
        kw = dict(anchors="prefix", metric="tfidf", max_len=12, **sel)
        before = cpp.stats["sweep_rows"]
        fast = simmine.build(input=path, out=str(tmp_path / "cpp"), backend="cpp", quiet=True, **kw)
        assert cpp.stats["sweep_rows"] > before
        slow = simmine.build(input=path, out=str(tmp_path / "ref"), backend="python", quiet=True, **kw)
        a, b = load_weak(fast), load_weak(slow)
        assert [x.tolist() for x, _ in a[0]] == [x.tolist() for x, _ in b[0]]
        assert [x.tolist() for _, x in a[0]] == [x.tolist() for _, x in b[0]]


def test_prefix_outputs_store_each_training_sequence_once(tmp_path):
    """docs/output.md: a prefix build writes each user's training sequence once (users.arrow, item codes of
    vocabulary.arrow) and every anchor as (user, position, window); its files grow with the log, not with
    the sum of the histories."""
    rows = [(f"u{u}", (u * 7 + t) % 40, t) for u in range(30) for t in range(60)]
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = simmine.build(input=path, out=str(tmp_path / "o"), anchors="prefix", k=3, quiet=True)
    pos = simmine.open(out)
    users = pa.ipc.open_file(os.path.join(out, "users.arrow")).read_all()
    assert users.column("user_id").to_pylist() == [f"u{u}" for u in range(30)]
    assert sum(len(s) for s in users.column("sequence").to_pylist()) == 30 * 58  # T: all but the last two
    seqs = pa.ipc.open_file(os.path.join(out, "sequences.arrow")).read_all()
    assert seqs.column_names == ["seq_id", "user", "position", "start", "end", "bucket"]
    assert len(pos) == 30 * 57 and pos.manifest["format_version"] == 3
    history_items = sum(len(h) for h in pos.sequences().column("history").to_pylist())
    assert history_items > 20 * 30 * 58  # what format 2 copied, against ...
    assert os.path.getsize(os.path.join(out, "users.arrow")) < 4 * 30 * 58 + 4096  # ... one code per item of T
