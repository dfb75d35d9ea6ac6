"""FAISS candidates, re-scored exactly (docs/approximate.md ``--method faiss``).

1. Vectors. ``flat``, ``hnsw`` and ``ivf`` index float vectors under inner product:
   - ``embedding``: the given vectors scaled to unit length;
   - every other metric: a signed-hashing random projection (each code goes to one of ``dim`` coordinates
     with a ±1 sign, seeded) of the row's weights, scaled to unit length: TF-IDF weights for ``tfidf``,
     1 for every unique item or n-gram of ``jaccard``/``ngram``, item counts for ``levenshtein``.
     Inner products of the projections are unbiased estimates of the cosines of the weight vectors.
   ``binary`` indexes bit codes under Hamming distance: 1-bit MinHash (the low bit of each of ``num_perm``
   minhashes) for the set metrics and levenshtein, sign bits of a Gaussian projection (SimHash) for
   ``tfidf`` and ``embedding``.
2. One index per bucket; every member asks it for its ``candidates`` nearest (itself excluded).
3. Any number of candidates: a GPU index answers at most GPU_K_CAP neighbours per query, so past that
   the bucket is searched in pages of at most GPU_K_CAP rows (each page's best are all its rows), and the
   pages' answers are merged; CPU indexes have no cap.
4. Candidate pairs are re-scored exactly and selected with the exact semantics; recall@k is estimated
   against exact search on a seeded sample of anchors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..engines.local import Plan, WeakResult, selection_request
from ..errors import InputError
from ..csr import best_k_per_row, unique_per_row
from ..metrics import Features
from ..select import Selection
from .common import exact_sample, rescore
from ..hashing import splitmix64
from .minhash import batched

INDEXES = ("flat", "hnsw", "ivf", "binary")
GPU_K_CAP = 2048
QUERY_BATCH = 4096
PROJECT_ROWS = 1 << 14
HNSW_M = 32


@dataclass
class FaissParams:
    index: str = "flat"
    dim: int = 256
    candidates: Optional[int] = None
    num_perm: int = 128
    seed: int = 0
    recall_sample: int = 500
    nprobe: int = 16


def check_params(params: FaissParams):
    """The faiss module, after checking that FAISS is installed and the parameters are usable; InputError
    (before anything is computed or written) otherwise."""
    faiss = faiss_module()
    if params.index not in INDEXES:
        raise InputError(f"unknown --index '{params.index}' (choose from {', '.join(INDEXES)})")
    if params.index == "binary" and params.num_perm % 8:
        raise InputError(f"--index binary packs --num-perm bits into bytes: give a multiple of 8, "
                         f"got {params.num_perm}")
    return faiss


def faiss_module():
    """The faiss module; InputError naming the wheel when it is not installed."""
    try:
        import faiss
    except ImportError:
        raise InputError("--method faiss needs FAISS: pip install faiss-cpu (or a faiss GPU build)") from None
    return faiss


def _weighted_rows(features: Features):
    """(indptr, codes, weights) of what the projection sees, per the metric (module docstring)."""
    if features.kind == "cosine":
        return features.indptr, features.indices, features.weights
    if features.kind == "edit":
        indptr, codes, counts = unique_per_row(features.indptr, features.indices)
        return indptr, codes, counts.astype(np.float64)
    return features.indptr, features.indices, np.ones(len(features.indices), dtype=np.float64)


def hashed_projection(features: Features, dim: int, seed: int) -> np.ndarray:
    """float32 [N, dim] unit rows (zero rows stay zero): signed hashing of each row's weights."""
    indptr, codes, weights = _weighted_rows(features)
    n = len(indptr) - 1
    salt = splitmix64(np.array([int(seed) & (2**64 - 1)], dtype=np.uint64))[0]
    h = splitmix64(codes.astype(np.uint64) ^ salt)
    pos = (h % np.uint64(dim)).astype(np.int64)
    signed = np.where((h >> np.uint64(32)) & np.uint64(1), -weights, weights)
    out = np.zeros((n, dim), dtype=np.float32)
    for a in range(0, n, PROJECT_ROWS):
        b = min(a + PROJECT_ROWS, n)
        lo, hi = indptr[a], indptr[b]
        row = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(indptr[a:b + 1]))
        block = np.bincount(row * dim + pos[lo:hi], weights=signed[lo:hi], minlength=(b - a) * dim)
        block = block.reshape(b - a, dim)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        out[a:b] = block / np.where(norms > 0, norms, 1.0)[:, None]
    return out


def float_vectors(features: Features, params: FaissParams) -> np.ndarray:
    if features.kind == "dense":
        norms = np.where(features.norms > 0, features.norms, 1.0)
        return np.ascontiguousarray(features.vectors / norms[:, None], dtype=np.float32)
    return hashed_projection(features, params.dim, params.seed)


def binary_codes(features: Features, params: FaissParams, backend) -> np.ndarray:
    """uint8 [N, bits/8]: 1-bit MinHash for sets and sequences, SimHash for weighted vectors (bits a
    multiple of 8: check_params)."""
    bits = params.num_perm
    if features.kind in ("set", "edit"):
        sig = backend.minhash(features.indptr, features.indices, bits, params.seed)
        low = (sig & 1).astype(np.uint8)
        low[(sig == 0xFFFFFFFF).all(axis=1)] = 0  # empty rows: one code, and they share nothing anyway
    else:
        x = float_vectors(features, params)
        g = np.random.default_rng(params.seed).standard_normal((x.shape[1], bits)).astype(np.float32)
        low = np.zeros((len(x), bits), dtype=np.uint8)
        for a in range(0, len(x), PROJECT_ROWS):
            low[a:a + PROJECT_ROWS] = (x[a:a + PROJECT_ROWS] @ g) > 0
    return np.packbits(low, axis=1, bitorder="little")


