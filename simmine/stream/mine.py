"""Stages E–F of a streamed build (docs/scale.md): each group mined as the in-memory route mines a bucket
(features, weak lists on the local engine or Ray, strong groups) into a result file, then the output shards
assembled by seq_id range from the memory-mapped results."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import pyarrow as pa

from ..engines.local import (check_threshold_output, first_members, groups_of, make_plan, mine_weak, mine_weak_range,
                            score_histogram, strong_pairs)
from ..io import fault_point, groups_table, strong_table, weak_table, write_table
from ..metrics import prepare_features
from ..select import (GlobalThreshold, check_output_size, global_threshold, output_bytes)
from ..anchors import SequenceSet, Stream, owner_codes
from ..csr import ranges

from .prepare import list_array, list_parts, map_file, reorder_lists, spill_dir


def _load_group(spill, g: int):
    """(seq_ids ascending, SequenceSet of the group's anchors in that order, with their owners)."""
    table = pa.ipc.open_stream(pa.memory_map(os.path.join(spill, "group-%05d.arrows" % g))).read_all()
    ids = table.column("seq_id").to_numpy()
    by_seq = np.argsort(ids, kind="stable")
    offsets, values = list_parts(table.column("history"))
    indptr, items = reorder_lists(np.diff(offsets), values, by_seq)
    seqs = SequenceSet(indptr=indptr, items=items.astype(np.int32), item_values=None, user_values=None,
                       target_codes=table.column("target").to_numpy()[by_seq].astype(np.int32),
                       bucket_codes=table.column("bucket").to_numpy()[by_seq].astype(np.int32),
                       bucket_labels=None, n_users=0, skipped=0,
                       owners=owner_codes(table.column("first_row").to_numpy()[by_seq]))
    return ids[by_seq].astype(np.int64), seqs


def _group_stream(run, ids: np.ndarray) -> Stream:
    """The prefix sweep's stream of a group's anchors (seq_ids ascending): their users' training sequences
    from users.arrow and their windows from sequences.arrow, both written in stage D."""
    (user, start, end), (offsets, values) = _stream_columns(run)
    user, start, end = user[ids], start[ids], end[ids]
    present = np.unique(user)  # users are numbered in seq_id order, so this is their order here too
    lengths = offsets[present + 1] - offsets[present]
    user_ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    at = user_ptr[np.searchsorted(present, user)]
    return Stream(values[ranges(offsets[present], lengths)].astype(np.int32), np.stack((at + start, at + end), axis=1),
                  user_ptr)


def _stream_columns(run) -> tuple:
    """((user, start, end) per anchor, (offsets, values) of users.arrow's sequences), read once per run rather
    than once per group: O(N) each time."""
    if "prefix_stream" not in run.memo:
        table = map_file(run.path("sequences.arrow"))
        windows = tuple(table.column(name).to_numpy().astype(np.int64) for name in ("user", "start", "end"))
        run.memo["prefix_stream"] = (windows, list_parts(map_file(run.path("users.arrow")).column("sequence")))
    return run.memo["prefix_stream"]


def _group_features(run, g: int, df):
    """(seq_ids, anchors, features, plan) of group g; TF-IDF with the whole build's N and df; prefix anchors
    of the set metrics and TF-IDF with their stream, so the sweeps mine them as in memory."""
    ids, seqs = _load_group(spill_dir(run), g)
    if run.config.anchors == "prefix" and run.config.metric in ("jaccard", "ngram", "tfidf"):
        seqs.stream = _group_stream(run, ids)
    features = prepare_features(seqs, run.config.metric_def, run.config.ngram_n, df=df, n_total=run.state["n"])
    if run.config.excludes_same_user:
        features.owners = seqs.owners
    return ids, seqs, features, make_plan(seqs.n, seqs.bucket_codes, features.owners)


def global_tau(run, df) -> GlobalThreshold:
    """Global alpha's τ over every group's pairs (two histogram passes, as the in-memory build makes),
    kept in the checkpoint."""
    if "threshold" not in run.state:
        def hist(prefix):
            total = None
            for g in range(run.state["groups"]):
                _, _, features, plan = _group_features(run, g, df)
                h = score_histogram(features, plan, run.backend, prefix, None)
                total = h if total is None else total + h
            return total

        tick = run.progress("threshold", None) if run.progress else None
        thr = global_threshold(run.config.alpha, run.state["compared"], hist(-1), hist)
        if tick:
            tick(0, done=True)
        run.save(threshold={"tau": thr.tau, "rank": thr.rank, "pairs_at_or_above": thr.pairs_at_or_above})
    thr = GlobalThreshold(**run.state["threshold"])
    check_threshold_output(thr, run.config.selection, run.state["n"], run.config.max_output_gb)
    return thr


def _mine_group(run, g: int, df, thr, runner) -> int:
    """Stage E for group g: weak lists and strong group names (first members) of its anchors, by global
    seq_id, to ``result-G.arrow``; returns its weak entries."""
    ids, seqs, features, plan = _group_features(run, g, df)
    sel = run.config.selection
    if runner is not None:
        runner.load(features, plan, thr)
        w = runner.mine(0, seqs.n)
    elif sel.mode == "alpha_global":
        w = mine_weak_range(features, plan, sel, run.backend, 0, seqs.n, thr)
    else:
        w = mine_weak(features, plan, sel, run.backend)
    table = pa.table({
        "seq_id": pa.array(ids.astype(np.uint32)),
        "weak": list_array(w.offsets, pa.array(ids[w.neighbors].astype(np.uint32))),
        "scores": list_array(w.offsets, pa.array(w.scores, pa.float32())),
        "first": pa.array(first_members(seqs.target_codes, seqs.bucket_codes, ids).astype(np.uint32)),
    })
    write_table(os.path.join(spill_dir(run), "result-%05d.arrow" % g), table)
    return len(w.neighbors)


def mine_groups(run, df, thr) -> Optional[dict]:
    """Stage E for every group not finished before; returns the Ray task counts (None on --engine local)."""
    from ..pipeline import ray_runner

    kept = run.state.setdefault("kept", {})
    runner = ray_runner(run)
    try:
        tick = run.progress("score", run.state["groups"]) if run.progress else None
        for g in range(run.state["groups"]):
            if str(g) not in kept or not os.path.exists(os.path.join(spill_dir(run), "result-%05d.arrow" % g)):
                kept[str(g)] = _mine_group(run, g, df, thr, runner)
                run.save()
                fault_point("SIMMINE_KILL_AFTER_GROUPS", g + 1)
            if run.config.selection.mode == "min_sim":  # min-sim's weak lists are counted as they come
                check_output_size(output_bytes(sum(kept.values()), run.state["entries"], run.state["n"]),
                                  run.config.max_output_gb, "counted while mining")
            if tick:
                tick(1)
        if tick:
            tick(0, done=True)
        return {"tasks": runner.tasks, "task_rows": runner.task_rows} if runner else None
    finally:
        if runner is not None:
            runner.close()


def _gather(results, lo, hi, columns) -> dict:
    """{column: (offsets, values)} of list columns for anchors lo..hi-1, merged from the groups' results."""
    ids, parts = [], {c: ([], []) for c in columns}
    for seq_ids, table in results:
        a, b = np.searchsorted(seq_ids, [lo, hi])
        if a == b:
            continue
        ids.append(seq_ids[a:b])
        for c in columns:
            offsets, values = list_parts(table.column(c).slice(a, b - a))
            parts[c][0].append(np.diff(offsets))
            parts[c][1].append(values)
    by_seq = np.argsort(np.concatenate(ids), kind="stable")
    return {c: reorder_lists(np.concatenate(lens), np.concatenate(vals), by_seq) for c, (lens, vals) in parts.items()}


def _strong_groups(run, results):
    """The strong groups of all N anchors from their first members (O(N), written once to groups.arrow),
    and the strong entries they hold."""
    n = run.state["n"]
    first = np.empty(n, dtype=np.int64)
    for seq_ids, table in results:
        first[seq_ids] = table.column("first").to_numpy()
    groups = groups_of(first)
    path = run.path("groups.arrow")
    if not os.path.exists(path):
        write_table(path, groups_table(groups.offsets, groups.members))
    owners = None
    if run.config.excludes_same_user:
        owners = owner_codes(np.load(os.path.join(spill_dir(run), "order.npz"))["first"])
    return groups, strong_pairs(groups, owners)


def write_outputs(run) -> tuple:
    """Stage F: weak and strong tables (or shards) assembled by seq_id range from the groups' results,
    and groups.arrow; returns (the manifest's shard list or None for one file of each, strong entries,
    strong groups)."""
    spill, n = spill_dir(run), run.state["n"]
    results = []
    for g in range(run.state["groups"]):
        table = map_file(os.path.join(spill, "result-%05d.arrow" % g))
        results.append((table.column("seq_id").to_numpy().astype(np.int64), table))
    from ..pipeline import shard_ranges

    groups, strong_kept = _strong_groups(run, results)
    ranges = shard_ranges(n, run.config.shard_rows)
    sharded = len(ranges) > 1
    shards = []
    tick = run.progress("shards", len(ranges)) if run.progress else None
    for s, (lo, hi) in enumerate(ranges):
        weak_name, strong_name = (f"weak-{s:05d}.arrow", f"strong-{s:05d}.arrow") if sharded else \
            ("weak.arrow", "strong.arrow")
        shards.append({"rows": [lo, hi], "weak": weak_name, "strong": strong_name})
        if os.path.exists(run.path(weak_name)) and os.path.exists(run.path(strong_name)):
            continue
        lists = _gather(results, lo, hi, ("weak", "scores"))
        (offsets, neighbors), (_, scores) = lists["weak"], lists["scores"]
        write_table(run.path(weak_name), weak_table(offsets, neighbors, scores))
        write_table(run.path(strong_name), strong_table(groups.group[lo:hi]))
        fault_point("SIMMINE_KILL_AFTER_SHARDS", s + 1)
        if tick:
            tick(1)
    if tick:
        tick(0, done=True)
    return (shards if sharded else None), strong_kept, len(groups.offsets) - 1
