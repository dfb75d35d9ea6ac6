"""A build as the pipeline it is: load → anchors → features → plan → mine → strong → write.

Each stage is a function of the configuration and the previous stage's value. ``Run`` times every stage
into the manifest's ``elapsed_s`` and keeps the build's checkpoint (``OUT.partial/plan.json``: the resume
fingerprint, the shard ranges, global alpha's τ, a streamed build's stages), so timing and resuming live in
one place. The in-memory route is here; the bounded-memory route (``--memory-gb``) in stream.py shares its
``Run``, its mining and strong stages per group, and its manifest (docs/architecture.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pyarrow as pa

from .config import BuildConfig
from .engines.local import (Plan, StrongGroups, WeakResult, check_threshold_output, global_threshold_of, make_plan,
                            mine_weak, mine_weak_range, select_anchors, strong_groups, strong_pairs)
from .errors import InputError
from .io import (FORMAT_VERSION, fault_point, groups_table, map_table, sequence_tables, sha256_file, strong_table,
                 weak_table, write_table)
from .metrics import Features, dense_features, prepare_features
from .vectors import load_embeddings
from .select import GlobalThreshold, check_output_size, output_bytes, weak_entries_bound
from .anchors import SequenceSet, build_sequences
from .run import Loaded, Run, load_log, resolved_input

ESTIMATE_SAMPLE = 256
STAGES = ("load", "anchors", "features", "plan", "regroup", "mine", "strong", "write")  # the manifest's order


# ---------------------------------------------------------------------------------------------- the run


def shard_ranges(n: int, shard_rows: int) -> list:
    return [(lo, min(lo + shard_rows, n)) for lo in range(0, n, shard_rows)]


# ---------------------------------------------------------------------------------------------- load, anchors


def make_anchors(config: BuildConfig, loaded: Loaded) -> SequenceSet:
    """Stage anchors: the anchors of the log (docs/input.md), at least one, or an InputError."""
    seqs = build_sequences(loaded.log, config.split, config.max_len, config.compare, anchors=config.anchors)
    if seqs.n == 0:
        raise InputError(f"{loaded.log.path}: no user has a non-empty history after --split {config.split} "
                         f"(every one of {seqs.n_users} users was skipped)")
    return seqs


def make_features(config: BuildConfig, seqs: SequenceSet) -> Features:
    """Stage features: what the metric compares, per anchor (docs/metrics.md), and which anchors share a
    user when they may not pair."""
    if config.embeddings is not None:
        features = dense_features(load_embeddings(config.embeddings, seqs.n))
    else:
        features = prepare_features(seqs, config.metric_def, config.ngram_n)
    if config.excludes_same_user:
        features.owners = seqs.owners
    return features


# ---------------------------------------------------------------------------------------------- plan
def make_mining_plan(run: Run, seqs: SequenceSet, features: Features) -> Plan:
    """Stage plan: anchors grouped by bucket, and the output-size check made before anything is mined."""
    plan = make_plan(seqs.n, seqs.bucket_codes, features.owners)
    check_output_size(estimate_bytes(run, seqs, features, plan), run.config.max_output_gb)
    return plan


def estimate_bytes(run: Run, seqs: SequenceSet, features: Features, plan: Plan) -> int:
    """Output size before computing: exact for k/alpha modes, sampled for min-sim, a lower bound for
    global alpha (its exact size is checked again once τ is known)."""
    sel = run.config.selection
    weak = weak_entries_bound(sel, plan.others, plan.compared_pairs)
    if weak is None:
        weak = sampled_min_sim_entries(run, features, plan)
    return output_bytes(weak, int(seqs.indptr[-1]), seqs.n)


def sampled_min_sim_entries(run: Run, features: Features, plan: Plan) -> int:
    """Weak entries of a min-sim build, extrapolated from ESTIMATE_SAMPLE anchors selected exactly."""
    comparable = np.flatnonzero(plan.others > 0)
    if not len(comparable):
        return 0
    rng = np.random.default_rng(0)
    sample = rng.choice(comparable, size=min(len(comparable), ESTIMATE_SAMPLE), replace=False)
    lists = select_anchors(features, plan, run.config.selection, run.backend, sample)
    return int(round(sum(len(nbrs) for nbrs, _ in lists.values()) / len(sample) * len(comparable)))


# ---------------------------------------------------------------------------------------------- mine
def mine_all(run: Run, features: Features, plan: Plan, bucket_codes) -> WeakResult:
    """Stage mine, for the whole build at once: exact, MinHash or FAISS (docs/approximate.md)."""
    c = run.config
    if c.method == "minhash":
        from .approx.minhash import MinHashParams, mine_minhash

        params = MinHashParams(c.num_perm, c.bands, c.rows, c.seed, c.recall_sample, c.candidates)
        return mine_minhash(features, plan, c.selection, run.backend, bucket_codes, params, run.progress)
    if c.method == "faiss":
        from .approx.faiss_ import FaissParams, mine_faiss

        params = FaissParams(c.index, int(c.dim), c.candidates, c.num_perm, c.seed, c.recall_sample)
        return mine_faiss(features, plan, c.selection, run.backend, params, run.progress)
    return mine_weak(features, plan, c.selection, run.backend, run.progress, c.max_output_gb)


def range_threshold(run: Run, features: Features, plan: Plan) -> Optional[GlobalThreshold]:
    """Global alpha's τ for a build mined by anchor range (shards, Ray tasks), computed once and kept in
    the checkpoint so a resumed build does not recompute it; None for every other selection."""
    sel = run.config.selection
    if sel.mode != "alpha_global":
        return None
    if "threshold" not in run.state:
        thr = global_threshold_of(features, plan, sel, run.backend, run.progress)
        run.save(threshold={"tau": thr.tau, "rank": thr.rank, "pairs_at_or_above": thr.pairs_at_or_above})
    thr = GlobalThreshold(**run.state["threshold"])
    check_threshold_output(thr, sel, features.n, run.config.max_output_gb)
    return thr


@dataclass
class Mined:
    """What the mine, strong and write stages leave for the manifest."""

    weak_kept: int
    strong_kept: int
    groups: int
    threshold: Optional[GlobalThreshold]
    stats: dict
    shards: Optional[list]


def write_sequences(run: Run, seqs: SequenceSet) -> None:
    """sequences.arrow, and for prefix anchors users.arrow and vocabulary.arrow (docs/output.md)."""
    for name, table in sequence_tables(seqs, seqs.bucket_labels).items():
        path = run.path(name)
        if not os.path.exists(path):  # a resumed build keeps it
            write_table(path, table)


def make_strong(run: Run, seqs: SequenceSet) -> StrongGroups:
    """Stage strong: the strong groups, written once to groups.arrow (kept by a resumed build)."""
    groups = strong_groups(seqs.target_codes, seqs.bucket_codes)
    path = run.path("groups.arrow")
    if not os.path.exists(path):
        write_table(path, groups_table(groups.offsets, groups.members))
    return groups


def mine_and_write(run: Run, seqs: SequenceSet, features: Features, plan: Plan, runner=None) -> Mined:
    """Stages mine, strong and write: one weak.arrow and strong.arrow, or shards of --shard-rows anchors."""
    ranges = shard_ranges(seqs.n, run.config.shard_rows)
    exact_by_range = run.config.method == "exact" and (len(ranges) > 1 or runner is not None)
    thr = run.stage("mine", range_threshold, run, features, plan) if exact_by_range else None
    if runner is not None:
        runner.load(features, plan, thr)
    if len(ranges) == 1:
        weak = run.stage("mine", runner.mine, 0, seqs.n) if runner else \
            run.stage("mine", mine_all, run, features, plan, seqs.bucket_codes)
        return replace(write_mined(run, seqs, weak, features.owners), threshold=weak.threshold, stats=weak.stats)
    whole = None  # approximate candidates come from the whole build: mine once, write slices
    if run.config.method != "exact":
        whole = run.stage("mine", mine_all, run, features, plan, seqs.bucket_codes)
    mined = write_mined(run, seqs, whole, features.owners, RangeMiner(run, features, plan, thr, whole, runner))
    return replace(mined, threshold=thr, stats=whole.stats if whole is not None else {})


def write_mined(run: Run, seqs: SequenceSet, weak: Optional[WeakResult], owners, miner=None) -> Mined:
    """Stages strong and write: weak lists already mined (``weak``; an update's), or each shard's from
    ``miner``, into one weak.arrow and strong.arrow, or shards of --shard-rows anchors."""
    ranges = shard_ranges(seqs.n, run.config.shard_rows)
    groups = run.stage("strong", make_strong, run, seqs)
    if len(ranges) == 1:
        run.stage("write", write_table, run.path("weak.arrow"), weak_table(weak.offsets, weak.neighbors, weak.scores))
        run.stage("write", write_table, run.path("strong.arrow"), strong_table(groups.group))
        kept, shards = int(len(weak.neighbors)), None
    else:
        kept = mine_shards(run, ranges, miner or RangeMiner(run, None, None, None, weak, None), groups.group)
        shards = [{"rows": [lo, hi], "weak": f"weak-{s:05d}.arrow", "strong": f"strong-{s:05d}.arrow"}
                  for s, (lo, hi) in enumerate(ranges)]
    return Mined(kept, strong_pairs(groups, owners), len(groups.offsets) - 1, None, {}, shards)


@dataclass
class RangeMiner:
    """How a shard's anchors get their weak lists: a slice of the whole build's (approximate methods mine
    everything at once), a Ray job, or mined here against their whole buckets."""

    run: Run
    features: Features
    plan: Plan
    threshold: Optional[GlobalThreshold]
    whole: Optional[WeakResult]
    runner: object

    def __call__(self, lo: int, hi: int) -> WeakResult:
        if self.whole is not None:
            a, b = self.whole.offsets[lo], self.whole.offsets[hi]
            return WeakResult(self.whole.offsets[lo:hi + 1] - a, self.whole.neighbors[a:b], self.whole.scores[a:b])
        if self.runner is not None:
            return self.runner.mine(lo, hi)
        return mine_weak_range(self.features, self.plan, self.run.config.selection, self.run.backend, lo, hi,
                               self.threshold)


def mine_shards(run: Run, ranges: list, miner: RangeMiner, group: np.ndarray) -> int:
    """Mines and writes every shard not already complete; returns the weak entries of all shards."""
    kept = 0
    tick = run.progress("shards", len(ranges)) if run.progress else None
    for s, (lo, hi) in enumerate(ranges):
        weak_path, strong_path = run.path(f"weak-{s:05d}.arrow"), run.path(f"strong-{s:05d}.arrow")
        if os.path.exists(weak_path) and os.path.exists(strong_path):
            kept += len(pa.ipc.open_file(pa.memory_map(weak_path)).read_all().column("neighbors")
                        .combine_chunks().values)
        else:
            w = run.stage("mine", miner, lo, hi)
            kept += len(w.neighbors)
            run.stage("write", write_table, weak_path, weak_table(w.offsets, w.neighbors, w.scores))
            run.stage("write", write_table, strong_path, strong_table(group[lo:hi]))
            fault_point("SIMMINE_KILL_AFTER_SHARDS", s + 1)
        if tick:
            tick(1)
    if tick:
        tick(0, done=True)
    return kept


def ray_runner(run: Run):
    """A Ray runner for --engine ray (None for local); ``load`` gives it features to mine."""
    if run.config.engine != "ray":
        return None
    from .engines.ray_ import RayRunner

    return RayRunner(None, None, run.config.selection, run.backend.name, None, run.config.ray_address)


# ---------------------------------------------------------------------------------------------- the route
def build_in_memory(run: Run, load=load_log) -> str:
    """The in-memory route: every stage over the whole log (``load(config)`` reads it)."""
    loaded = run.stage("load", load, run.config)
    run.input_info = loaded.input_info
    run.resolved.update(resolved_input(run.config, loaded.log.fmt, loaded.log.time_col))
    seqs = run.stage("anchors", make_anchors, run.config, loaded)
    features = run.stage("features", make_features, run.config, seqs)
    if run.config.embeddings is not None:  # read and checked: now recorded
        path = run.config.embeddings
        run.input_info["embeddings"] = {"path": os.path.abspath(path), "sha256": sha256_file(path)}
    plan = run.stage("plan", make_mining_plan, run, seqs, features)
    run.open_checkpoint()
    runner = None
    try:
        run.stage("write", write_sequences, run, seqs)
        runner = ray_runner(run)
        mined = mine_and_write(run, seqs, features, plan, runner)
        counts = {"n_anchors": seqs.n, "n_users": seqs.n_users, "skipped": seqs.skipped,
                  "n_buckets": len(plan.members),
                  "pairs": {"compared": plan.compared_pairs, "weak_kept": mined.weak_kept,
                            "strong_kept": mined.strong_kept}, "strong_groups": mined.groups}
        extra = {"ray": {"tasks": runner.tasks, "task_rows": runner.task_rows} if runner else None,
                 "recall": mined.stats.get("recall"),
                 "approximate": {k: v for k, v in mined.stats.items() if k != "recall"} or None}
        return finish(run, counts, mined.threshold, extra, mined.shards)
    except InputError:
        run.discard()
        raise
    finally:
        if runner is not None:
            runner.close()


# ---------------------------------------------------------------------------------------------- manifest
def finish(run: Run, counts: dict, thr: Optional[GlobalThreshold], extra: dict, shards: Optional[list]) -> str:
    """Publishes the build: its manifest (docs/output.md) into the checkpoint directory, renamed to OUT."""
    n, compared = counts["n_anchors"], counts["pairs"]["compared"]
    rows_of = {"sequences.arrow": [0, n], "groups.arrow": [0, counts["strong_groups"]]}
    for name in ("users.arrow", "vocabulary.arrow"):  # prefix anchors: each training sequence once
        if os.path.exists(run.path(name)):
            rows_of[name] = [0, map_table(run.path(name)).num_rows]
    for sh in shards or [{"rows": [0, n], "weak": "weak.arrow", "strong": "strong.arrow"}]:
        rows_of[sh["weak"]] = rows_of[sh["strong"]] = sh["rows"]
    body = {
        "format_version": FORMAT_VERSION,
        **counts,
        "tau": None if thr is None else thr.tau,
        "realised_fraction": (thr.pairs_at_or_above / compared if thr is not None and compared else None),
        "method": run.config.method,
        "backend": run.backend.name,
        "engine": run.config.engine,
        **extra,
        "shards": shards,
    }
    return run.publish(body, rows_of, stage_order=STAGES)
