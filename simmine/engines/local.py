"""The local engine: buckets → row blocks → backend kernels → per-anchor lists in seq_id order.

Blocks are sized so that one block's output buffer stays under BLOCK_ENTRIES entries; memory is
O(output + one bucket's features + per-thread O(bucket) scratch), never O(N²).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..csr import best_first, first_k
from ..metrics import Features
from ..select import (HIST_BINS, GlobalThreshold, Selection, check_output_size, global_threshold, k_per_anchor,
                      min_score_of)

BLOCK_ENTRIES = 1 << 22
MAX_BLOCK_ROWS = 4096


@dataclass
class Plan:
    """Anchors grouped into buckets: members[b] are ascending seq_ids. ``others`` counts, per anchor, the
    anchors it may be compared with (its bucket less itself and, with same-user exclusion, its own user's
    anchors); ``compared_pairs`` the unordered pairs that may be compared (docs/selection.md)."""

    members: list
    bucket_size: np.ndarray   # n_u per anchor
    others: np.ndarray
    compared_pairs: int


def make_plan(n: int, bucket_codes: Optional[np.ndarray], owners: Optional[np.ndarray] = None) -> Plan:
    """The plan of N anchors (one bucket without ``bucket_codes``); ``owners`` (a user per anchor) when the
    anchors of one user are never compared."""
    bucket = bucket_codes if bucket_codes is not None else np.zeros(n, dtype=np.int64)
    if bucket_codes is None:
        members = [np.arange(n, dtype=np.int64)] if n else []
    else:
        order = np.argsort(bucket_codes, kind="stable")
        cuts = np.flatnonzero(np.diff(bucket_codes[order])) + 1
        members = [m for m in np.split(order.astype(np.int64), cuts) if len(m)]
    size = np.zeros(n, dtype=np.int64)
    for m in members:
        size[m] = len(m)
    pairs = int(sum(len(m) * (len(m) - 1) // 2 for m in members))
    others = np.maximum(size - 1, 0)
    if owners is not None and n:
        per_anchor, same = key_counts(bucket, owners)
        others = size - per_anchor
        pairs -= int(np.sum(same * (same - 1) // 2))
    return Plan(members, size, others.astype(np.int64), pairs)


def key_counts(a: np.ndarray, b: np.ndarray):
    """How many elements share each element's (a, b) pair, per element and per distinct pair."""
    key = np.asarray(a, np.int64) * (int(np.max(b)) + 1) + np.asarray(b, np.int64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)], counts


@dataclass
class WeakResult:
    offsets: np.ndarray      # int64 [N+1]
    neighbors: np.ndarray    # uint32 seq_ids
    scores: np.ndarray       # float32
    threshold: Optional[GlobalThreshold] = None
    stats: dict = field(default_factory=dict)


def _tile_blocks(features: Features, plan: Plan, progress, label: str):
    """(members, tile, local rows) for every bucket of two or more anchors, MAX_BLOCK_ROWS rows at a time,
    ticking the progress bar."""
    tick = progress(label, _rows_in_buckets(plan, 0, features.n)) if progress else None
    for members in plan.members:
        if len(members) < 2:
            continue
        tile = features.tile(members)
        for lo in range(0, len(members), MAX_BLOCK_ROWS):
            hi = min(lo + MAX_BLOCK_ROWS, len(members))
            yield members, tile, np.arange(lo, hi, dtype=np.int64)
            if tick:
                tick(hi - lo)
    if tick:
        tick(0, done=True)


def capacity_blocks(k_rows: np.ndarray):
    """Row ranges whose summed capacity stays under BLOCK_ENTRIES (at least one row each)."""
    start, n = 0, len(k_rows)
    csum = np.concatenate(([0], np.cumsum(k_rows)))
    while start < n:
        end = int(np.searchsorted(csum, csum[start] + BLOCK_ENTRIES, side="right")) - 1
        end = min(max(end, start + 1), start + MAX_BLOCK_ROWS, n)
        yield start, end
        start = end


def mine_weak(features: Features, plan: Plan, sel: Selection, backend, progress: Callable = None,
              max_output_gb: float = float("inf")) -> WeakResult:
    """Weak positives of every anchor per ``sel`` (docs/selection.md).

    Top-k modes (alpha anchor scope, k) select per anchor row; threshold modes (min-sim, global alpha) score
    each unordered pair once through ``backend.pairs`` and keep it both ways.
    """
    n = features.n
    if sel.mode == "alpha_global":
        threshold = global_threshold_of(features, plan, sel, backend, progress)
        if threshold.tau is None:
            empty = np.zeros(0, dtype=np.uint32)
            return WeakResult(np.zeros(n + 1, dtype=np.int64), empty, empty.astype(np.float32), threshold)
        check_threshold_output(threshold, sel, n, max_output_gb)
        return _mine_threshold(features, plan, threshold.tau, sel.max_per_anchor, backend, progress, threshold)
    if sel.mode == "min_sim":
        return _mine_threshold(features, plan, sel.min_sim, sel.max_per_anchor, backend, progress)
    return mine_weak_range(features, plan, sel, backend, 0, n, progress=progress)


