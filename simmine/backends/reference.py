"""The slow, obviously-correct reference backend: every pair scored from the definitions, in Python.

Tests use it as the oracle. Scores are computed in double precision and rounded to float32 once, with dot
products summed in ascending code order, exactly as the native kernels do.
"""
from __future__ import annotations

import numpy as np

from ..select import HIST_BINS
from ..tiles import Tile

name = "python"


def available() -> bool:
    return True


def edit_distance(a, b) -> int:
    """Levenshtein distance with unit-cost insertion, deletion and substitution."""
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return prev[-1]


def pair_score(tile: Tile, i: int, j: int) -> np.float32:
    """s(i, j) by the metric's definition (docs/metrics.md)."""
    a = tile.indices[tile.indptr[i]:tile.indptr[i + 1]]
    b = tile.indices[tile.indptr[j]:tile.indptr[j + 1]]
    if tile.kind == "set":
        inter = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - inter
        return np.float32(inter / union) if inter > 0 else np.float32(0.0)
    if tile.kind == "cosine":
        na, nb = float(tile.norms[i]), float(tile.norms[j])
        if na <= 0 or nb <= 0:
            return np.float32(0.0)
        wa = dict(zip(a.tolist(), tile.weights[tile.indptr[i]:tile.indptr[i + 1]].tolist()))
        wb = dict(zip(b.tolist(), tile.weights[tile.indptr[j]:tile.indptr[j + 1]].tolist()))
        dot = 0.0
        for v in sorted(set(wa) & set(wb)):
            dot += wa[v] * wb[v]
        return np.float32(min(dot / (na * nb), 1.0)) if dot > 0 else np.float32(0.0)
    d = edit_distance(a.tolist(), b.tolist())
    return np.float32(1.0 - d / max(len(a), len(b)))


def _candidates(tile: Tile, i: int, j_min: int = 0):
    excluded = tile.excluded(i)
    for j in range(j_min, tile.n):
        if j not in excluded:
            s = pair_score(tile, i, j)
            if s > 0:
                yield j, s


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    """Per row: columns with s > 0 and s >= min_score, best k_row first (score desc, column asc)."""
    counts = np.zeros(len(rows), dtype=np.int64)
    cols, scores = [], []
    threshold = np.float32(min_score)
    for r, (i, k) in enumerate(zip(rows.tolist(), k_row.tolist())):
        cands = sorted(((-float(s), j) for j, s in _candidates(tile, i) if s >= threshold))[: max(k, 0)]
        counts[r] = len(cands)
        cols.extend(j for _, j in cands)
        scores.extend(-s for s, _ in cands)
    return counts, np.asarray(cols, dtype=np.int32), np.asarray(scores, dtype=np.float32)


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    """Threshold join: every (i, j > i) with s > 0 and s >= min_score, as (rows, cols, scores)."""
    threshold = np.float32(min_score)
    found = [(i, j, s) for i in rows.tolist() for j, s in _candidates(tile, i, i + 1) if s >= threshold]
    return (np.asarray([f[0] for f in found], dtype=np.int32), np.asarray([f[1] for f in found], dtype=np.int32),
            np.asarray([f[2] for f in found], dtype=np.float32))


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact scores of listed pairs: row_ids[r] against cols[ptr[r]:ptr[r+1]]."""
    out = np.zeros(len(cols), dtype=np.float32)
    for r, i in enumerate(row_ids.tolist()):
        for t in range(ptr[r], ptr[r + 1]):
            out[t] = pair_score(tile, i, int(cols[t]))
    return out


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures [n, num_perm] with the native kernels' hash family (splitmix64 of code ⊕ seed_p)."""
    from ..hashing import perm_seeds, splitmix64

    seeds = perm_seeds(num_perm, seed)
    n = len(indptr) - 1
    sig = np.full((n, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    codes = np.asarray(codes, dtype=np.uint64)
    for i in range(n):
        v = codes[indptr[i]:indptr[i + 1]]
        if len(v):
            h = (splitmix64(v[:, None] ^ seeds[None, :]) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            sig[i] = h.min(axis=0)
    return sig


def band_candidates(run_of: np.ndarray, run_ptr: np.ndarray, run_members: np.ndarray, anchors: np.ndarray,
                    max_candidates: np.ndarray, excluded=None):
    """LSH band collisions of anchors: (ptr, rows ascending, runs shared), rows sharing fewer runs than the
    max_candidates[x]-th most dropped when it is > 0 (ties kept). ``excluded`` = (lo, hi): rows lo[a]..hi[a]-1
    are never anchor a's candidates (itself only, without)."""
    ptr, nbr, shared = [0], [], []
    for a, most in zip(np.asarray(anchors).tolist(), np.asarray(max_candidates).tolist()):
        lo, hi = (a, a + 1) if excluded is None else (int(excluded[0][a]), int(excluded[1][a]))
        runs = [r for r in run_of[a].tolist() if r >= 0]
        rows = np.concatenate([run_members[run_ptr[r]:run_ptr[r + 1]] for r in runs]) if runs else np.zeros(0)
        rows = rows.astype(np.int64)
        rows, counts = np.unique(rows[(rows < lo) | (rows >= hi)], return_counts=True)
        if most > 0 and len(rows) > most:
            keep = counts >= np.sort(counts)[::-1][most - 1]
            rows, counts = rows[keep], counts[keep]
        nbr.append(rows)
        shared.append(counts)
        ptr.append(ptr[-1] + len(rows))
    return (np.asarray(ptr, dtype=np.int64), np.concatenate(nbr).astype(np.int32) if nbr else np.zeros(0, np.int32),
            np.concatenate(shared).astype(np.int32) if shared else np.zeros(0, np.int32))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    """Counts of float32 bit patterns of s over pairs (i, j > i), s > 0: high 16 bits, or low 16 bits
    among scores whose high bits equal ``prefix``."""
    hist = np.zeros(HIST_BINS, dtype=np.int64)
    for i in rows.tolist():
        for _, s in _candidates(tile, i, i + 1):
            bits = int(np.float32(s).view(np.uint32))
            if prefix < 0:
                hist[bits >> 16] += 1
            elif bits >> 16 == prefix:
                hist[bits & 0xFFFF] += 1
    return hist
