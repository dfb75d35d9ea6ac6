"""``simmine update``: new interactions folded into a build, every data file equal byte for byte to a build of
the logs concatenated (docs/update.md).

The update rebuilds what is O(log) (anchors, features, strong groups, the sequences tables) and re-mines only
what changed: anchors whose history changed or is new are scored against their buckets through the backends'
kernels; every other anchor keeps its stored list, renumbered, and is repaired only where a changed anchor
enters it or a replaced one leaves it. A repaired list is exact when the entries it keeps are known to beat
every anchor it never stored; otherwise that anchor alone is scored again.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .anchors import encode_sorted, owner_codes
from .config import BuildConfig, config_of_output
from .csr import best_first, first_k, ranges
from .engines.local import WeakResult, capacity_blocks, make_plan, select_anchors, selection_request
from .errors import InputError
from .io import read_manifest, sha256_file
from .pipeline import build_in_memory, finish, make_anchors, make_features, make_mining_plan, write_mined, \
    write_sequences
from .positives import Positives
from .readers import Log, read_log, time_values
from .readers.base import where
from .run import Loaded, Run, recover_publish, resolved_input
from .select import k_per_anchor

INCREMENTAL_METRICS = ("jaccard", "ngram", "levenshtein")


def not_incremental(config: BuildConfig) -> Optional[str]:
    """Why a build of this configuration cannot be updated exactly below the cost of a rebuild (None: it can)."""
    if config.method != "exact":
        return f"--method {config.method} draws its candidates from the whole build"
    if config.metric == "tfidf":
        return "TF-IDF weighs every item by document frequencies over all anchors, which new anchors change"
    if config.metric not in INCREMENTAL_METRICS:
        return f"--metric {config.metric} scores vectors given per anchor"
    if config.selection.mode == "alpha_global":
        return "global alpha's threshold τ moves with every new pair"
    return None


# ---------------------------------------------------------------------------------------------- inputs
def input_chain(out: str, manifest: dict) -> list:
    """The logs a build was made from, oldest first, each still there and unchanged (or an InputError)."""
    inp = manifest["input"]
    if inp.get("demo"):
        raise InputError(f"{out}: built on the built-in demo log; only a build of a log file can be updated")
    chain = inp.get("chain") or [{"path": inp["path"], "bytes": inp["bytes"], "sha256": inp["sha256"]}]
    for entry in chain:
        if not os.path.isfile(entry["path"]):
            raise InputError(f"{entry['path']}: missing; {out} was built from it and an update reads it again")
        if sha256_file(entry["path"]) != entry["sha256"]:
            raise InputError(f"{entry['path']}: changed since {out} was built from it (sha256 differs)")
    return chain


def chain_info(chain: list) -> dict:
    """The manifest's ``input`` of a build made from several logs: the newest as ``path``, all in ``chain``."""
    last = chain[-1]
    return {"path": last["path"], "demo": False, "bytes": sum(e["bytes"] for e in chain), "sha256": last["sha256"],
            "chain": chain}


def read_chain(config: BuildConfig, params: dict, chain: list, new: str, out: str) -> Log:
    """The logs of the chain and the new one as one log, in that order (what a build of the files
    concatenated reads); the new log must have the same columns and types and no event older than the
    build's last."""
    def read(path):
        return read_log(path, params["format"], config.user_col, config.item_col, params["time_col"],
                        config.bucket_by)

    logs = [read(e["path"]) for e in chain]
    new_log = read(new)
    schema = logs[0].table.schema
    for f in schema:
        got = new_log.table.schema.field(f.name).type
        if got != f.type:
            raise InputError(f"{new}: column '{f.name}' is {got}; the logs of {out} have {f.type}")
    if params["time_col"] is not None:
        last = max(float(time_values(log).max()) for log in logs if log.table.num_rows)
        t = time_values(new_log)
        older = np.flatnonzero(t < last)
        if len(older):
            row = int(older[0])
            raise InputError(f"{new}: {where(new_log, row)}column '{params['time_col']}': event at {t[row]:g} is "
                             f"older than the last event of {out} ({last:g}); an update appends later events")
    tables = [log.table.replace_schema_metadata(None) for log in logs + [new_log]]
    head = logs[0]
    return Log(new, head.fmt, pa.concat_tables(tables), head.user_col, head.item_col, head.time_col,
               head.bucket_cols, 0)