def _rows_in_buckets(plan: Plan, lo: int, hi: int) -> int:
    """Anchors lo..hi-1 that have another anchor to be compared with."""
    return int(np.count_nonzero(plan.others[lo:hi] > 0))


def check_threshold_output(threshold: GlobalThreshold, sel: Selection, n: int, max_output_gb: float) -> None:
    """Global alpha's output size is exact once τ is known: refuse it past --max-output-gb."""
    kept = 2 * threshold.pairs_at_or_above if threshold.tau is not None else 0
    if sel.max_per_anchor is not None:
        kept = min(kept, n * sel.max_per_anchor)
    check_output_size(kept * 8, max_output_gb, "exact, now that the threshold is known")


def selection_request(sel: Selection, plan: Plan, threshold: Optional[GlobalThreshold] = None):
    """(k per anchor, score floor) of an exact per-anchor selection; global alpha needs its threshold."""
    k_all = k_per_anchor(sel, plan.others)
    if sel.mode != "alpha_global":
        return k_all, min_score_of(sel)
    if threshold is None:
        raise ValueError("global alpha: compute the threshold before selecting per anchor")
    if threshold.tau is None:
        return np.zeros_like(k_all), 0.0
    return k_all, threshold.tau


def select_anchors(features: Features, plan: Plan, sel: Selection, backend, anchors,
                   threshold: Optional[GlobalThreshold] = None) -> dict:
    """Exact selections of some anchors, each against its whole bucket: {anchor: (neighbors, scores)}."""
    k_all, min_score = selection_request(sel, plan, threshold)
    anchors = np.unique(np.asarray(anchors, dtype=np.int64))
    out = {int(a): (np.zeros(0, np.int64), np.zeros(0, np.float32)) for a in anchors.tolist()}
    for members in plan.members:
        local = np.flatnonzero(np.isin(members, anchors))
        if not len(local) or len(members) < 2:
            continue
        counts, cols, scores = backend.select(features.tile(members), local, k_all[members[local]], min_score)
        offs = np.concatenate(([0], np.cumsum(counts)))
        for t, a in enumerate(members[local].tolist()):
            out[a] = (members[cols[offs[t]:offs[t + 1]]], scores[offs[t]:offs[t + 1]])
    return out


def _mine_threshold(features, plan, min_score, cap, backend, progress, threshold=None) -> WeakResult:
    """Every pair with s >= min_score (and s > 0), both ways, each anchor's list sorted and capped."""
    n = features.n
    heads, tails, scores = [], [], []
    for members, tile, rows in _tile_blocks(features, plan, progress, "score"):
        r, c, s = backend.pairs(tile, rows, min_score)
        heads.append(members[r])
        tails.append(members[c])
        scores.append(s)
    i = np.concatenate(heads) if heads else np.zeros(0, np.int64)
    j = np.concatenate(tails) if tails else np.zeros(0, np.int64)
    s = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    limit = None if cap is None else np.full(n, cap, dtype=np.int64)
    result = assemble_pairs(n, i, j, s, limit, min_score, backend)
    result.threshold = threshold
    return result


