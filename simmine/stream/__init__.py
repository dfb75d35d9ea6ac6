"""Bounded-memory builds (``--memory-gb``): the log streams through spill files and is never held whole.

The output is byte for byte the in-memory build's; only the route differs. Its stages, each resumable
from the build's checkpoint (run.Run), and the manifest's stage names:

A. load: input batches → user-hash partitions (``spill/users-P.arrows``) and the sorted item dictionary;
B. anchors: each partition → its anchors (docs/input.md): first file row, user, target, history codes,
   bucket values;
C. plan: seq_ids (ranks of the users' first rows), bucket codes, the output-size check, and buckets packed
   into groups that fit the budget (a bucket is the unit of work: one larger than the budget is loaded whole);
D. regroup: anchors → group files, sequences.arrow in seq_id order, and document frequencies for TF-IDF;
E. mine: each group's features, weak lists (local engine or Ray) and strong lists → a result file sorted
   by seq_id; a group is the in-memory route's features → plan → mine → strong over fewer anchors;
F. write: output shards assembled by seq_id range from the memory-mapped results.

Stages A–D stay separate from the in-memory route's load and anchors because the whole log never sits in
memory here: users meet in hash partitions, and seq_ids are known only once every partition is read.
Memory is the budget plus about 40 bytes per anchor (seq_id order, bucket codes and lengths).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..io import fault_point
from ..readers import stream_log

from .mine import global_tau, mine_groups, write_outputs
from .prepare import map_file, order_anchors, partition_anchors, partition_log, regroup, spill_dir, user_partition

__all__ = ["build_streamed", "describe_log", "user_partition"]


def describe_log(config) -> dict:
    """What a streamed build needs to know of its log before it starts (format, time column), read from
    the first batch, which is checked like every later one."""
    c = config
    batches = stream_log(c.input, c.format, c.user_col, c.item_col, c.time_col, c.bucket_by, batch_rows=1 << 14)
    try:
        first = next(batches)
    finally:
        batches.close()
    return {"fmt": first.fmt, "time_col": first.time_col}


def _stage_once(run, name: str, letter: str, fn, *args) -> None:
    """Runs a resumable stage (A–D) unless the checkpoint says it finished; records it when it does."""
    if run.state.get("stage", "") >= letter:
        return
    run.stage(name, fn, *args)
    run.save(stage=letter)
    fault_point("SIMMINE_KILL_AFTER_STAGE", letter)


def _anchors_of_partitions(run, items: pa.Array) -> None:
    """Stage B over every partition not finished before, each spill file removed once read."""
    spill = spill_dir(run)
    tick = run.progress("anchors", len(run.state["present"])) if run.progress else None
    for p in run.state["present"]:
        users = os.path.join(spill, "users-%05d.arrows" % p)
        if not os.path.exists(os.path.join(spill, "anchors-%05d.arrow" % p)):
            partition_anchors(run, items, p)
        if os.path.exists(users):
            os.remove(users)
        if tick:
            tick(1)
    if tick:
        tick(0, done=True)


def _ordered(run) -> None:
    order_anchors(run)
    if run.state["n"] == 0:
        raise InputError(f"{run.config.input}: no user has a non-empty history after --split {run.config.split} "
                         f"(every one of {run.state['n_users']} users was skipped)")


def build_streamed(run) -> str:
    """The bounded-memory route: stages A–F in OUT.partial (resuming what an interrupted run finished)."""
    from ..run import input_info, resolved_input

    c = run.config
    described = run.stage("load", describe_log, c)
    run.input_info = input_info(c.input)
    run.resolved.update(resolved_input(c, described["fmt"], described["time_col"]))
    run.open_checkpoint()
    try:
        run.state.update({k: v for k, v in described.items() if k not in run.state})
        if run.state.get("stage", "") < "W":  # W: the output files are written, the spill may be gone
            _stages(run)
        shutil.rmtree(spill_dir(run), ignore_errors=True)
        return _finish(run)
    except InputError:
        run.discard()
        raise


def _stages(run) -> None:
    """Stages A–F in the spill directory, resuming what an interrupted run finished; the checkpoint then
    records what they wrote (stage W), so a run killed while the spill is removed or the output published
    resumes from there."""
    c = run.config
    os.makedirs(spill_dir(run), exist_ok=True)
    _stage_once(run, "load", "A", lambda: run.state.update(partition_log(run)))
    items = map_file(os.path.join(spill_dir(run), "items.arrow")).column("item").combine_chunks()
    _stage_once(run, "anchors", "B", _anchors_of_partitions, run, items)
    _stage_once(run, "plan", "C", _ordered, run)
    _stage_once(run, "regroup", "D", regroup, run, items)
    for p in run.state["present"]:
        path = os.path.join(spill_dir(run), "anchors-%05d.arrow" % p)
        if os.path.exists(path):
            os.remove(path)
    df = np.load(os.path.join(spill_dir(run), "df.npy")) if c.metric == "tfidf" else None
    thr = run.stage("mine", global_tau, run, df) if c.selection.mode == "alpha_global" else None
    tasks = run.stage("mine", mine_groups, run, df, thr)
    shards, strong_kept, n_groups = run.stage("write", write_outputs, run)
    run.save(stage="W", written={"tasks": tasks, "shards": shards, "strong_kept": strong_kept, "n_groups": n_groups})
    fault_point("SIMMINE_KILL_AFTER_STAGE", "W")


def _finish(run) -> str:
    """The manifest of a streamed build from its checkpoint, and the output published."""
    from ..pipeline import finish
    from ..select import GlobalThreshold

    state, written = run.state, run.state["written"]
    thr = GlobalThreshold(**state["threshold"]) if run.config.selection.mode == "alpha_global" else None
    counts = {"n_anchors": state["n"], "n_users": state["n_users"], "skipped": state["skipped"],
              "n_buckets": state["n_buckets"],
              "pairs": {"compared": state["compared"], "weak_kept": sum(state["kept"].values()),
                        "strong_kept": written["strong_kept"]}, "strong_groups": written["n_groups"]}
    extra = {"ray": written["tasks"], "recall": None, "approximate": None,
             "streamed": {"partitions": state["partitions"], "groups": state["groups"]}}
    return finish(run, counts, thr, extra, written["shards"])