# ---------------------------------------------------------------------------------------------- the command
def run_update(out: str, input: str, new_out: Optional[str] = None, rebuild: bool = False, quiet: bool = False,
               threads: Optional[int] = None) -> str:
    """Folds the log ``input`` into the build ``out``, writing ``new_out`` (default: ``out`` itself, replaced
    atomically); returns the output directory. An ``input`` already folded into ``out`` changes nothing."""
    from .backends import get_backend, set_num_threads
    from .progress import make_progress
    from .run import check_out, input_info

    recover_publish(out)
    manifest = read_manifest(out, "build")
    if not os.path.isfile(input):
        raise InputError(f"{input}: no such file")
    chain = input_chain(out, manifest)
    new = input_info(input)
    target = new_out or out
    if any(e["sha256"] == new["sha256"] for e in chain):
        if os.path.abspath(target) == os.path.abspath(out):
            return out  # a rerun after the update finished: nothing to fold
        raise InputError(f"{input}: already folded into {out} (its manifest's input chain)")
    config = BuildConfig.from_dict({**config_of_output(out), "out": target, "quiet": quiet, "threads": threads,
                                    "resume": False}, f"{out}/manifest.json")
    why = not_incremental(config)
    if why and config.metric == "embedding":
        raise InputError(f"{out}: {why}: build again with --embeddings holding a row for every new anchor")
    if why and not rebuild:
        raise InputError(f"{out}: {why}, so an update would recompute every pair; add --rebuild to rebuild it "
                         f"from its logs and {input}")
    if threads:
        set_num_threads(threads)
    check_out(target)
    run = Run(config, get_backend(manifest["params"]["backend"]), make_progress(quiet))
    entry = {"path": new["path"], "bytes": new["bytes"], "sha256": new["sha256"]}
    info = chain_info([{k: e[k] for k in ("path", "bytes", "sha256")} for e in chain] + [entry])
    log = run.stage("load", read_chain, config, manifest["params"], chain, input, out)
    loaded = Loaded(log, info)
    if why:
        return build_in_memory(run, lambda _: loaded)
    run.input_info = info
    run.resolved.update(resolved_input(config, log.fmt, log.time_col))
    return update_in_memory(run, loaded, Positives(out))


def update_in_memory(run: Run, loaded: Loaded, old: Positives) -> str:
    """The incremental route: anchors and features of the whole log, lists re-mined only where they changed."""
    config = run.config
    seqs = run.stage("anchors", make_anchors, config, loaded)
    features = run.stage("features", make_features, config, replace(seqs, stream=None))
    plan = run.stage("plan", make_mining_plan, run, seqs, features)
    old_table = old.sequences()
    new_from_old = run.stage("plan", match_anchors, old_table, seqs)
    k_old, others_old = run.stage("plan", old_selection, config, old_table)
    stored = old.gather_weak(np.arange(len(old), dtype=np.int64))
    weak, stats = run.stage("mine", updated_lists, features, plan, config.selection, run.backend, stored,
                            new_from_old, k_old, others_old)
    run.open_checkpoint()
    try:
        run.stage("write", write_sequences, run, seqs)
        mined = write_mined(run, seqs, weak, features.owners)
        counts = {"n_anchors": seqs.n, "n_users": seqs.n_users, "skipped": seqs.skipped,
                  "n_buckets": len(plan.members),
                  "pairs": {"compared": plan.compared_pairs, "weak_kept": mined.weak_kept,
                            "strong_kept": mined.strong_kept}, "strong_groups": mined.groups}
        extra = {"ray": None, "recall": None, "approximate": None, "update": stats}
        return finish(run, counts, None, extra, mined.shards)
    except InputError:
        run.discard()
        raise


# ---------------------------------------------------------------------------------------------- matching
def match_anchors(old_table: pa.Table, seqs) -> np.ndarray:
    """Per new anchor, the old seq_id of the anchor it equals (same user and position, history, target and
    bucket), or -1 where it is new or changed. Matched old seq_ids ascend with the new ones."""
    n_old, n = old_table.num_rows, seqs.n
    users = pc.dictionary_encode(pa.concat_arrays([old_table.column("user_id").combine_chunks(),
                                                   seqs.user_values])).indices.to_numpy().astype(np.int64)
    pos_old = old_table.column("position").to_numpy().astype(np.int64)
    pos_new = np.asarray(seqs.positions, dtype=np.int64)
    width = int(max(pos_old.max(initial=0), pos_new.max(initial=0))) + 1
    key_old, key_new = users[:n_old] * width + pos_old, users[n_old:] * width + pos_new
    order = np.argsort(key_old, kind="stable")
    at = np.minimum(np.searchsorted(key_old[order], key_new), max(n_old - 1, 0))
    found = np.flatnonzero(key_old[order][at] == key_new) if n_old else np.zeros(0, np.int64)
    cand = order[at[found]]
    same = same_anchors(old_table, seqs, cand, found)
    new_from_old = np.full(n, -1, dtype=np.int64)
    new_from_old[found[same]] = cand[same]
    kept = new_from_old[new_from_old >= 0]
    if np.any(np.diff(kept) <= 0):
        raise RuntimeError("matched anchors are not in the same order in both builds")
    return new_from_old