def assemble_pairs(n: int, i, j, s, k_per_anchor: Optional[np.ndarray] = None, min_score: float = 0.0,
                   backend=None) -> WeakResult:
    """Scored unordered pairs → per-anchor lists (both ways), s > 0 and s >= min_score, sorted by score
    descending then seq_id ascending, each anchor keeping at most k_per_anchor[a] (all when None).
    A backend with its own ``assemble_pairs`` (the C++ core: counting sort) does it; otherwise NumPy."""
    if backend is not None and hasattr(backend, "assemble_pairs"):
        limit = k_per_anchor if k_per_anchor is not None else np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        return WeakResult(*backend.assemble_pairs(n, i, j, s, limit, min_score))
    keep = (s > 0) & (s >= np.float32(min_score))
    i, j, s = i[keep], j[keep], s[keep]
    anchor, nbr, score = np.concatenate((i, j)), np.concatenate((j, i)), np.concatenate((s, s)).astype(np.float32)
    order = best_first(anchor, nbr, score)
    anchor, nbr, score = anchor[order], nbr[order], score[order]
    keep, counts = first_k(anchor, k_per_anchor if k_per_anchor is not None else len(anchor), n)
    nbr, score = nbr[keep], score[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return WeakResult(offsets, nbr.astype(np.uint32), score.astype(np.float32))


def mine_weak_range(features: Features, plan: Plan, sel: Selection, backend, lo: int, hi: int,
                    threshold: Optional[GlobalThreshold] = None, progress: Callable = None) -> WeakResult:
    """Weak lists of anchors lo..hi-1 (an output shard, or all of them), each selected against its whole
    bucket in row blocks whose output stays under BLOCK_ENTRIES.

    Threshold modes select per anchor here (k = all, s >= threshold) instead of scoring pairs once, so that
    a shard depends on nothing outside its rows; global alpha needs its threshold computed beforehand.
    """
    k_all, min_score = selection_request(sel, plan, threshold)
    n = features.n
    counts = np.zeros(n, dtype=np.int64)
    chunks = []
    tick = progress("score", _rows_in_buckets(plan, lo, hi)) if progress else None
    for members in plan.members:
        first, last = np.searchsorted(members, [lo, hi])
        if first == last or len(members) < 2:
            continue
        tile = features.tile(members)
        k_rows = k_all[members]
        local = np.arange(first, last, dtype=np.int64)
        for a, b in capacity_blocks(np.minimum(k_rows[local], len(members) - 1)):
            rows = local[a:b]
            if k_rows[rows].any():
                c, cols, s = backend.select(tile, rows, k_rows[rows], min_score)
                anchors = members[rows]
                counts[anchors] = c
                chunks.append((anchors, c, members[cols].astype(np.uint32), s))
            if tick:
                tick(b - a)
    if tick:
        tick(0, done=True)
    offsets, neighbors, scores = _assemble(n, counts, chunks)
    start, stop = offsets[lo], offsets[hi]
    return WeakResult(offsets[lo:hi + 1] - start, neighbors[start:stop], scores[start:stop], threshold)


def global_threshold_of(features: Features, plan: Plan, sel: Selection, backend, progress=None) -> GlobalThreshold:
    """τ of a global-alpha selection, from two histogram passes over every compared pair."""

    high = score_histogram(features, plan, backend, -1, progress, "threshold")
    return global_threshold(sel.alpha, plan.compared_pairs, high,
                            lambda p: score_histogram(features, plan, backend, p, progress, "threshold (exact)"))


def score_histogram(features: Features, plan: Plan, backend, prefix: int, progress=None, label: str = "threshold"):
    """HIST_BINS counts of every compared pair's score bits (the high 16 bits, or the low 16 bits of the
    pairs whose high bits equal ``prefix``), one pass of global alpha's threshold search."""
    hist = np.zeros(HIST_BINS, dtype=np.int64)
    for _, tile, rows in _tile_blocks(features, plan, progress, label):
        hist += backend.histogram(tile, rows, prefix)
    return hist


def _assemble(n, counts, chunks):
    """Concatenates per-block results into one CSR in seq_id order."""
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    neighbors = np.empty(offsets[-1], dtype=np.uint32)
    scores = np.empty(offsets[-1], dtype=np.float32)
    for anchors, c, cols, s in chunks:
        if not len(cols):
            continue
        src_start = np.cumsum(c) - c
        dest = np.repeat(offsets[anchors] - src_start, c) + np.arange(len(cols))
        neighbors[dest] = cols
        scores[dest] = s
    return offsets, neighbors, scores


@dataclass
class StrongGroups:
    """Strong positives as groups (docs/output.md): the anchors sharing a (bucket, target), numbered in
    order of their first member; members[offsets[g]:offsets[g + 1]] ascending. O(N), whatever the groups'
    sizes; strong(i) is i's group less i (and, with same-user exclusion, less its user's anchors)."""

    group: np.ndarray     # uint32 per anchor
    offsets: np.ndarray   # int64 [G + 1]
    members: np.ndarray   # uint32 seq_ids


def first_members(target_codes: np.ndarray, bucket_codes: Optional[np.ndarray], ids=None) -> np.ndarray:
    """Per anchor, the smallest seq_id with its (bucket, target): its group's name, the same whichever
    anchors are grouped together first (``ids``: the anchors' seq_ids, ascending; default 0..N-1)."""
    n = len(target_codes)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if not n:
        return ids
    bucket = np.zeros(n, np.int64) if bucket_codes is None else np.asarray(bucket_codes, np.int64)
    key = bucket * (int(target_codes.max()) + 1) + target_codes
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return ids[first][inverse.reshape(-1)]


def groups_of(first: np.ndarray) -> StrongGroups:
    """StrongGroups from each anchor's first member (anchors in seq_id order)."""
    heads, group = np.unique(first, return_inverse=True)  # heads ascend: groups in order of first member
    group = group.reshape(-1)
    members = np.argsort(group, kind="stable").astype(np.uint32)  # seq_id ascending within a group
    offsets = np.zeros(len(heads) + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=len(heads)), out=offsets[1:])
    return StrongGroups(group.astype(np.uint32), offsets, members)


def strong_groups(target_codes: np.ndarray, bucket_codes: Optional[np.ndarray]) -> StrongGroups:
    """The strong groups of anchors 0..N-1."""
    return groups_of(first_members(target_codes, bucket_codes))


def strong_pairs(groups: StrongGroups, owners: Optional[np.ndarray]) -> int:
    """Strong-positive entries: Σ over anchors of |strong(i)| (ordered pairs in one group and, with
    ``owners``, of two users)."""
    sizes = np.diff(groups.offsets)
    total = int(np.sum(sizes * (sizes - 1)))
    if owners is not None and len(owners):
        _, same = key_counts(groups.group, owners)
        total -= int(np.sum(same * (same - 1)))
    return total
