"""MinHash-LSH candidates, re-scored exactly (docs/approximate.md ``--method minhash``).

1. Signatures, per bucket: sig[i, p] = min over the anchor's set (unique items, or n-grams for ``ngram``) of
   h_p(v) = low 32 bits of splitmix64(v ⊕ seed_p); P(sig[i,p] = sig[j,p]) = Jaccard(i, j).
2. Bands: b bands of r signature columns. In each band, anchors are sorted by the band's key and every run
   of equal keys (two anchors or more) is listed once: O(N·b) memory, no Python dictionary, no quadratic
   group of pairs.
3. Candidates, by the backend's ``band_candidates``: for each anchor, the anchors sharing a run in at least
   one band, and how many bands they share. A pair at Jaccard J shares each band with probability J^r, so
   the count ranks candidates by similarity:
   - min-sim: every colliding pair, with b and r chosen so that a pair at the target Jaccard collides with
     probability >= 0.95 (t = S for jaccard, else the 5th percentile of the estimated Jaccard of sampled
     anchors' exact neighbours) — classic LSH banding;
   - top-k and alpha (and min-sim when banding would need one row per band): r = 2, b = P / 2, and each
     anchor keeps its C·k most-colliding anchors (ties kept). C is calibrated per bucket on a seeded sample
     of its anchors searched exactly (never the recall sample): the smallest C (steps of 2^¼) whose
     recall@k on them, ties counted by score, reaches 0.96 (a margin over the 0.95 promised). Nearest
     neighbours in recommendation logs often have Jaccard near 0.15 where random pairs have 0.06: too close
     for banding's yes/no, while collision counts still separate them. ``--candidates C`` sets the kept
     anchors per anchor instead.
   - the bucket is searched exactly instead when keeping every collision cannot reach that recall, or when
     re-scoring the calibrated candidates would cost more than exact search of the bucket (the cost model
     below, from the calibration sample and the bucket's postings). The manifest counts such buckets and
     says why.
4. Candidate pairs are re-scored exactly with the build's metric by the backend and selected with the same
   semantics as exact builds (top-k, alpha, min-sim, caps, ties by seq_id).
5. Recall@k is estimated against exact search on a seeded sample of anchors and written to the manifest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..engines.local import Plan, WeakResult, selection_request
from ..errors import InputError
from ..csr import ranges
from ..hashing import splitmix64
from ..metrics import Features
from ..tiles import exclusion_runs
from ..select import Selection, min_score_of
from .common import exact_sample, rescore

PAIR_BATCH = 1 << 24  # candidate keys re-scored together: memory is O(batch + kept pairs), not O(candidates)
TARGET_PROBABILITY = 0.95
COUNTED_ROWS = 2  # rows per band when candidates are ranked by their collision counts
CALIBRATION_SAMPLE = 200  # anchors searched exactly to choose how many candidates each anchor keeps
CALIBRATION_TARGET = 0.96  # recall@k the calibration sample must reach (the promise is 0.95)
# Cost model of one bucket, nanoseconds on 2 cores (benchmarks/bench_approx.py --costs measures them): exact
# search costs min(PAIR_NS·m²/2, INCIDENCE_NS·Σ df²/2) + ANCHOR_NS·m (dense tiles or the inverted index;
# edit distance compares pairs only); the minhash route costs COLLISION_NS per band collision counted
# (Σ over runs of size²) and LISTED_NS per kept candidate pair to key, score and select.
PAIR_NS = {"set": 4.0, "cosine": 4.0, "edit": 50.0}
INCIDENCE_NS = 2.0
ANCHOR_NS = 2000.0
COLLISION_NS = 1.0
LISTED_NS = 300.0
EMPTY = np.uint32(0xFFFFFFFF)  # every minhash of an empty set


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


@dataclass
class BandRuns:
    """The runs of equal band keys of one bucket: run_of[a, t] is anchor a's run in band t (-1 when no other
    anchor shares its key), run r holds run_members[run_ptr[r]:run_ptr[r + 1]] (ascending). ``excluded``:
    with same-user exclusion, the (lo, hi) runs of rows each anchor never pairs with."""
    run_of: np.ndarray
    run_ptr: np.ndarray
    run_members: np.ndarray
    excluded: Optional[tuple] = None


def band_runs(sig: np.ndarray, bands: int, rows: int) -> BandRuns:
    """Band runs of signatures [m, ≥ bands·rows]; anchors with empty sets are in no run (they share
    nothing). Each band sorts one uint64 per anchor: the band's hash in the high bits, the anchor in the low
    bits, so a plain sort groups runs with members ascending (a hash collision only adds candidates)."""
    m = sig.shape[0]
    run_of = np.full((m, bands), -1, dtype=np.int32)
    usable = np.flatnonzero(~(sig == EMPTY).all(axis=1)) if m else np.zeros(0, np.int64)
    sig = sig[usable] if len(usable) < m else sig
    shift = np.uint64(max(int(m - 1).bit_length(), 1))
    ptr_parts, member_parts, runs, placed = [np.zeros(1, np.int64)], [], 0, 0
    for t in range(bands if len(usable) > 1 else 0):
        if t % 64 == 0:  # the next 64 bands' columns, one contiguous row each
            columns = np.ascontiguousarray(sig[:, t * rows:min(t + 64, bands) * rows].T).astype(np.uint64)
        key = np.full(len(usable), np.uint64(t), dtype=np.uint64)
        for c in range((t % 64) * rows, (t % 64 + 1) * rows):
            key = splitmix64(key ^ columns[c])
        key = np.sort(((key >> shift) << shift) | usable.astype(np.uint64))
        hashed = key >> shift
        starts = np.flatnonzero(np.concatenate(([True], hashed[1:] != hashed[:-1])))
        lengths = np.diff(np.append(starts, len(key)))
        shared = lengths >= 2
        if not shared.any():
            continue
        run_index = np.repeat(np.arange(len(starts)), lengths)
        in_run = shared[run_index]
        members = (key[in_run] & ((np.uint64(1) << shift) - np.uint64(1))).astype(np.int64)
        run_of[members, t] = (np.cumsum(shared) - 1 + runs)[run_index[in_run]]
        ptr_parts.append(placed + np.cumsum(lengths[shared]))
        member_parts.append(members.astype(np.int32))
        runs += int(shared.sum())
        placed += len(members)
    members = np.concatenate(member_parts) if member_parts else np.zeros(0, np.int32)
    return BandRuns(run_of, np.concatenate(ptr_parts).astype(np.int64), members)


def band_candidates(backend, runs: BandRuns, anchors: np.ndarray, max_candidates: np.ndarray):
    """(ptr, rows, shared bands) of each anchor's band collisions, by the backend's kernel."""
    return backend.band_candidates(runs.run_of, runs.run_ptr, runs.run_members, anchors, max_candidates,
                                   runs.excluded)


def bucket_signatures(features: Features, members: np.ndarray, backend, num_perm: int, seed: int) -> np.ndarray:
    """Signatures of the anchors ``members`` (their global codes: the same whatever the bucketing)."""

    lengths = features.indptr[members + 1] - features.indptr[members]
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    codes = features.indices[ranges(features.indptr[members], lengths)]
    return backend.minhash(indptr, codes, num_perm, seed)


def bucket_runs(features: Features, members: np.ndarray, backend, params: "MinHashParams", bands: int,
                rows: int) -> BandRuns:
    runs = band_runs(bucket_signatures(features, members, backend, params.num_perm, params.seed), bands, rows)
    owners = getattr(features, "owners", None)
    if owners is not None:
        runs.excluded = exclusion_runs(owners[members])
    return runs


@dataclass
class MinHashParams:
    num_perm: int = 128
    bands: Optional[int] = None
    rows: Optional[int] = None
    seed: int = 0
    recall_sample: int = 500
    candidates: Optional[int] = None  # kept anchors per anchor in counted mode (default: calibrated)


def _sample_jaccard(features, backend, params, exact: dict) -> float:
    """The 5th percentile of the estimated Jaccard between sampled anchors and their exact neighbours."""
    est = []
    for a, (nbrs, _) in exact.items():
        if len(nbrs):
            sig = bucket_signatures(features, np.concatenate(([a], nbrs)).astype(np.int64), backend,
                                    params.num_perm, params.seed)
            est.extend(np.mean(sig[1:] == sig[0], axis=1).tolist())
    return float(np.percentile(est, 5)) if est else 0.5


@dataclass
class Limits:
    """How many most-colliding candidates each anchor keeps: ``fixed`` (--candidates), or calibrated per
    bucket as a multiple of each anchor's k (top-k, alpha) or a count (min-sim); 0 keeps all that collide."""
    counted: bool
    fixed: Optional[int]
    per_k: bool
    k_all: np.ndarray
    seed: int
    chosen: list  # (bucket size, value) of every calibrated bucket, for the manifest
    exact: dict = field(default_factory=dict)  # why -> (buckets, anchors) searched exactly

    def of_bucket(self, features, members, runs, sel, backend, skip: np.ndarray) -> Optional[np.ndarray]:
        """Per-member limits of one bucket (its calibration sample excludes the anchors in ``skip``), or
        None when the bucket is searched exactly."""
        if not self.counted:
            return np.zeros(len(members), np.int64)
        if self.fixed is not None:
            value = float(self.fixed)
        else:
            cal = _calibrate(features, members, runs, sel, backend, self.k_all, self.per_k, self.seed, skip)
            why = exact_reason(features, members, runs, cal)
            if why is not None:
                buckets, anchors = self.exact.get(why, (0, 0))
                self.exact[why] = (buckets + 1, anchors + len(members))
                return None
            value = cal.value
            self.chosen.append((len(members), value))
        if value <= 0:
            return np.zeros(len(members), np.int64)
        scale = np.maximum(self.k_all[members], 1) if self.per_k else np.ones(len(members), np.int64)
        return np.ceil(value * scale).astype(np.int64)

    def summary(self) -> dict:
        if not self.counted:
            return {"candidates": "lsh-banding"}
        if self.fixed is not None:
            return {"candidates": "lsh-collisions", "kept_per_anchor": int(self.fixed), "calibration_sample": None}
        exact = {"exact_buckets": sum(b for b, _ in self.exact.values()),
                 "exact_anchors": sum(a for _, a in self.exact.values()),
                 "exact_why": {why: {"buckets": b, "anchors": a} for why, (b, a) in sorted(self.exact.items())}}
        if not self.chosen:
            return {"candidates": "exact", "calibration_sample": CALIBRATION_SAMPLE, **exact}
        values = np.array([v if v > 0 else np.inf for _, v in self.chosen], dtype=np.float64)  # 0: all
        weights = np.array([m for m, _ in self.chosen], dtype=np.float64)
        kept = "all"
        if len(values):  # the anchor-weighted median over buckets
            order = np.argsort(values)
            mid = values[order][np.searchsorted(np.cumsum(weights[order]), weights.sum() / 2)]
            kept = "all" if np.isinf(mid) else f"{mid:.4g}{'·k' if self.per_k else ''}"
        return {"candidates": "lsh-collisions", "kept_per_anchor": kept, "calibration_sample": CALIBRATION_SAMPLE,
                "calibrated_buckets": len(values), "kept_all_buckets": int(np.isinf(values).sum()), **exact}


