"""Numba backend: the same scorers as the C++ core, for machines where the extension is not built.

Inverted index with popular-code popcount bitmaps for sets, prefix filtering for set joins >= 0.4,
Cauchy–Schwarz bounds on TF-IDF's popular codes, Myers for short edit rows, best-k heaps. One driver for
rows (select and pairs) and one for histograms handle every feature kind, so the selection logic exists
once; rows are split into chunks, each chunk running in its own thread with its own O(n) scratch.
"""
from __future__ import annotations

import numpy as np

from ..select import HIST_BINS
from ..tiles import Tile
from .numba_rows import KIND_COSINE, KIND_EDIT, KIND_PREFIX, KIND_SET

name = "numba"
PAIRS_BLOCK_ENTRIES = 1 << 25  # virtual: np.empty touches only the pages written
PREFIX_MIN_THRESHOLD = 0.4  # as the C++ core: below it, prefix candidates are many and accumulation wins

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is a dependency, but may fail to import on exotic platforms
    numba = None


def available() -> bool:
    return numba is not None


if numba is not None:
    from .numba_rows import bounded_cosine, edit_dp, row_candidates, take_best, thread_scratch

    @njit(cache=True, parallel=True)
    def _mine_rows(kind, indptr, idx, w, norms, pptr, prow, pw, vocab, max_len, prefix, dense, bounds, excl,
                   rows, out_off, min_score, upper, nchunks, out_col, out_score, out_count):
        """Row r's results at out_off[r], out_count[r] of them, columns not excluded (excl = per-row runs
        lo, hi) with s > 0 and s >= min_score:
        upper=False (select): the best out_off[r+1] − out_off[r], score descending then column ascending;
        upper=True (pairs): every column j > rows[r], unsorted."""
        n = len(indptr) - 1
        nrows = len(rows)
        for c in prange(nchunks):
            lo = c * nrows // nchunks
            hi = (c + 1) * nrows // nchunks
            scratch = thread_scratch(kind, n, vocab, max_len)
            acc_i, acc_f, touched, _, _, cand_j, cand_s, table, cand_ub = scratch
            has_bounds = bounds[-1]
            for r in range(lo, hi):
                i = rows[r]
                j_min = i + 1 if upper else 0
                o = out_off[r]
                k = out_off[r + 1] - o
                ex_lo, ex_hi = excl[0][i], excl[1][i]
                if kind == KIND_COSINE and has_bounds and (min_score >= 0.1 or (not upper and k * 64 <= n)):
                    out_count[r] = bounded_cosine(i, j_min, k, not upper, min_score, indptr, idx, w, norms, pptr,
                                                   prow, pw, bounds, acc_f, acc_i, touched, table, cand_j, cand_ub,
                                                   out_score[o:o + k], out_col[o:o + k], ex_lo, ex_hi)
                    continue
                m = row_candidates(kind, i, j_min, min_score, indptr, idx, w, norms, pptr, prow, pw, prefix, dense,
                                   scratch)
                kept = 0
                for t in range(m):  # pairs go straight to the output, a selection to its heap
                    if cand_s[t] >= min_score and (cand_j[t] < ex_lo or cand_j[t] >= ex_hi):
                        if upper:
                            out_col[o + kept] = cand_j[t]
                            out_score[o + kept] = cand_s[t]
                        else:
                            cand_j[kept] = cand_j[t]
                            cand_s[kept] = cand_s[t]
                        kept += 1
                out_count[r] = kept if upper else take_best(cand_j, cand_s, kept, k, out_col[o:o + k],
                                                             out_score[o:o + k])

    @njit(cache=True, parallel=True)
    def _histogram(kind, indptr, idx, w, norms, pptr, prow, pw, vocab, max_len, prefix, dense, excl, rows,
                   bits_prefix, nchunks):
        n = len(indptr) - 1
        nrows = len(rows)
        hist = np.zeros((nchunks, HIST_BINS), np.int64)
        for c in prange(nchunks):
            lo = c * nrows // nchunks
            hi = (c + 1) * nrows // nchunks
            scratch = thread_scratch(kind, n, vocab, max_len)
            cand_s = scratch[6]
            for r in range(lo, hi):
                i = rows[r]
                m = row_candidates(kind, i, i + 1, np.float32(0.0), indptr, idx, w, norms, pptr, prow, pw, prefix,
                                   dense,
                         scratch)
                bits = cand_s[:m].view(np.uint32)
                cand_j = scratch[5]
                for t in range(m):
                    if cand_j[t] >= excl[0][i] and cand_j[t] < excl[1][i]:
                        continue
                    b = bits[t]
                    if bits_prefix < 0:
                        hist[c, b >> 16] += 1
                    elif (b >> 16) == bits_prefix:
                        hist[c, b & 0xFFFF] += 1
        return hist.sum(axis=0)


