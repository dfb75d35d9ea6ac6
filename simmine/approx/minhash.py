"""MinHash-LSH candidates, re-scored exactly (SPEC §5 ``--method minhash``).

1. Signatures: sig[i, p] = min over the anchor's set (unique items, or n-grams for ``ngram``) of
   h_p(v) = low 32 bits of splitmix64(v ⊕ seed_p); P(sig[i,p] = sig[j,p]) = Jaccard(i, j).
2. Candidates by sorting (see below): anchors are sorted by band keys or signature prefixes (bucket
   included), and every anchor pairs with the next ``window`` anchors: runs of any size cost O(N·window),
   never a quadratic group, and no Python dictionary holds buckets.
3. Candidate pairs are re-scored exactly with the build's metric by the backend and selected with the same
   semantics as exact builds (top-k, alpha, min-sim, caps, ties by seq_id).
4. Recall@k is estimated against exact search on a seeded sample of anchors and written to the manifest.

Candidates come two ways:
- min-sim (or when --bands/--rows are given): LSH banding, b bands of r rows chosen so that a pair at the
  target Jaccard t is found with probability >= 0.95 (t = S for jaccard, else the 5th percentile of the
  estimated Jaccard of sampled anchors' exact neighbours); when that needs r = 1, sorted signatures instead;
- top-k and alpha: sorted signatures (the LSH-forest idea). Nearest neighbours in recommendation logs often
  have Jaccard near 0.1, where banding degenerates to one row per band and everything collides; sorting by
  random prefixes of the signature puts anchors that share many minhashes next to each other at any
  similarity level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..engines.local import Plan, WeakResult, selection_request
from ..errors import InputError
from ..metrics import Features
from ..select import Selection
from .common import exact_sample, rescore

WINDOW = 32
PAIR_BATCH = 1 << 24  # candidate keys re-scored together: memory is O(batch + kept pairs), not O(candidates)
TARGET_PROBABILITY = 0.95


def splitmix64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def perm_seeds(num_perm: int, seed: int) -> np.ndarray:
    """Per-permutation seeds, the same in every backend."""
    base = np.uint64((int(seed) * 0x100000001B3) & (2**64 - 1))
    return splitmix64(base + np.arange(num_perm, dtype=np.uint64))


def choose_bands(num_perm: int, threshold: float, target: float = TARGET_PROBABILITY):
    """(bands, rows): the most selective banding that still finds a pair at Jaccard ``threshold`` with
    probability >= target (1 − (1 − t^r)^b)."""
    t = min(max(float(threshold), 1e-6), 1.0)
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1 - (1 - t ** r) ** b >= target:
            best = (b, r)
    return best


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted unique int64 keys (a sort and a neighbour comparison: faster than np.unique's hash path)."""
    keys = np.sort(keys)
    if len(keys) < 2:
        return keys
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))]


def batched(parts, limit: int = PAIR_BATCH):
    """Groups arrays of pair keys into unique sorted batches of about ``limit`` keys (the rescoring unit)."""
    held, size = [], 0
    for part in parts:
        held.append(part)
        size += len(part)
        if size >= limit:
            yield unique_sorted(np.concatenate(held))
            held, size = [], 0
    if held:
        yield unique_sorted(np.concatenate(held))


def candidate_pairs(sig: np.ndarray, bucket: Optional[np.ndarray], bands: int, rows: int,
                    window: int = WINDOW):
    """Candidate pairs as batches of int64 keys i·n + j (i < j), from banded signatures."""
    return batched(_band_parts(sig, bucket, bands, rows, window))


def _band_parts(sig, bucket, bands, rows, window):
    n = sig.shape[0]
    usable = ~(sig == 0xFFFFFFFF).all(axis=1)  # empty sets collide with each other but share nothing
    ids = np.flatnonzero(usable)
    for b in range(bands):
        band = sig[ids, b * rows:(b + 1) * rows].astype(np.uint64)
        key = np.full(len(ids), np.uint64(b), dtype=np.uint64)
        for c in range(rows):
            key = splitmix64(key ^ band[:, c])
        if bucket is not None:
            key = splitmix64(key ^ bucket[ids].astype(np.uint64))
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        for d in range(1, min(window, len(ids) - 1) + 1):
            same = sorted_key[:-d] == sorted_key[d:]
            if not same.any():
                break
            i, j = ids[order[:-d][same]], ids[order[d:][same]]
            lo, hi = np.minimum(i, j), np.maximum(i, j)
            yield lo.astype(np.int64) * n + hi