@dataclass
class Calibration:
    """What a bucket's calibration sample says: the kept multiple (0: every collision), whether it reaches
    CALIBRATION_TARGET at all, and how many candidates a sampled anchor keeps on average."""
    value: float
    reachable: bool
    kept_mean: float


def exact_cost_ns(features: Features, members: np.ndarray) -> float:
    """Exact search of one bucket by the cost model above."""
    m = len(members)
    cost = PAIR_NS[features.kind] * m * (m - 1) / 2
    tile = features.tile(members)
    if features.kind in ("set", "cosine"):
        df = np.diff(tile.post_ptr).astype(np.float64)
        cost = min(cost, INCIDENCE_NS * float(np.dot(df, df)) / 2)
    return cost + ANCHOR_NS * m


def exact_reason(features: Features, members: np.ndarray, runs: BandRuns, cal: Calibration) -> Optional[str]:
    """Why the bucket is searched exactly, or None when its calibrated candidates are the cheaper route."""
    if not cal.reachable:
        return f"every collision reaches recall@k below {CALIBRATION_TARGET} on the calibration sample"
    sizes = np.diff(runs.run_ptr).astype(np.float64)
    minhash_ns = COLLISION_NS * float(np.dot(sizes, sizes)) + LISTED_NS * cal.kept_mean * len(members)
    if minhash_ns >= exact_cost_ns(features, members):
        return "re-scoring the calibrated candidates costs more than exact search"
    return None


