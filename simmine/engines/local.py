"""The local engine: buckets → row blocks → backend kernels → per-anchor lists in seq_id order.

Blocks are sized so that one block's output buffer stays under BLOCK_ENTRIES entries; memory is
O(output + one bucket's features + per-thread O(bucket) scratch), never O(N²).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..metrics import Features
from ..select import GlobalThreshold, Selection, global_threshold, k_per_anchor, min_score_of

BLOCK_ENTRIES = 1 << 22
MAX_BLOCK_ROWS = 4096
HIST_BINS = 65536


@dataclass
class Plan:
    """Anchors grouped into buckets: members[b] are ascending seq_ids."""

    members: list
    bucket_size: np.ndarray   # n_u per anchor

    @property
    def compared_pairs(self) -> int:
        return int(sum(len(m) * (len(m) - 1) // 2 for m in self.members))


def make_plan(n: int, bucket_codes: Optional[np.ndarray]) -> Plan:
    if bucket_codes is None:
        members = [np.arange(n, dtype=np.int64)] if n else []
    else:
        order = np.argsort(bucket_codes, kind="stable")
        cuts = np.flatnonzero(np.diff(bucket_codes[order])) + 1
        members = [m for m in np.split(order.astype(np.int64), cuts) if len(m)]
    size = np.zeros(n, dtype=np.int64)
    for m in members:
        size[m] = len(m)
    return Plan(members, size)


@dataclass
class WeakResult:
    offsets: np.ndarray      # int64 [N+1]
    neighbors: np.ndarray    # uint32 seq_ids
    scores: np.ndarray       # float32
    threshold: Optional[GlobalThreshold] = None
    stats: dict = field(default_factory=dict)


def _blocks(k_rows: np.ndarray):
    """Row ranges whose summed capacity stays under BLOCK_ENTRIES (at least one row each)."""
    start, n = 0, len(k_rows)
    csum = np.concatenate(([0], np.cumsum(k_rows)))
    while start < n:
        end = int(np.searchsorted(csum, csum[start] + BLOCK_ENTRIES, side="right")) - 1
        end = min(max(end, start + 1), start + MAX_BLOCK_ROWS, n)
        yield start, end
        start = end


def mine_weak(features: Features, plan: Plan, sel: Selection, backend, progress: Callable = None) -> WeakResult:
    """Weak positives of every anchor per ``sel`` (SPEC §4)."""
    n = features.n
    k_all = k_per_anchor(sel, plan.bucket_size)
    min_score = min_score_of(sel)
    threshold = None
    total_rows = sum(len(m) for m in plan.members if len(m) > 1)
    if sel.mode == "alpha_global":
        threshold = _global_threshold(features, plan, sel, backend, progress, total_rows)
        if threshold.tau is None:
            k_all = np.zeros(n, dtype=np.int64)
        else:
            min_score = threshold.tau
    counts = np.zeros(n, dtype=np.int64)
    chunks = []
    tick = progress("score", total_rows) if progress else None
    for members in plan.members:
        if len(members) < 2:
            continue
        tile = features.tile(members)
        k_rows = k_all[members]
        for lo, hi in _blocks(np.minimum(k_rows, len(members) - 1)):
            rows = np.arange(lo, hi, dtype=np.int64)
            if k_rows[lo:hi].any():
                c, cols, s = backend.select(tile, rows, k_rows[lo:hi], min_score)
                anchors = members[lo:hi]
                counts[anchors] = c
                chunks.append((anchors, c, members[cols].astype(np.uint32), s))
            if tick:
                tick(hi - lo)
    if tick:
        tick(0, done=True)
    offsets, neighbors, scores = _assemble(n, counts, chunks)
    return WeakResult(offsets, neighbors, scores, threshold)


def _global_threshold(features, plan, sel, backend, progress, total_rows) -> GlobalThreshold:
    def hist_pass(prefix: int, label: str):
        hist = np.zeros(HIST_BINS, dtype=np.int64)
        tick = progress(label, total_rows) if progress else None
        for members in plan.members:
            if len(members) < 2:
                continue
            tile = features.tile(members)
            for lo in range(0, len(members), MAX_BLOCK_ROWS):
                hi = min(lo + MAX_BLOCK_ROWS, len(members))
                hist += backend.histogram(tile, np.arange(lo, hi, dtype=np.int64), prefix)
                if tick:
                    tick(hi - lo)
        if tick:
            tick(0, done=True)
        return hist

    high = hist_pass(-1, "threshold")
    return global_threshold(sel.alpha, plan.compared_pairs, high, lambda p: hist_pass(p, "threshold (exact)"))


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


def strong_positives(target_codes: np.ndarray, bucket_codes: Optional[np.ndarray]):
    """Per anchor, the other anchors of its bucket with the same target, ascending: (offsets, neighbors)."""
    n = len(target_codes)
    bucket = bucket_codes if bucket_codes is not None else np.zeros(n, dtype=np.int32)
    order = np.lexsort((np.arange(n), target_codes, bucket))  # groups, seq_id ascending inside
    key_b, key_t = bucket[order], target_codes[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (key_b[1:] != key_b[:-1]) | (key_t[1:] != key_t[:-1])
    group_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    group_id = np.cumsum(new) - 1
    sizes = np.bincount(group_id)
    g_start = np.empty(n, dtype=np.int64)
    g_size = np.empty(n, dtype=np.int64)
    g_start[order] = group_start
    g_size[order] = sizes[group_id]
    counts = g_size - 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    from ..sequences import _ranges

    pos = _ranges(g_start, g_size)                  # every member of each anchor's group, self included
    owner = np.repeat(np.arange(n), g_size)
    members = order[pos]
    keep = members != owner
    return offsets, members[keep].astype(np.uint32)


def strong_entries(target_codes: np.ndarray, bucket_codes: Optional[np.ndarray]) -> int:
    """Number of strong-positive entries, without building them (for the output-size estimate)."""
    bucket = bucket_codes if bucket_codes is not None else np.zeros(len(target_codes), dtype=np.int32)
    if not len(target_codes):
        return 0
    key = bucket.astype(np.int64) * (int(target_codes.max()) + 1) + target_codes
    _, sizes = np.unique(key, return_counts=True)
    return int(np.sum(sizes * (sizes - 1)))