def forest_pairs(sig: np.ndarray, bucket: Optional[np.ndarray], trees: int, depth: int, window: int,
                 seed: int):
    """Candidate pairs for nearest-neighbour selection: for each of ``trees`` random orders of the signature
    columns, anchors are sorted by their first ``depth`` minhashes (bucket first), and each pairs with the
    next ``window`` anchors. Neighbours in that order share long prefixes of minhashes, so they are likely
    similar whatever the absolute similarity level; candidates are at most N·window·trees, handed out in
    batches of about PAIR_BATCH keys."""
    return batched(_forest_parts(sig, bucket, trees, depth, window, seed))


def _forest_parts(sig, bucket, trees, depth, window, seed):
    n, num_perm = sig.shape
    usable = ~(sig == 0xFFFFFFFF).all(axis=1)
    ids = np.flatnonzero(usable)
    rng = np.random.default_rng(seed)
    for _ in range(trees):
        cols = rng.permutation(num_perm)[:depth]
        sort_keys = [sig[ids, c] for c in cols[::-1]]
        if bucket is not None:
            sort_keys.append(bucket[ids])
        order = ids[np.lexsort(sort_keys)]
        for d in range(1, min(window, len(order) - 1) + 1):
            i, j = order[:-d], order[d:]
            if bucket is not None:
                same = bucket[i] == bucket[j]
                i, j = i[same], j[same]
            yield np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)


@dataclass
class MinHashParams:
    num_perm: int = 128
    bands: Optional[int] = None
    rows: Optional[int] = None
    seed: int = 0
    recall_sample: int = 500
    trees: int = 16
    depth: int = 8


def _sample_jaccard(sig: np.ndarray, exact: dict) -> float:
    """The 5th percentile of the estimated Jaccard between sampled anchors and their exact neighbours."""
    est = [float(np.mean(sig[a] == sig[j])) for a, (nbrs, _) in exact.items() for j in nbrs.tolist()]
    return float(np.percentile(est, 5)) if est else 0.5


def mine_minhash(features: Features, plan: Plan, sel: Selection, backend, bucket_codes, params: MinHashParams,
                 progress=None) -> WeakResult:
    """Weak lists from MinHash candidates re-scored exactly (global alpha is refused by the caller)."""
    n = features.n
    k_all, _ = selection_request(sel, plan)
    exact = exact_sample(features, plan, sel, backend, params.recall_sample, params.seed)
    sig = backend.minhash(features.indptr, features.indices, params.num_perm, params.seed)
    bands, rows, target = params.bands, params.rows, None
    if bands is None and rows is None and sel.mode == "min_sim":
        target = sel.min_sim if features.kind == "set" else _sample_jaccard(sig, exact)
        bands, rows = choose_bands(params.num_perm, target)
        if rows < 2:  # one row per band: runs of one popular minhash would be cut by the window
            bands = rows = None
    elif bands is not None or rows is not None:
        bands = bands or params.num_perm // rows
        rows = rows or params.num_perm // bands
        if bands * rows > params.num_perm:
            raise InputError(f"--bands × --rows = {bands * rows} exceeds --num-perm {params.num_perm}")
    banded = bands is not None
    if banded:
        pairs = candidate_pairs(sig, bucket_codes, bands, rows)
    else:
        k_max = int(k_all.max()) if n else 0
        window = int(min(max(2 * k_max, 2 * WINDOW if sel.mode == "min_sim" else WINDOW), 256))
        pairs = forest_pairs(sig, bucket_codes, params.trees, min(params.depth, params.num_perm), window,
                             params.seed)
    stats = {"method": "minhash", "num_perm": params.num_perm, "seed": params.seed}
    if banded:
        stats.update(candidates="lsh-banding", bands=int(bands), rows=int(rows), target_jaccard=target)
    else:
        stats.update(candidates="sorted-signatures", trees=params.trees, depth=params.depth, window=window,
                     target_jaccard=target)
    return rescore(features, plan, sel, backend, pairs, exact, stats)
