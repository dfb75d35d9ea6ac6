"""--metric embedding (exact blocked GEMM) and --method faiss (candidates re-scored exactly)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import simmine
from conftest import load_weak, random_rows, write_parquet
from naive import anchors_from_rows, cosine, mine
from simmine.backends import dense
from simmine.errors import InputError
from simmine.metrics import dense_features

SELECTIONS = [dict(k=3), dict(alpha=0.2), dict(min_sim=0.5), dict(alpha=0.1, alpha_scope="global"),
              dict(k=4, max_per_anchor=2)]


def _log_and_embeddings(tmp_path, seed, with_city=False, dims=3):
    """A random log and small-integer embeddings (many exact ties, some zero and some opposite vectors)."""
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, n_users=40, with_city=with_city)
    path = write_parquet(tmp_path / "log.parquet", rows, with_city=with_city)
    anchors, _ = anchors_from_rows(rows, buckets=(lambda r: r[3]) if with_city else None)
    emb = rng.integers(-1, 3, size=(len(anchors), dims)).astype(np.float32)
    np.save(tmp_path / "e.npy", emb)
    return path, anchors, emb, str(tmp_path / "e.npy")


@pytest.mark.parametrize("with_city", [False, True])
@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_embedding_build_matches_naive(tmp_path, sel, with_city):
    path, anchors, emb, emb_path = _log_and_embeddings(tmp_path, len(str(sel)) + with_city, with_city)
    out = simmine.build(input=path, out=str(tmp_path / "out"), metric="embedding", embeddings=emb_path,
                        bucket_by="city" if with_city else None, quiet=True, **sel)
    weak, _ = load_weak(out)
    want, _, _ = mine(anchors, "embedding", embeddings=emb.tolist(), **sel)
    for i, ((nbr, sc), (wn, ws)) in enumerate(zip(weak, want)):
        assert nbr.tolist() == wn, i
        assert sc.tolist() == pytest.approx(ws, abs=1e-6), i
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["backend"] == "blas" and manifest["input"]["embeddings"]["sha256"]


def test_embedding_shards_equal_one_file(tmp_path):
    path, _, _, emb_path = _log_and_embeddings(tmp_path, 9)
    kw = dict(input=path, metric="embedding", embeddings=emb_path, alpha=0.1, alpha_scope="global", quiet=True)
    one = load_weak(simmine.build(out=str(tmp_path / "one"), **kw))[0]
    sharded = load_weak(simmine.build(out=str(tmp_path / "sharded"), shard_rows=7, **kw))[0]
    assert [(n.tolist(), s.tolist()) for n, s in one] == [(n.tolist(), s.tolist()) for n, s in sharded]


def test_dense_select_breaks_ties_by_seq_id_in_every_block(monkeypatch):
    """Blocks of 7 rows (a tiny BLOCK_VALUES): per-row k, ties at the cut, zero and negative cosines."""
    monkeypatch.setattr(dense, "BLOCK_VALUES", 7 * 50)
    rng = np.random.default_rng(3)
    v = rng.integers(-1, 2, size=(50, 2)).astype(np.float64)
    tile = dense_features(v).tile(np.arange(50))
    rows = np.arange(50)
    k = rng.integers(0, 12, size=50)
    counts, cols, scores = dense.select(tile, rows, k, 0.0)
    s = np.array([[cosine(a, b) if i != j else 0 for j, b in enumerate(v.tolist())] for i, a in enumerate(v.tolist())],
                 dtype=np.float32)
    offs = np.concatenate(([0], np.cumsum(counts)))
    for i in rows:
        order = np.lexsort((np.arange(50), -s[i]))
        order = order[s[i][order] > 0][:k[i]]
        assert cols[offs[i]:offs[i + 1]].tolist() == order.tolist()


def test_embedding_errors_leave_nothing(tmp_path):
    path, anchors, emb, emb_path = _log_and_embeddings(tmp_path, 0)
    out = str(tmp_path / "out")
    np.save(tmp_path / "short.npy", emb[:-1])
    nan = emb.copy()
    nan[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "text.npy").write_text("not an array")
    cases = {
        "short.npy": f"{len(anchors) - 1} rows, but the log gives {len(anchors)} anchors",
        "nan.npy": "row 5 has a NaN",
        "text.npy": "not a NumPy .npy array",
        "missing.npy": "file not found",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message):
            simmine.build(input=path, out=out, metric="embedding", embeddings=str(tmp_path / name), k=3, quiet=True)
        assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    with pytest.raises(InputError, match="needs --embeddings"):
        simmine.build(input=path, out=out, metric="embedding", k=3, quiet=True)
    with pytest.raises(InputError, match="read only by --metric embedding"):
        simmine.build(input=path, out=out, metric="jaccard", embeddings=emb_path, k=3, quiet=True)
    r = subprocess.run([sys.executable, "-m", "simmine.cli", "build", "--input", path, "--out", out, "--metric",
                        "embedding", "--embeddings", str(tmp_path / "short.npy"), "--k", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "short.npy" in r.stderr


def test_verify_recomputes_embedding_builds_and_notices_changed_embeddings(tmp_path):
    from simmine.report import verify

    path, _, emb, emb_path = _log_and_embeddings(tmp_path, 4)
    out = simmine.build(input=path, out=str(tmp_path / "out"), metric="embedding", embeddings=emb_path, k=3,
                        quiet=True)
    assert verify(out, sample=30) == []
    np.save(emb_path, emb[::-1].copy())
    assert "missing or changed" in verify(out)[0]


# ------------------------------------------------------------------------------------------------- faiss
faiss = pytest.importorskip("faiss")
from simmine.approx import faiss_  # noqa: E402  (needs faiss)


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf", "binary"])
@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein", "embedding"])
def test_faiss_with_every_candidate_equals_exact(tmp_path, metric, index):
    """Asking for all bucket members as candidates makes every index exhaustive: the output is the exact one."""
    path, _, _, emb_path = _log_and_embeddings(tmp_path, 5, with_city=True)
    kw = dict(input=path, metric=metric, bucket_by="city", k=3, quiet=True,
              embeddings=emb_path if metric == "embedding" else None)
    exact = simmine.build(out=str(tmp_path / "exact"), **kw)
    approx = simmine.build(out=str(tmp_path / "faiss"), method="faiss", index=index, candidates=1000, **kw)
    for (en, es), (an, as_) in zip(load_weak(exact)[0], load_weak(approx)[0]):
        assert an.tolist() == en.tolist()
        np.testing.assert_allclose(as_, es, atol=1e-6)
    m = json.load(open(os.path.join(approx, "manifest.json")))
    assert m["method"] == "faiss" and m["recall"]["value"] == 1.0 and m["approximate"]["index"] == index


def test_faiss_recall_is_estimated_and_reported(tmp_path):
    from simmine.report import summary_lines

    out = simmine.build(out=str(tmp_path / "out"), method="faiss", k=10, dim=64, candidates=20,
                        recall_sample=200, quiet=True)
    m = json.load(open(os.path.join(out, "manifest.json")))
    assert 0 < m["recall"]["value"] < 1 and m["recall"]["sample"] == 200
    assert any("faiss flat index of signed hashing projection (dim 64)" in line for line in summary_lines(out))


@pytest.mark.parametrize("binary", [False, True])
def test_paged_search_equals_one_search(binary):
    """Past an index's per-query cap (a GPU's 2048), pages of at most cap rows give the same best k."""
    rng = np.random.default_rng(6)
    if binary:
        data = rng.integers(0, 256, size=(300, 8), dtype=np.uint8)
    else:
        data = rng.standard_normal((300, 16)).astype(np.float32)
    kind = "binary" if binary else "flat"
    index = faiss_.make_index(faiss, kind, data)
    want_s, want_i = faiss_._search(index, data[:40], 50, binary)
    got_s, got_i = faiss_.paged_search(faiss, kind, data, data[:40], 50, cap=16)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-5)
    if binary:  # Hamming ties: compare the sets of scores per rank, ids within a tie may differ
        assert (np.sort(got_s, axis=1) == np.sort(want_s, axis=1)).all()
    else:
        assert (got_i == want_i).all()


def test_faiss_candidates_past_the_cap_use_pages(tmp_path):
    """A forced cap smaller than the candidates requested still returns the exact output."""
    from simmine.approx.faiss_ import FaissParams, mine_faiss
    from simmine.engines.local import make_plan, mine_weak
    from simmine.metrics import prepare_features, resolve_metric
    from simmine.select import make_selection
    from simmine.anchors import build_sequences
    from simmine.readers import read_log
    from simmine.backends import get_backend

    path, _, _, _ = _log_and_embeddings(tmp_path, 7)
    seqs = build_sequences(read_log(path, "auto", "user_id", "item_id", None, ()), "loo", 50, "history")
    features = prepare_features(seqs, resolve_metric("jaccard"))
    plan = make_plan(seqs.n, None)
    sel = make_selection(k=5)
    be = get_backend("python")
    got = mine_faiss(features, plan, sel, be, FaissParams(candidates=seqs.n), k_cap=8)
    want = mine_weak(features, plan, sel, be)
    assert got.neighbors.tolist() == want.neighbors.tolist() and (got.offsets == want.offsets).all()


def test_one_bit_minhash_agreement_estimates_jaccard():
    """Equal low bits of a minhash happen with probability J + (1 − J)/2: the code's Hamming distance
    is an unbiased estimate of (1 − J)/2."""
    rng = np.random.default_rng(8)
    errors = []
    for _ in range(200):
        size, overlap = int(rng.integers(10, 50)), 0
        overlap = int(rng.integers(1, size))
        common = rng.choice(10**6, size=overlap, replace=False)
        a = np.concatenate((common, rng.integers(10**6, 2 * 10**6, size - overlap)))
        b = np.concatenate((common, rng.integers(2 * 10**6, 3 * 10**6, size - overlap)))
        jac = overlap / (2 * size - overlap)
        f = simmine.metrics.Features("set", np.array([0, size, 2 * size], dtype=np.int64),
                                     np.concatenate((np.sort(a), np.sort(b))).astype(np.int32))
        codes = faiss_.binary_codes(f, faiss_.FaissParams(num_perm=256, seed=int(rng.integers(0, 2**31))),
                                    simmine.backends.get_backend("auto"))
        differ = np.unpackbits(codes[0] ^ codes[1]).mean()
        errors.append(differ - (1 - jac) / 2)
    errors = np.asarray(errors)
    assert abs(errors.mean()) < 3 * errors.std(ddof=1) / np.sqrt(len(errors))


def test_faiss_flag_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown --index 'lsh'"):
        simmine.build(out=str(tmp_path / "o"), method="faiss", index="lsh", k=3, quiet=True)
    with pytest.raises(InputError, match="multiple of 8"):
        simmine.build(out=str(tmp_path / "o"), method="faiss", index="binary", num_perm=12, k=3, quiet=True)
    with pytest.raises(InputError, match="every pair's score"):
        simmine.build(out=str(tmp_path / "o"), method="faiss", alpha=0.1, alpha_scope="global", quiet=True)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(InputError, match="pip install faiss-cpu"):
        simmine.build(out=str(tmp_path / "o"), method="faiss", k=3, quiet=True)
    assert not os.path.exists(tmp_path / "o")