def _calibrate(features, members, runs, sel, backend, k_all, per_k: bool, seed: int, skip) -> Calibration:
    """How many most-colliding candidates per anchor reach recall@k CALIBRATION_TARGET (ties counted by
    score, as the manifest's recall) on a seeded sample of the bucket's anchors searched exactly: a multiple
    of each anchor's k (per_k) or a count; 0 keeps every colliding anchor."""
    rng = np.random.default_rng([seed, int(members[0])])
    pool = np.flatnonzero(~np.isin(members, skip))  # not the recall sample: its estimate stays unbiased
    local = np.sort(rng.choice(pool, size=min(len(pool), CALIBRATION_SAMPLE), replace=False))
    if not len(local):
        return Calibration(0.0, True, 0.0)
    tile = features.tile(members)
    counts, cols, scores = backend.select(tile, local, k_all[members[local]], min_score_of(sel))
    offs = np.concatenate(([0], np.cumsum(counts)))
    ptr, nbr, shared = band_candidates(backend, runs, local, np.zeros(len(local), np.int64))
    curves = []  # per sampled anchor: (wanted, scale, shared bands descending, good candidates so far)
    for x in range(len(local)):
        want = scores[offs[x]:offs[x + 1]]
        if not len(want):
            continue
        got, got_shared = nbr[ptr[x]:ptr[x + 1]], shared[ptr[x]:ptr[x + 1]]
        score = backend.score_pairs(tile, local[x:x + 1].astype(np.int64), np.array([0, len(got)], np.int64),
                                    got.astype(np.int32))
        order = np.argsort(-got_shared, kind="stable")
        good = np.cumsum(score[order] >= want.min())  # candidates as good as the exact list's last
        curves.append((len(want), len(want) if per_k else 1, got_shared[order], good))

    def recall(c: float):  # (recall@k of the sample, mean kept) when each anchor keeps ceil(c·scale), ties kept
        found = wanted = kept_total = 0
        for k, scale, shared_desc, good in curves:
            wanted += k
            if len(good):
                limit = min(int(math.ceil(c * scale)), len(good))
                kept = int(np.searchsorted(-shared_desc, -shared_desc[limit - 1], side="right"))
                found += min(k, int(good[kept - 1]))
                kept_total += kept
        return (found / wanted if wanted else 1.0), kept_total / len(local)

    if not curves:
        return Calibration(0.0, True, 0.0)
    every, kept_every = recall(float(max(len(g) for _, _, _, g in curves)))
    if every < CALIBRATION_TARGET:
        return Calibration(0.0, False, kept_every)
    c = 1.0
    while (found := recall(c))[0] < CALIBRATION_TARGET:
        c *= 2 ** 0.25
    return Calibration(c, True, found[1])


