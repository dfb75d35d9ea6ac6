"""CUDA backend: kernels compiled at run time by CuPy (NVRTC), one cached module, no CUDA needed to install.

Kernels (kernels/scores.cu) include the C++ core's metrics.hpp, so every pair is scored by the same
host+device functions as on the CPU. A block of anchor rows is scored against its whole bucket into a
[rows, n] float32 tile on the device (blocks sized to a share of free device memory, never N×N):
- Jaccard and n-gram (sets) whose bucket vocabulary fits (GEMM_MAX_VOCAB): intersection counts by an int8
  tensor-core GEMM (cuBLAS, int32 accumulation: exact), then the core's jaccard_from_counts; otherwise a
  sorted-merge kernel, one thread per pair.
- TF-IDF top-k: candidates from a bf16 tensor-core GEMM of unit-norm rows, rescored exactly in float64 in
  ascending code order; a row is kept only when the error bound (GEMM_EPS) proves no other column can enter
  its top k, and recomputed by the exact merge kernel otherwise. Other TF-IDF selections use the merge kernel.
- Levenshtein: bit-parallel Myers/Hyyrö with the shorter history as the pattern when it has ≤ 64 items.
Top-k packs score and column into one int64 key (score descending, then seq_id ascending), so ties resolve
exactly as on the CPU; thresholds, pair joins and global-alpha histograms use the tile's float32 bits.
"""
from __future__ import annotations

import os

import numpy as np

from ..select import HIST_BINS
from ..tiles import Tile

name = "cuda"
GEMM_MAX_VOCAB = 1 << 17   # larger bucket vocabularies go through the merge kernels
GEMM_EPS = 2.0 ** -6       # bound on |bf16 GEMM cosine − exact| / exact: products 2·2^-8, fp32 sums far less
MEMORY_FRACTION = 0.25     # of the free device memory, for one block of tiles
TFIDF_CANDIDATES = 32      # extra GEMM candidates per row beyond 2k, rescored exactly
_KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
_module = None
_state: dict = {}
stats = {"gemm_blocks": 0, "merge_blocks": 0, "tfidf_rows_certified": 0, "tfidf_rows_recomputed": 0}

# cuBLAS / CUDA enum values (stable ABI)
_OP_N, _OP_T = 0, 1
_R_32F, _R_8I, _R_32I, _R_16BF = 0, 3, 10, 14
_COMPUTE_32F, _COMPUTE_32I = 68, 72
_GEMM_DEFAULT = -1


def available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def include_dir() -> str:
    """Where metrics.hpp is: installed next to the kernels, or csrc/ of a source checkout."""
    if os.path.isfile(os.path.join(_KERNEL_DIR, "metrics.hpp")):
        return _KERNEL_DIR
    return os.path.normpath(os.path.join(_KERNEL_DIR, "..", "..", "..", "csrc"))


def kernel_source() -> str:
    with open(os.path.join(_KERNEL_DIR, "scores.cu")) as f:
        return f.read()


def _kernel(fn: str):
    global _module
    if _module is None:
        import cupy

        _module = cupy.RawModule(code=kernel_source(), options=("-std=c++17", f"-I{include_dir()}"))
    return _module.get_function(fn)