def same_anchors(old_table: pa.Table, seqs, old_ids: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
    """Whether old anchor old_ids[m] and new anchor new_ids[m] have the same history, target and bucket."""
    old_hist = old_table.column("history").combine_chunks()
    new_hist = seqs.history_lists()
    old_off, new_off = old_hist.offsets.to_numpy().astype(np.int64), new_hist.offsets.to_numpy().astype(np.int64)
    old_len, new_len = np.diff(old_off)[old_ids], np.diff(new_off)[new_ids]
    same = old_len == new_len
    m = np.flatnonzero(same)
    values_equal = pc.equal(old_hist.values.take(pa.array(ranges(old_off[old_ids[m]], old_len[m]))),
                            new_hist.values.take(pa.array(ranges(new_off[new_ids[m]], new_len[m]))))
    differ = ~values_equal.to_numpy(zero_copy_only=False)
    same[m[np.bincount(np.repeat(np.arange(len(m)), old_len[m]), weights=differ, minlength=len(m)) > 0]] = False
    targets = pc.equal(old_table.column("target").combine_chunks().take(pa.array(old_ids)),
                       seqs.target_values.take(pa.array(new_ids)))
    same &= targets.to_numpy(zero_copy_only=False)
    from .io import bucket_column

    a = old_table.column("bucket").combine_chunks().take(pa.array(old_ids))
    b = bucket_column(seqs.bucket_codes, seqs.bucket_labels, seqs.n).take(pa.array(new_ids))
    both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
    equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    return same & (both_null | equal)


def old_selection(config: BuildConfig, old_table: pa.Table) -> tuple:
    """(k, comparable anchors) per old anchor, from the old build's buckets and users."""
    bucket = old_table.column("bucket")
    codes = encode_sorted(bucket)[0] if bucket.null_count < len(bucket) else None
    owners = owner_codes(old_table.column("user_id")) if config.excludes_same_user else None
    others = make_plan(old_table.num_rows, codes, owners).others
    return k_per_anchor(config.selection, others), others


# ---------------------------------------------------------------------------------------------- re-mining
def updated_lists(features, plan, sel, backend, stored, new_from_old, k_old, others_old) -> tuple:
    """Every new anchor's weak list (a WeakResult) from the stored lists, and how many were copied, repaired
    and scored again."""
    n = features.n
    k_new, min_score = selection_request(sel, plan)
    off, nbr, score = np.asarray(stored[0], np.int64), np.asarray(stored[1], np.int64), stored[2]
    n_old, length = len(off) - 1, np.diff(off)
    kept = new_from_old >= 0
    old_to_new = np.full(n_old, -1, dtype=np.int64)
    old_to_new[new_from_old[kept]] = np.flatnonzero(kept)
    # a full list may have left comparable anchors out: each ranks below its last entry
    full = (length >= k_old) & (k_old < others_old)
    last = np.full(n_old, np.inf, dtype=np.float64)
    last[length > 0] = score[off[1:][length > 0] - 1]
    bar = np.full(n, np.inf)  # what an offer must score to enter an unchanged anchor's list
    bar[kept] = np.where(full[new_from_old[kept]], last[new_from_old[kept]], -np.inf)
    own, offers = changed_rows(features, plan, backend, ~kept, k_new, min_score, bar)
    mapped = old_to_new[nbr]
    lost = np.bincount(np.repeat(np.arange(n_old), length)[mapped < 0], minlength=n_old)
    ids = np.flatnonzero(kept)
    rows = new_from_old[ids]
    k_moved = np.where(full[rows], k_new[ids] != k_old[rows], k_new[ids] < length[rows])  # the cut moves
    touched = (lost[rows] > 0) | (np.bincount(offers[0], minlength=n)[ids] > 0) | k_moved
    copy = stored_entries(ids[~touched], rows[~touched], off, mapped, score)
    merged, again = repair(n, ids[touched], rows[touched], (off, mapped, score), offers, k_new, full, last)
    rescored = select_anchors(features, plan, sel, backend, again)
    redo = np.asarray(sorted(rescored), dtype=np.int64)
    lists = [rescored[a] for a in redo.tolist()]
    redo_piece = (np.repeat(redo, [len(x[0]) for x in lists]),
                  np.concatenate([x[0] for x in lists]) if lists else np.zeros(0, np.int64),
                  np.concatenate([x[1] for x in lists]) if lists else np.zeros(0, np.float32))
    stats = {"anchors_new_or_changed": int(n - len(ids)), "anchors_gone": int(n_old - len(ids)),
             "lists_copied": int(np.count_nonzero(~touched)), "lists_repaired": int(touched.sum() - len(again)),
             "lists_rescored": int(len(again))}
    return assemble(n, [own, copy, merged, redo_piece]), stats


def changed_rows(features, plan, backend, changed, k_new, min_score, bar) -> tuple:
    """Scores every changed anchor against its whole bucket: (its own list: the first k_new of its row;
    its offers: the entries of its row that may enter an unchanged anchor's list, score >= that anchor's
    bar, as (that anchor, the changed anchor, score)), each as entry arrays (anchor, neighbour, score)."""
    own, offers = [], []
    for members in plan.members:
        local = np.flatnonzero(changed[members])
        if not len(local) or len(members) < 2:
            continue
        tile = features.tile(members)
        k_all = plan.others[members[local]]
        for a, b in capacity_blocks(k_all):
            if not k_all[a:b].any():
                continue
            counts, cols, scores = backend.select(tile, local[a:b], k_all[a:b], min_score)
            anchor = np.repeat(members[local[a:b]], counts)
            nbrs = members[cols]
            rank = np.arange(len(cols)) - np.repeat(np.cumsum(counts) - counts, counts)
            mine = rank < k_new[anchor]
            own.append((anchor[mine], nbrs[mine], scores[mine]))
            offer = ~changed[nbrs] & (scores >= bar[nbrs])
            offers.append((nbrs[offer], anchor[offer], scores[offer]))
    return concat_entries(own), concat_entries(offers)


def concat_entries(parts: list) -> tuple:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate([p[c] for p in parts]) for c in range(3))


