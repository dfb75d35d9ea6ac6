"""The ``embedding`` metric's backend: blocked GEMM (NumPy → BLAS) over the given vectors.

s(i, j) = float32(max(0, min(1, (v_i · v_j) / (‖v_i‖ ‖v_j‖)))) in float64; a zero vector has similarity 0
with everything. One block of rows against the whole bucket at a time keeps memory at
BLOCK_VALUES doubles whatever the bucket's size. Same interface as the other backends, so every engine
and selection mode runs unchanged; the per-anchor rule (s > 0, s >= min_score, best k by score descending
then seq_id ascending) is applied to each block's score matrix with a partition, not a sort of the row.
"""
from __future__ import annotations

import numpy as np

from ..csr import best_first, first_k
from ..select import HIST_BINS
from ..tiles import Tile

name = "blas"
BLOCK_VALUES = 1 << 23   # 64 MiB of float64 scores per block
PAIR_CHUNK = 1 << 16


def available() -> bool:
    return True


def _row_blocks(tile: Tile, rows: np.ndarray):
    step = max(1, BLOCK_VALUES // max(tile.n, 1))
    for a in range(0, len(rows), step):
        yield a, rows[a:a + step]


def _safe(norms: np.ndarray) -> np.ndarray:
    """Norms with zeros replaced by 1: a zero vector's dot products are 0 and stay 0."""
    return np.where(norms > 0, norms, 1.0)


def _scores(tile: Tile, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), n]: the scores of rows against every column, zeroed where a row may not pair
    (itself, or its user's run with same-user exclusion)."""
    s = tile.vectors[rows] @ tile.vectors.T
    s /= _safe(tile.norms[rows])[:, None]
    s /= _safe(tile.norms)[None, :]
    np.clip(s, 0.0, 1.0, out=s)
    s = s.astype(np.float32)
    s[np.arange(len(rows)), rows] = 0
    if tile.ex_lo is not None:
        cols = np.arange(tile.n)[None, :]
        s[(cols >= tile.ex_lo[rows][:, None]) & (cols < tile.ex_hi[rows][:, None])] = 0
    return s


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    """Per row: columns with s > 0 and s >= min_score, best k_row first (score desc, column asc)."""
    rows = np.asarray(rows, dtype=np.int64)
    k_row = np.asarray(k_row, dtype=np.int64)
    counts = np.zeros(len(rows), dtype=np.int64)
    cols_out, scores_out = [], []
    floor = np.float32(min_score)
    for a, block in _row_blocks(tile, rows):
        s = _scores(tile, block)
        s[s < floor] = 0
        k = k_row[a:a + len(block)]
        kth = np.zeros(len(block), dtype=np.float32)  # per row, the k-th largest score (ties all kept here)
        for kv in np.unique(k[(k > 0) & (k < tile.n)]).tolist():
            r = np.flatnonzero(k == kv)
            kth[r] = np.partition(s[r], tile.n - kv, axis=1)[:, tile.n - kv]
        keep = (s > 0) & (s >= kth[:, None]) & (k > 0)[:, None]
        r, c = np.nonzero(keep)
        v = s[r, c]
        order = best_first(r, c, v)
        r, c, v = r[order], c[order], v[order]
        cut, counts[a:a + len(block)] = first_k(r, k, len(block))  # ties at the cut: the lower seq_ids stay
        cols_out.append(c[cut].astype(np.int32))
        scores_out.append(v[cut])
    if not cols_out:
        return counts, np.zeros(0, np.int32), np.zeros(0, np.float32)
    return counts, np.concatenate(cols_out), np.concatenate(scores_out)


def _upper(tile: Tile, rows: np.ndarray, min_score: float):
    """(rows, cols, scores) of every pair (i, j > i) with s > 0 and s >= min_score, block by block."""
    floor = np.float32(min_score)
    for _, block in _row_blocks(tile, np.asarray(rows, dtype=np.int64)):
        s = _scores(tile, block)
        keep = (s > 0) & (s >= floor) & (np.arange(tile.n)[None, :] > block[:, None])
        r, c = np.nonzero(keep)
        yield block[r], c, s[r, c]


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    """Threshold join: every (i, j > i) with s > 0 and s >= min_score, as (rows, cols, scores)."""
    parts = list(_upper(tile, rows, min_score))
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return tuple(np.concatenate(p).astype(t) for p, t in zip(zip(*parts), (np.int32, np.int32, np.float32)))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    """Counts of float32 bit patterns of s over pairs (i, j > i), s > 0: high 16 bits, or low 16 bits
    among scores whose high bits equal ``prefix``."""
    hist = np.zeros(HIST_BINS, dtype=np.int64)
    for _, _, s in _upper(tile, rows, 0.0):
        bits = s.view(np.uint32)
        if prefix < 0:
            hist += np.bincount(bits >> 16, minlength=HIST_BINS)
        else:
            hist += np.bincount(bits[(bits >> 16) == prefix] & 0xFFFF, minlength=HIST_BINS)
    return hist


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact scores of listed pairs: row_ids[r] against cols[ptr[r]:ptr[r+1]] (the same products as the
    blocked GEMM, up to summation order), PAIR_CHUNK pairs at a time."""
    heads = np.repeat(np.asarray(row_ids, dtype=np.int64), np.diff(ptr))
    cols = np.asarray(cols, dtype=np.int64)
    out = np.zeros(len(cols), dtype=np.float32)
    for a in range(0, len(cols), PAIR_CHUNK):
        i, j = heads[a:a + PAIR_CHUNK], cols[a:a + PAIR_CHUNK]
        s = np.einsum("ij,ij->i", tile.vectors[i], tile.vectors[j]) / (_safe(tile.norms[i]) * _safe(tile.norms[j]))
        out[a:a + PAIR_CHUNK] = np.where(i == j, 0.0, np.clip(s, 0.0, 1.0))
    return out
