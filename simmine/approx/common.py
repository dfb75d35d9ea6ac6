"""What every approximate method shares: exact re-scoring of candidate pairs, the exact sample that recall
is measured against, and recall@k itself."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..engines.local import Plan, WeakResult, assemble_pairs, select_anchors, selection_request
from ..metrics import Features
from ..select import Selection


def exact_sample(features: Features, plan: Plan, sel: Selection, backend, size: int, seed: int) -> dict:
    """Exact selections of a seeded sample of anchors: {anchor: (neighbors, scores)}."""
    n = features.n
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n, size), replace=False)
    return select_anchors(features, plan, sel, backend, sample)


def score_listed(features: Features, plan: Plan, pairs: np.ndarray, backend, tiles: Optional[dict] = None):
    """Exact scores of candidate pairs (all within one bucket), grouped by bucket tile. ``tiles`` keeps
    bucket tiles across calls (rescoring batch after batch builds each one once)."""
    n = features.n
    tiles = {} if tiles is None else tiles
    i, j = pairs // n, pairs % n
    bucket_of = np.zeros(n, dtype=np.int64)
    local = np.zeros(n, dtype=np.int64)
    for b, members in enumerate(plan.members):
        bucket_of[members] = b
        local[members] = np.arange(len(members))
    scores = np.zeros(len(pairs), dtype=np.float32)
    order = np.argsort(bucket_of[i] * n + i, kind="stable")  # pairs arrive sorted by (i, j)
    i, j = i[order], j[order]
    bi = bucket_of[i]
    present = np.unique(bi)
    bounds = np.searchsorted(bi, np.append(present, len(plan.members)))
    for b, lo, hi in zip(present.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
        if b not in tiles:
            tiles[b] = features.tile(plan.members[b])
        rows = local[i[lo:hi]]  # ascending within the bucket: pairs are sorted by (bucket, i, j)
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1]))) if len(rows) else rows
        row_ids = rows[starts]
        ptr = np.append(starts, len(rows)).astype(np.int64)
        scores[lo:hi] = backend.score_pairs(tiles[b], row_ids, ptr, local[j[lo:hi]].astype(np.int32))
    return i, j, scores


def recall_at_k(result: WeakResult, exact: dict) -> float:
    """Share of the exact neighbours found, ties counted by score: an approximate neighbour counts when its
    (exact) score reaches the exact list's lowest score, up to the exact list's length."""
    found = wanted = 0
    for a, (nbrs, scores) in exact.items():
        if not len(nbrs):
            continue
        got = result.scores[result.offsets[a]:result.offsets[a + 1]]
        found += min(len(nbrs), int(np.sum(got >= scores.min())))
        wanted += len(nbrs)
    return found / wanted if wanted else 1.0


def _pair_keys(result: WeakResult, n: int):
    """The unordered pairs (keys i·n + j, i < j, unique) of a result's lists, with their scores."""
    anchor = np.repeat(np.arange(n, dtype=np.int64), np.diff(result.offsets))
    nbr = result.neighbors.astype(np.int64)
    keys = np.minimum(anchor, nbr) * n + np.maximum(anchor, nbr)
    order = np.argsort(keys, kind="stable")
    keys, scores = keys[order], result.scores[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], scores[first]


def rescore(features: Features, plan: Plan, sel: Selection, backend, batches, exact: dict,
            stats: dict) -> WeakResult:
    """Candidate pairs, batch by batch (int64 keys i·n + j, i < j, each batch sorted and unique, as
    ``minhash.batched`` makes them; a pair may recur across batches), scored
    exactly and selected with the exact semantics. Each batch is folded into the selection so far, so
    memory is O(one batch + the kept pairs), and the result equals one selection over every candidate (a
    pair cut from both lists can never re-enter: lists only improve). ``stats`` and the recall against
    ``exact`` go into the result."""
    n = features.n
    k_all, min_score = selection_request(sel, plan)
    kept_keys = np.zeros(0, dtype=np.int64)
    kept_scores = np.zeros(0, dtype=np.float32)
    tiles = {}  # every bucket's tile, built once for all batches: O(features) memory
    result = assemble_pairs(n, kept_keys, kept_keys, kept_scores, k_all, min_score, backend)
    scored = 0
    for keys in batches:
        if features.owners is not None:  # same-user pairs are never compared
            keys = keys[features.owners[keys // n] != features.owners[keys % n]]
        if len(kept_keys):
            pos = np.minimum(np.searchsorted(kept_keys, keys), len(kept_keys) - 1)
            keys = keys[kept_keys[pos] != keys]  # pairs already scored and kept
        if not len(keys):
            continue
        scored += len(keys)
        i, j, s = score_listed(features, plan, keys, backend, tiles)
        i = np.concatenate((kept_keys // n, i))
        j = np.concatenate((kept_keys % n, j))
        s = np.concatenate((kept_scores, s))
        result = assemble_pairs(n, i, j, s, k_all, min_score, backend)
        kept_keys, kept_scores = _pair_keys(result, n)
    result.stats = {**stats, "candidate_pairs": int(scored)}
    if exact:
        result.stats["recall"] = {"value": round(recall_at_k(result, exact), 6), "sample": len(exact),
                                  "of": "recall@k against exact search (ties counted by score)"}
    return result