def stored_entries(ids, rows, off, mapped, score) -> tuple:
    """The stored lists of old anchors ``rows`` as entries of new anchors ``ids``, neighbours renumbered
    (gone neighbours dropped)."""
    at = ranges(off[rows], off[rows + 1] - off[rows])
    anchor = np.repeat(ids, off[rows + 1] - off[rows])
    keep = mapped[at] >= 0
    return anchor[keep], mapped[at][keep], score[at][keep]


def repair(n, ids, rows, stored, offers, k_new, full, last) -> tuple:
    """The lists of unchanged anchors ``ids`` (old seq_ids ``rows``) that gained offers, lost neighbours or
    changed k: stored entries and offers merged best first and cut to k. Exact where the list was complete
    or at least k of the merged entries beat everything it left out (its stored entries, and offers scoring
    above its last entry); returns (the exact ones' entries, the anchors to score again)."""
    off, mapped, score = stored
    s_anchor, s_nbr, s_score = stored_entries(ids, rows, off, mapped, score)
    pick = np.isin(offers[0], ids)
    o_anchor, o_nbr, o_score = offers[0][pick], offers[1][pick], offers[2][pick]
    anchor = np.concatenate((s_anchor, o_anchor))
    nbr = np.concatenate((s_nbr, o_nbr))
    sc = np.concatenate((s_score, o_score)).astype(np.float32)
    order = best_first(anchor, nbr, sc)
    anchor, nbr, sc = anchor[order], nbr[order], sc[order]
    keep, _ = first_k(anchor, k_new, n)
    old_of = np.full(n, -1, dtype=np.int64)
    old_of[ids] = rows
    beats = np.bincount(s_anchor, minlength=n) + \
        np.bincount(o_anchor[o_score > last[old_of[o_anchor]]], minlength=n)
    exact = ~full[rows] | (beats[ids] >= k_new[ids])
    ok = np.zeros(n, dtype=bool)
    ok[ids[exact]] = True
    take = keep & ok[anchor]
    return (anchor[take], nbr[take], sc[take]), ids[~exact]


def assemble(n: int, pieces: list) -> WeakResult:
    """Entry arrays (anchor, neighbour, score), each anchor's entries contiguous and in list order within the
    one piece that holds it, as lists in seq_id order."""
    anchor, nbr, score = concat_entries([tuple(np.asarray(x) for x in p) for p in pieces])
    anchor = anchor.astype(np.int64)
    counts = np.bincount(anchor, minlength=n).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    starts = np.flatnonzero(np.concatenate(([True], anchor[1:] != anchor[:-1]))) if len(anchor) else anchor
    run = np.diff(np.append(starts, len(anchor)))
    dest = offsets[anchor] + np.arange(len(anchor)) - np.repeat(starts, run)
    neighbors = np.empty(len(anchor), dtype=np.uint32)
    scores = np.empty(len(anchor), dtype=np.float32)
    neighbors[dest], scores[dest] = nbr, score
    return WeakResult(offsets, neighbors, scores)