if numba is not None:

    @njit(cache=True, nogil=True)
    def _pair_score(kind, i, j, indptr, idx, w, norms, dprow):
        a0, a1, b0, b1 = indptr[i], indptr[i + 1], indptr[j], indptr[j + 1]
        if kind == KIND_EDIT:
            d = edit_dp(idx[a0:a1], idx[b0:b1], dprow)
            return np.float32(1.0 - d / max(a1 - a0, b1 - b0))
        p, q, c, dot = a0, b0, 0, 0.0
        while p < a1 and q < b1:  # ascending codes: the same summation order as every backend
            if idx[p] < idx[q]:
                p += 1
            elif idx[q] < idx[p]:
                q += 1
            else:
                c += 1
                if kind == KIND_COSINE:
                    dot += w[p] * w[q]
                p += 1
                q += 1
        if kind == KIND_SET:
            uni = (a1 - a0) + (b1 - b0) - c
            return np.float32(c / uni) if c > 0 and uni > 0 else np.float32(0.0)
        if dot <= 0 or norms[i] <= 0 or norms[j] <= 0:
            return np.float32(0.0)
        return np.float32(min(dot / (norms[i] * norms[j]), 1.0))

    @njit(cache=True, parallel=True)
    def _score_pairs(kind, indptr, idx, w, norms, max_len, row_ids, ptr, cols, out):
        for r in prange(len(row_ids)):
            dprow = np.empty(max_len + 1, np.int64)
            for t in range(ptr[r], ptr[r + 1]):
                out[t] = _pair_score(kind, row_ids[r], cols[t], indptr, idx, w, norms, dprow)

    @njit(cache=True, parallel=True)
    def _minhash(indptr, codes, seeds, out):
        n = len(indptr) - 1
        for i in prange(n):
            for q in range(indptr[i], indptr[i + 1]):
                v = np.uint64(codes[q])
                for p in range(len(seeds)):
                    x = (v ^ seeds[p]) + np.uint64(0x9E3779B97F4A7C15)
                    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                    x = x ^ (x >> np.uint64(31))
                    h = np.uint32(x & np.uint64(0xFFFFFFFF))
                    if h < out[i, p]:
                        out[i, p] = h

    @njit(cache=True, nogil=True)
    def _band_anchor(a, run_of, run_ptr, run_members, max_c, count, touched, hist, ex_lo, ex_hi):
        """One anchor's band collisions, as the C++ core: rows sharing a run, counted into ``count``
        (listed in ``touched``); returns (how many touched, the shared-run floor of the kept ones)."""
        bands = run_of.shape[1]
        nt = 0
        for t in range(bands):
            r = run_of[a, t]
            if r < 0:
                continue
            for q in range(run_ptr[r], run_ptr[r + 1]):
                j = run_members[q]
                if j < ex_lo or j >= ex_hi:
                    if count[j] == 0:
                        touched[nt] = j
                        nt += 1
                    count[j] += 1
        floor = 1
        if max_c > 0 and nt > max_c:
            hist[:] = 0
            for x in range(nt):
                hist[count[touched[x]]] += 1
            seen = 0
            for c in range(bands, 0, -1):
                seen += hist[c]
                if seen >= max_c:
                    floor = c
                    break
        return nt, floor

    @njit(cache=True, parallel=True)
    def _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, out_nbr,
                         out_shared, out_ptr, fill):
        """Pass 1 (fill False) counts each anchor's kept rows into ``kept``; pass 2 writes them at out_ptr."""
        m, bands = run_of.shape
        na = len(anchors)
        for c in prange(chunks):
            count = np.zeros(m, np.int32)
            touched = np.empty(m, np.int32)
            hist = np.zeros(bands + 1, np.int64)
            shared = np.empty(m, np.int32)  # the kept rows' counts
            for x in range(c * na // chunks, (c + 1) * na // chunks):
                a = anchors[x]
                nt, floor = _band_anchor(a, run_of, run_ptr, run_members, max_candidates[x], count, touched, hist,
                                         excl[0][a], excl[1][a])
                w = 0  # keep and reset in one pass; only the kept rows are sorted, and only when written
                for y in range(nt):
                    j = touched[y]
                    if count[j] >= floor:
                        touched[w] = j
                        shared[w] = count[j]
                        w += 1
                    count[j] = 0
                kept[x] = w
                if fill:
                    order = np.argsort(touched[:w])
                    for y in range(w):
                        out_nbr[out_ptr[x] + y] = touched[order[y]]
                        out_shared[out_ptr[x] + y] = shared[order[y]]


def band_candidates(run_of: np.ndarray, run_ptr: np.ndarray, run_members: np.ndarray, anchors: np.ndarray,
                    max_candidates: np.ndarray, excluded=None):
    run_of = np.ascontiguousarray(run_of, dtype=np.int32)
    run_ptr = np.ascontiguousarray(run_ptr, dtype=np.int64)
    run_members = np.ascontiguousarray(run_members, dtype=np.int32)
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    max_candidates = np.ascontiguousarray(max_candidates, dtype=np.int64)
    na = len(anchors)
    chunks = max(1, min(na, 4 * numba.get_num_threads()))
    kept = np.zeros(na, np.int64)
    ptr = np.zeros(na + 1, np.int64)
    empty = np.zeros(0, np.int32)
    excl = _runs(run_of.shape[0], excluded)
    _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, empty, empty, ptr,
                     False)
    np.cumsum(kept, out=ptr[1:])
    nbr = np.empty(ptr[-1], np.int32)
    shared = np.empty(ptr[-1], np.int32)
    _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, nbr, shared, ptr,
                     True)
    return ptr, nbr, shared


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    kind, indptr, idx, w, norms, _, _, _, _, max_len, _, _ = _args(tile)
    out = np.zeros(len(cols), np.float32)
    if len(cols):
        _score_pairs(kind, indptr, idx, w, norms, max_len, np.ascontiguousarray(row_ids, dtype=np.int64),
                     np.ascontiguousarray(ptr, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64), out)
    return out


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    from ..hashing import perm_seeds

    out = np.full((len(indptr) - 1, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    _minhash(np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(codes, dtype=np.int64),
             perm_seeds(num_perm, seed), out)
    return out


_NO_PREFIX = (np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.int32))
_NO_DENSE = (np.zeros(1, np.uint64), np.zeros(1, np.uint8), np.int64(0))


def _args(tile: Tile, min_score: float = 0.0):
    """The kernels' arguments: kind, CSR, weights, postings, vocab, longest row, prefix-filter index."""
    kind = {"set": KIND_SET, "cosine": KIND_COSINE, "edit": KIND_EDIT}[tile.kind]
    prefix = _NO_PREFIX
    if kind == KIND_SET and min_score >= PREFIX_MIN_THRESHOLD:
        kind = KIND_PREFIX
        f = tile.prefix(float(np.float32(min_score)))
        prefix = (np.ascontiguousarray(f.prefix_ptr, dtype=np.int64),
                  np.ascontiguousarray(f.prefix_ranks, dtype=np.int32),
                  np.ascontiguousarray(f.prefix_post_ptr, dtype=np.int64),
                  np.ascontiguousarray(f.prefix_post_rows, dtype=np.int32))
    f64 = np.zeros(1, np.float64)
    lengths = np.diff(tile.indptr)
    dense = _NO_DENSE
    if tile.kind == "set" and tile.dense_words:
        dense = (np.ascontiguousarray(tile.dense_bits, dtype=np.uint64),
                 np.ascontiguousarray(tile.dense_code, dtype=np.uint8), np.int64(tile.dense_words))
    cosine = tile.kind == "cosine"
    return (kind, tile.indptr, tile.indices,
            tile.weights if cosine else f64,
            tile.norms if cosine else f64,
            tile.post_ptr, tile.post_rows,
            tile.post_weights if cosine else f64,
            max(tile.vocab, 1), int(lengths.max()) if len(lengths) else 0, prefix, dense)


_NO_BOUNDS = (np.zeros(1, np.uint8), np.zeros(1, np.float64), np.zeros(1, np.float64), np.zeros(1, np.int32),
              np.zeros(2, np.int64), np.zeros(1, np.int32), np.zeros(1, np.float64), False)


def _bounds(tile: Tile):
    """TF-IDF's heavy-code bounds (Tile.add_heavy_bounds), when the tile has them."""
    if tile.kind != "cosine" or tile.heavy is None:
        return _NO_BOUNDS
    f64, i32 = np.float64, np.int32
    return (np.ascontiguousarray(tile.heavy, dtype=np.uint8), np.ascontiguousarray(tile.heavy_norm, dtype=f64),
            np.ascontiguousarray(tile.inv_norms, dtype=f64), np.ascontiguousarray(tile.by_heavy, dtype=i32),
            np.ascontiguousarray(tile.heavy_ptr, dtype=np.int64), np.ascontiguousarray(tile.heavy_idx, dtype=i32),
            np.ascontiguousarray(tile.heavy_w, dtype=f64), True)


def _runs(n: int, excluded):
    """(lo, hi) int32 per row: the rows it never pairs with (itself without same-user exclusion)."""
    if excluded is None or excluded[0] is None:
        own = np.arange(n, dtype=np.int32)
        return own, own + 1
    return np.ascontiguousarray(excluded[0], dtype=np.int32), np.ascontiguousarray(excluded[1], dtype=np.int32)


def _excluded(tile: Tile):
    return _runs(tile.n, (tile.ex_lo, tile.ex_hi))


def _nchunks(nrows: int) -> int:
    return max(1, min(nrows, numba.get_num_threads() * 8))


def _compact(off: np.ndarray, counts: np.ndarray, *arrays):
    """The first counts[r] entries of each row's slot [off[r], off[r+1]), concatenated."""
    keep = np.repeat(np.arange(len(counts)), counts) if counts.sum() else np.zeros(0, np.int64)
    pos = off[keep] + (np.arange(len(keep)) - np.repeat(np.cumsum(counts) - counts, counts))
    return (keep,) + tuple(a[pos] for a in arrays)


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cap = np.clip(np.asarray(k_row, dtype=np.int64), 0, max(tile.n - 1, 0))
    off = np.concatenate(([0], np.cumsum(cap))).astype(np.int64)
    out_col = np.empty(off[-1], np.int32)
    out_score = np.empty(off[-1], np.float32)
    counts = np.zeros(len(rows), np.int64)
    if len(rows):
        _mine_rows(*_args(tile, min_score), _bounds(tile), _excluded(tile), rows, off, np.float32(min_score), False,
                   _nchunks(len(rows)), out_col, out_score, counts)
    _, cols, scores = _compact(off, counts, out_col, out_score)
    return counts, cols, scores


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    """Threshold join: every (i, j > i) with s > 0 and s >= min_score, in row blocks whose worst-case
    output (n − 1 − i per row) stays under PAIRS_BLOCK_ENTRIES."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    args = _args(tile, min_score)
    cap = np.maximum(tile.n - 1 - rows, 0)
    parts = []
    start = 0
    while start < len(rows):
        csum = np.cumsum(cap[start:])
        stop = start + max(1, int(np.searchsorted(csum, PAIRS_BLOCK_ENTRIES, side="right")))
        sub = rows[start:stop]
        off = np.concatenate(([0], np.cumsum(cap[start:stop]))).astype(np.int64)
        out_col = np.empty(off[-1], np.int32)
        out_score = np.empty(off[-1], np.float32)
        counts = np.zeros(len(sub), np.int64)
        _mine_rows(*args, _bounds(tile), _excluded(tile), sub, off, np.float32(min_score), True, _nchunks(len(sub)),
                   out_col, out_score, counts)
        keep, cols, scores = _compact(off, counts, out_col, out_score)
        parts.append((sub[keep].astype(np.int32), cols, scores))
        start = stop
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return tuple(np.concatenate(p) for p in zip(*parts))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros(HIST_BINS, np.int64)
    return _histogram(*_args(tile), _excluded(tile), rows, int(prefix), _nchunks(len(rows)))


def set_num_threads(n: int) -> None:
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