def _launch(fn: str, nrows: int, ncols: int, args, threads: int = 256) -> None:
    """One thread per (row, column) of an nrows × ncols grid."""
    if nrows and ncols:
        _kernel(fn)(((ncols + threads - 1) // threads, nrows), (threads,), args)


def _pad(x: int, to: int = 16) -> int:
    return (x + to - 1) // to * to


def _free_bytes() -> int:
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    return int(cupy.cuda.runtime.memGetInfo()[0])


def _uses_gemm(tile: Tile) -> bool:
    if tile.kind not in ("set", "cosine") or not 0 < tile.vocab <= GEMM_MAX_VOCAB or tile.n < 2:
        return False
    bytes_per = 1 if tile.kind == "set" else 2
    return _pad(tile.n) * _pad(tile.vocab) * bytes_per < _free_bytes() * MEMORY_FRACTION


def _dev(tile: Tile) -> dict:
    """The tile's arrays on the device (one bucket at a time), with its dense GEMM matrix where it fits."""
    import cupy

    if _state.get("tile") is not tile:
        _state.clear()
        d = {"indptr": cupy.asarray(tile.indptr), "indices": cupy.asarray(tile.indices),
             "len": cupy.asarray(np.diff(tile.indptr))}
        if tile.kind == "cosine":
            d.update(weights=cupy.asarray(tile.weights), norms=cupy.asarray(tile.norms))
        if _uses_gemm(tile):
            n_pad, v_pad = _pad(tile.n), _pad(tile.vocab)
            if tile.kind == "set":
                d["dense"] = cupy.zeros((n_pad, v_pad), dtype=cupy.int8)
                _kernel("scatter_ones")((tile.n,), (128,), (d["indptr"], d["indices"], np.int64(tile.n),
                                                            np.int64(v_pad), d["dense"]))
            else:
                d["dense"] = cupy.zeros((n_pad, v_pad), dtype=cupy.uint16)  # bf16 bits
                _kernel("scatter_unit_bf16")((tile.n,), (128,), (d["indptr"], d["indices"], d["weights"],
                                                                 d["norms"], np.int64(tile.n), np.int64(v_pad),
                                                                 d["dense"]))
        _state.update(tile=tile, dev=d)
    return _state["dev"]


def _gemm(a, b, out, in_type: int, out_type: int, compute: int) -> None:
    """out[r, m] = a[r, K] · b[m, K]ᵀ for row-major a, b, out (cuBLAS is column-major: outᵀ = b · aᵀ)."""
    from cupy.cuda import cublas, device

    r, K = a.shape
    m = b.shape[0]
    scalar = np.int32 if compute == _COMPUTE_32I else np.float32
    one, zero = np.ones(1, dtype=scalar), np.zeros(1, dtype=scalar)
    cublas.gemmEx(device.get_cublas_handle(), _OP_T, _OP_N, m, r, K, one.ctypes.data, b.data.ptr, in_type, K,
                  a.data.ptr, in_type, K, zero.ctypes.data, out.data.ptr, out_type, m, compute, _GEMM_DEFAULT)


def _gemm_rows(d: dict, block_d, dtype, in_type, out_type, compute):
    """GEMM of the block's dense rows (padded to 16) against every row: [r_pad, n_pad]."""
    import cupy

    dense = d["dense"]
    r_pad = _pad(len(block_d))
    a = cupy.zeros((r_pad, dense.shape[1]), dtype=dense.dtype)
    a[:len(block_d)] = dense[block_d]
    out = cupy.empty((r_pad, dense.shape[0]), dtype=dtype)
    _gemm(a, dense, out, in_type, out_type, compute)
    return out


def _mask_excluded(tile: Tile, rows_d, s, value) -> None:
    """Sets s[r, j] = value where row rows_d[r] never pairs with column j (its user's run); the kernels
    already give the diagonal 0."""
    if tile.ex_lo is None:
        return
    import cupy

    cols = cupy.arange(s.shape[1])[None, :]
    lo = cupy.asarray(tile.ex_lo)[rows_d][:, None]
    hi = cupy.asarray(tile.ex_hi)[rows_d][:, None]
    s[:len(rows_d)][(cols >= lo) & (cols < hi)] = value


def _scores(tile: Tile, rows: np.ndarray):
    """[len(rows), n] float32 tile of exact scores on the device, 0 where a row may not pair (itself, its
    user's other anchors)."""
    out = _raw_scores(tile, rows)
    if len(rows) and tile.n:
        import cupy

        _mask_excluded(tile, cupy.asarray(rows, dtype=cupy.int64), out, 0.0)
    return out


def _raw_scores(tile: Tile, rows: np.ndarray):
    """[len(rows), n] float32 tile of exact scores on the device, 0 on the diagonal."""
    import cupy

    d = _dev(tile)
    n, r = tile.n, len(rows)
    out = cupy.zeros((r, n), dtype=cupy.float32)
    if r == 0 or n == 0:
        return out
    rows_d = cupy.asarray(rows, dtype=cupy.int64)
    if tile.kind == "set" and "dense" in d:
        counts = _gemm_rows(d, rows_d, cupy.int32, _R_8I, _R_32I, _COMPUTE_32I)
        _launch("jaccard_from_gemm", r, n, (counts, np.int64(counts.shape[1]), rows_d, d["len"], np.int64(r),
                                            np.int64(n), out))
        stats["gemm_blocks"] += 1
        return out
    stats["merge_blocks"] += 1
    if tile.kind == "set":
        _launch("set_tile", r, n, (d["indptr"], d["indices"], rows_d, np.int64(r), np.int64(n), out))
    elif tile.kind == "cosine":
        _launch("cosine_tile", r, n, (d["indptr"], d["indices"], d["weights"], d["norms"], rows_d, np.int64(r),
                                      np.int64(n), out))
    else:
        max_len = int(np.diff(tile.indptr).max())
        scratch = cupy.empty(r * n * (max_len + 1) if max_len > 64 else 1, dtype=cupy.int64)
        _launch("edit_tile", r, n, (d["indptr"], d["indices"], rows_d, np.int64(r), np.int64(n),
                                    np.int64(max_len), scratch, out))
    return out


def _row_blocks(tile: Tile, rows: np.ndarray):
    """Row blocks whose tiles (GEMM output, scores, keys and top-k work: 24 bytes a pair, plus the DP
    scratch of long edit histories) fit in MEMORY_FRACTION of the free device memory."""
    _dev(tile)  # the dense GEMM matrix first: the blocks share what is left
    per_pair = 24
    if tile.kind == "edit":
        max_len = int(np.diff(tile.indptr).max()) if tile.n else 0
        per_pair += 8 * (max_len + 1) if max_len > 64 else 0
    per = max(1, int(_free_bytes() * MEMORY_FRACTION) // (max(_pad(tile.n), 1) * per_pair))
    for lo in range(0, len(rows), per):
        yield lo, rows[lo:lo + per]


def _torch():
    try:
        import torch

        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def _topk(x, k: int):
    """(values, columns) of each row's k largest entries, largest first (x: int64 keys or float32)."""
    import cupy

    torch = _torch()
    if torch is not None:
        v, i = torch.topk(torch.from_dlpack(x), k, dim=1, largest=True, sorted=True)
        return cupy.from_dlpack(v), cupy.from_dlpack(i)
    idx = cupy.argpartition(-x, k - 1, axis=1)[:, :k] if k < x.shape[1] else cupy.argsort(-x, axis=1)
    v = cupy.take_along_axis(x, idx, axis=1)
    order = cupy.argsort(-v, axis=1)
    return cupy.take_along_axis(v, order, axis=1), cupy.take_along_axis(idx, order, axis=1)


def _select_tile(s, k_rows: np.ndarray, min_score: float):
    """Per row of a float32 score tile: s > 0 and s >= min_score, the best k_rows[r] (score desc, col asc)."""
    import cupy

    r, n = s.shape
    k = int(k_rows.max()) if len(k_rows) else 0
    if k == 0:
        return np.zeros(r, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    keys = cupy.empty((r, n), dtype=cupy.int64)
    _launch("select_keys", r, n, (s, np.int64(r), np.int64(n), np.float32(min_score), keys))
    del s
    best, _ = _topk(keys, min(k, n))
    return _decode(cupy.asnumpy(best), k_rows)


def _decode(best: np.ndarray, k_rows: np.ndarray):
    """Keys (best first per row) → (counts, cols, scores) of the positive scores within each row's k."""
    scores = (best >> 32).astype(np.uint32).view(np.float32)
    cols = (np.int64(0xFFFFFFFF) - (best & np.int64(0xFFFFFFFF))).astype(np.int32)
    keep = (scores > 0) & (np.arange(best.shape[1])[None, :] < k_rows[:, None])
    return keep.sum(axis=1).astype(np.int64), cols[keep], scores[keep]


def _select_cosine_gemm(tile: Tile, block: np.ndarray, k_rows: np.ndarray, min_score: float):
    """TF-IDF top-k of a row block: bf16 GEMM candidates, exact rescoring, and a bound check per row; rows the
    bound cannot certify are recomputed exactly. Returns (counts, cols, scores) as ``_select_tile`` does."""
    import cupy

    d = _dev(tile)
    n, r = tile.n, len(block)
    k = int(k_rows.max())
    width = min(n, 2 * k + TFIDF_CANDIDATES)
    rows_d = cupy.asarray(block, dtype=cupy.int64)
    approx = _gemm_rows(d, rows_d, cupy.float32, _R_16BF, _R_32F, _COMPUTE_32F)[:r, :n]
    approx[cupy.arange(r), rows_d] = -1.0  # never a candidate of itself
    _mask_excluded(tile, rows_d, approx, -1.0)
    top_v, top_c = _topk(approx, width)
    del approx
    cand = top_c.astype(cupy.int64)
    exact = cupy.empty((r, width), dtype=cupy.float32)
    _launch("cosine_listed", r, width, (d["indptr"], d["indices"], d["weights"], d["norms"], rows_d, cand,
                                        np.int64(r), np.int64(width), exact))
    exact_h, cand_h = cupy.asnumpy(exact), cupy.asnumpy(cand)
    # a column outside the candidates has approx <= the last candidate's, so exact <= that / (1 - eps)
    outside = np.maximum(cupy.asnumpy(top_v[:, -1]), 0).astype(np.float64) / (1 - GEMM_EPS)
    if width >= n - 1:
        outside[:] = 0.0
    floor = np.float32(min_score)
    s = np.where(exact_h >= floor, exact_h, np.float32(0))
    keys = (s.view(np.uint32).astype(np.int64) << 32) | (np.int64(0xFFFFFFFF) - cand_h)
    keys = -np.sort(-keys, axis=1)
    counts, cols, scores = _decode(keys, k_rows)
    kth = np.zeros(r, dtype=np.float64)  # the k-th kept score, 0 when fewer than k are kept
    full = counts == k_rows
    kth[full] = (keys[full, np.maximum(k_rows[full] - 1, 0)] >> 32).astype(np.uint32).view(np.float32)
    # full rows: no outside column can beat the k-th; short rows: no outside column can score above 0 and floor
    ok = np.where(full, kth > outside, (outside < float(floor)) | (outside == 0)) | (k_rows == 0)
    stats["tfidf_rows_certified"] += int(ok.sum())
    stats["tfidf_rows_recomputed"] += int((~ok).sum())
    if ok.all():
        return counts, cols, scores
    redo = np.flatnonzero(~ok)
    return _replace_rows((counts, cols, scores), redo,
                         _select_tile(_scores(tile, block[redo]), k_rows[redo], min_score))


def _replace_rows(lists, rows: np.ndarray, new_lists):
    """Per-row lists (counts, cols, scores) with the lists of ``rows`` replaced by ``new_lists``'s, row order kept."""
    counts, cols, scores = lists
    new_counts, new_cols, new_scores = new_lists
    owner = np.repeat(np.arange(len(counts)), counts)
    keep = ~np.isin(owner, rows)
    order = np.argsort(np.concatenate((owner[keep], np.repeat(rows, new_counts))), kind="stable")
    counts = counts.copy()
    counts[rows] = new_counts
    return counts, np.concatenate((cols[keep], new_cols))[order], np.concatenate((scores[keep], new_scores))[order]


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    """Per row: columns with s > 0 and s >= min_score, best k_row first (score desc, column asc)."""
    rows = np.asarray(rows, dtype=np.int64)
    k_row = np.clip(np.asarray(k_row, dtype=np.int64), 0, max(tile.n - 1, 0))
    min_score = float(np.float32(min_score))
    counts, cols, scores = [], [], []
    for lo, block in _row_blocks(tile, rows):
        k_rows = k_row[lo:lo + len(block)]
        if tile.kind == "cosine" and len(block) and k_rows.max() > 0 and "dense" in _dev(tile):
            c, col, s = _select_cosine_gemm(tile, block, k_rows, min_score)
        else:
            c, col, s = _select_tile(_scores(tile, block), k_rows, min_score)
        counts.append(c)
        cols.append(col)
        scores.append(s)
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return cat(counts, np.int64), cat(cols, np.int32), cat(scores, np.float32)


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    import cupy

    out_r, out_c, out_s = [], [], []
    for _, block in _row_blocks(tile, np.asarray(rows, dtype=np.int64)):
        s = _scores(tile, block)
        upper = cupy.arange(tile.n)[None, :] > cupy.asarray(block)[:, None]
        r, c = cupy.nonzero(upper & (s > 0) & (s >= cupy.float32(min_score)))
        out_r.append(block[cupy.asnumpy(r)].astype(np.int32))
        out_c.append(cupy.asnumpy(c).astype(np.int32))
        out_s.append(cupy.asnumpy(s[r, c]))
    if not out_r:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_s)


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    import cupy

    hist = cupy.zeros(HIST_BINS, dtype=cupy.int64)
    for _, block in _row_blocks(tile, np.asarray(rows, dtype=np.int64)):
        s = _scores(tile, block)
        upper = cupy.arange(tile.n)[None, :] > cupy.asarray(block)[:, None]
        bits = s[upper & (s > 0)].view(cupy.uint32)
        if prefix < 0:
            hist += cupy.bincount((bits >> 16).astype(cupy.int64), minlength=HIST_BINS)
        else:
            sel = bits[(bits >> 16) == prefix]
            hist += cupy.bincount((sel & 0xFFFF).astype(cupy.int64), minlength=HIST_BINS)
    return cupy.asnumpy(hist)


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    import cupy

    out = np.zeros(len(cols), dtype=np.float32)
    row_ids = np.asarray(row_ids, dtype=np.int64)
    for lo, block in _row_blocks(tile, row_ids):
        s = _scores(tile, block)
        owner = np.repeat(np.arange(len(block)), np.diff(ptr[lo:lo + len(block) + 1]))
        span = slice(ptr[lo], ptr[lo + len(block)])
        out[span] = cupy.asnumpy(s[cupy.asarray(owner), cupy.asarray(cols[span].astype(np.int64))])
    return out


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    import cupy

    from ..hashing import perm_seeds

    n = len(indptr) - 1
    sig = cupy.empty((n, num_perm), dtype=cupy.uint32)
    if n:
        _launch("minhash_sig", n, num_perm, (cupy.asarray(indptr, dtype=cupy.int64),
                                             cupy.asarray(codes, dtype=cupy.int64),
                                             cupy.asarray(perm_seeds(num_perm, seed)), np.int64(n),
                                             np.int64(num_perm), sig), threads=128)
    return cupy.asnumpy(sig)


def set_num_threads(n: int) -> None:
    """The GPU backend has no CPU thread pool to size."""


def band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excluded=None):
    """LSH collision counting is host bookkeeping (runs of row ids, no arithmetic): the C++ core does it,
    or Numba where the core is not built."""
    from . import cpp, numba_

    return (cpp if cpp.available() else numba_).band_candidates(run_of, run_ptr, run_members, anchors,
                                                                max_candidates, excluded)