def _gpu_resources(faiss):
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        return None
    return faiss.StandardGpuResources()


def make_index(faiss, kind: str, data: np.ndarray, gpu=None, nprobe: int = 16, ef_search: int = 64):
    """A FAISS index over ``data`` (float32 rows under inner product, or uint8 bit codes under Hamming);
    on the GPU when ``gpu`` resources are given and FAISS has a GPU version of ``kind``."""
    if kind == "binary":
        index = faiss.IndexBinaryFlat(data.shape[1] * 8)
    elif kind == "flat":
        index = faiss.IndexFlatIP(data.shape[1])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(data.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        nlist = int(max(1, min(4 * np.sqrt(len(data)), len(data) // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(data.shape[1]), data.shape[1], nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.train(data)
        index.nprobe = min(nprobe, nlist)
    if gpu is not None and kind in ("flat", "ivf"):
        index = faiss.index_cpu_to_gpu(gpu, 0, index)
    index.add(data)
    return index


def _search(index, queries: np.ndarray, k: int, binary: bool):
    """(scores, ids) with larger scores better (Hamming distances negated)."""
    d, i = index.search(queries, k)
    return (-d.astype(np.float32) if binary else d), i


def paged_search(faiss, kind: str, data: np.ndarray, queries: np.ndarray, k: int, cap: int, gpu=None):
    """The k best rows of ``data`` for every query when an index answers at most ``cap`` per query:
    exact flat pages of at most ``cap`` rows, merged (ties by row id)."""
    binary = kind == "binary"
    scores, ids = [], []
    for lo in range(0, len(data), cap):
        page = data[lo:lo + cap]
        index = make_index(faiss, "binary" if binary else "flat", page, gpu)
        s, i = _search(index, queries, len(page), binary)
        scores.append(s)
        ids.append(np.where(i >= 0, i + lo, -1))
    s, i = np.concatenate(scores, axis=1), np.concatenate(ids, axis=1)
    s = np.where(i >= 0, s, -np.inf)
    if not s.shape[1]:
        return s, i
    i, s = best_k_per_row(i, s, k)
    return s, i


def bucket_candidates(faiss, kind: str, data: np.ndarray, members: np.ndarray, want: int, params: FaissParams,
                      gpu=None, k_cap: Optional[int] = None):
    """Candidate pairs (i, j) of one bucket as global seq_ids: each member with its ``want`` nearest other
    members by the index."""
    local = data[members]
    k = min(want + 1, len(members))  # +1: a query finds itself
    cap = k_cap if k_cap is not None else (GPU_K_CAP if gpu is not None else None)
    index = None
    if cap is None or k <= cap:
        index = make_index(faiss, kind, local, gpu, params.nprobe, ef_search=max(k, 64))
    heads, tails = [], []
    for a in range(0, len(members), QUERY_BATCH):
        q = local[a:a + QUERY_BATCH]
        if index is not None:
            _, i = _search(index, q, k, kind == "binary")
        else:
            _, i = paged_search(faiss, kind, local, q, k, cap, gpu)
        rows = np.repeat(np.arange(a, a + len(q)), i.shape[1])
        cols = i.reshape(-1)
        ok = (cols >= 0) & (cols != rows)
        heads.append(members[rows[ok]])
        tails.append(members[cols[ok]])
    return np.concatenate(heads), np.concatenate(tails)


def mine_faiss(features: Features, plan: Plan, sel: Selection, backend, params: FaissParams,
               progress=None, k_cap: Optional[int] = None) -> WeakResult:
    """Weak lists from FAISS candidates re-scored exactly (global alpha is refused by the caller)."""
    faiss = check_params(params)
    n = features.n
    k_all, _ = selection_request(sel, plan)
    k_max = int(k_all.max()) if n else 0
    if params.candidates is not None:
        want = int(params.candidates)
    elif sel.mode == "min_sim":
        want = 256
    else:
        want = max(4 * k_max, 64)
    exact = exact_sample(features, plan, sel, backend, params.recall_sample, params.seed)
    binary = params.index == "binary"
    data = binary_codes(features, params, backend) if binary else float_vectors(features, params)
    gpu = _gpu_resources(faiss)

    def batches():  # one bucket's candidates at a time (small buckets grouped into one batch)
        tick = progress("faiss", n) if progress else None
        for members in plan.members:
            if len(members) >= 2:
                i, j = bucket_candidates(faiss, params.index, data, members, want, params, gpu, k_cap)
                yield np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)
            if tick:
                tick(len(members))
        if tick:
            tick(0, done=True)

    if binary:
        vectors = (f"1-bit minhash ({params.num_perm} bits)" if features.kind in ("set", "edit")
                   else f"simhash ({params.num_perm} bits)")
    else:
        vectors = "given embeddings" if features.kind == "dense" else f"signed hashing projection (dim {params.dim})"
    stats = {"method": "faiss", "index": params.index, "vectors": vectors, "candidates_per_anchor": want,
             "gpu": gpu is not None, "seed": params.seed}
    return rescore(features, plan, sel, backend, batched(batches()), exact, stats)