def _candidate_keys(features, plan, sel, backend, params, bands, rows, limits: Limits, skip):
    """Candidate pair keys i·n + j (i < j), bucket by bucket, anchor chunk by anchor chunk."""
    n = features.n
    for members in plan.members:
        if len(members) < 2:
            continue
        runs = bucket_runs(features, members, backend, params, bands, rows)
        limit = limits.of_bucket(features, members, runs, sel, backend, skip)
        if limit is None:
            yield from exact_keys(features, members, sel, backend, limits.k_all)
            continue
        step, lo = 1024, 0
        while lo < len(members):
            anchors = np.arange(lo, min(lo + step, len(members)), dtype=np.int64)
            ptr, nbr, _ = band_candidates(backend, runs, anchors, limit[anchors])
            i = members[np.repeat(anchors, np.diff(ptr))]
            j = members[nbr]
            yield np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)
            lo += len(anchors)
            step = int(min(max(PAIR_BATCH // 4 // max(len(nbr) // len(anchors), 1), 64), 1 << 16))


def exact_keys(features, members, sel, backend, k_all, step: int = 4096):
    """The pair keys of a bucket's exact selections, anchor chunk by anchor chunk: re-scored and selected
    with the others, they give the bucket's exact lists."""
    n = features.n
    tile = features.tile(members)
    min_score = min_score_of(sel)
    for lo in range(0, len(members), step):
        local = np.arange(lo, min(lo + step, len(members)), dtype=np.int64)
        counts, cols, _ = backend.select(tile, local, k_all[members[local]], min_score)
        i = members[np.repeat(local, counts)]
        j = members[cols]
        yield np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)


def mine_minhash(features: Features, plan: Plan, sel: Selection, backend, bucket_codes, params: MinHashParams,
                 progress=None) -> WeakResult:
    """Weak lists from MinHash candidates re-scored exactly (global alpha is refused by the caller)."""
    k_all, _ = selection_request(sel, plan)
    exact = exact_sample(features, plan, sel, backend, params.recall_sample, params.seed)
    bands, rows, target = params.bands, params.rows, None
    explicit = bands is not None or rows is not None
    if explicit:  # the given banding: counted for top-k and alpha
        bands = bands or params.num_perm // rows
        rows = rows or params.num_perm // bands
        if bands * rows > params.num_perm:
            raise InputError(f"--bands × --rows = {bands * rows} exceeds --num-perm {params.num_perm}")
        counted = sel.mode != "min_sim"
    elif sel.mode == "min_sim":
        target = sel.min_sim if features.kind == "set" else _sample_jaccard(features, backend, params, exact)
        bands, rows = choose_bands(params.num_perm, target)
        counted = rows < 2  # one row per band collides on any shared minhash: rank by counts instead
    else:
        counted = True
    if counted and not explicit:
        rows = min(COUNTED_ROWS, params.num_perm)
        bands = params.num_perm // rows
    limits = Limits(counted or params.candidates is not None, params.candidates,
                    params.candidates is None and sel.mode in ("k", "alpha"), k_all, params.seed + 1, [])
    skip = np.fromiter(exact, dtype=np.int64, count=len(exact))
    pairs = batched(_candidate_keys(features, plan, sel, backend, params, bands, rows, limits, skip))
    stats = {"method": "minhash", "num_perm": params.num_perm, "seed": params.seed, "bands": int(bands),
             "rows": int(rows), "target_jaccard": target}
    result = rescore(features, plan, sel, backend, pairs, exact, stats)
    result.stats.update(limits.summary())
    return result
