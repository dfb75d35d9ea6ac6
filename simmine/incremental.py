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
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .anchors import encode_sorted, owner_codes
from .config import BuildConfig, config_of_output
from .csr import best_first, first_k, ranges
from .engines.local import WeakResult, capacity_blocks, make_plan, selection_request
from .errors import BackendUnavailable, InputError
from .io import fault_point, read_manifest, sha256_file
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


def read_chain(config: BuildConfig, params: dict, chain: list, new: str, out: str) -> tuple:
    """The logs of the chain and the new one as one log, in that order (what a build of the files
    concatenated reads), and the users of the new one; the new log must have the same columns and types and
    no event older than the build's last."""
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
    return (Log(new, head.fmt, pa.concat_tables(tables), head.user_col, head.item_col, head.time_col,
                head.bucket_cols, 0), pc.unique(new_log.table.column(head.user_col)))


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
    try:  # the build's backend where it runs here; every backend writes the same files
        backend = get_backend(manifest["params"]["backend"])
    except BackendUnavailable:
        backend = get_backend(None)
    if threads:
        set_num_threads(threads)
    check_out(target)
    run = Run(config, backend, make_progress(quiet))
    entry = {"path": new["path"], "bytes": new["bytes"], "sha256": new["sha256"]}
    info = chain_info([{k: e[k] for k in ("path", "bytes", "sha256")} for e in chain] + [entry])
    log, delta_users = run.stage("load", read_chain, config, manifest["params"], chain, input, out)
    loaded = Loaded(log, info)
    if why:
        return build_in_memory(run, lambda _: loaded)
    run.input_info = info
    run.resolved.update(resolved_input(config, log.fmt, log.time_col))
    return update_in_memory(run, loaded, Positives(out), delta_users)


def update_in_memory(run: Run, loaded: Loaded, old: Positives, delta_users: pa.Array) -> str:
    """The incremental route: anchors and features of the whole log, lists re-mined only where they changed."""
    config = run.config
    seqs = run.stage("anchors", make_anchors, config, loaded)
    features = run.stage("features", make_features, config, seqs)
    plan = run.stage("plan", make_mining_plan, run, seqs, features)
    old_users = old.user_ids()
    new_from_old = run.stage("plan", match_anchors, old, old_users, seqs, delta_users)
    k_old, others_old = run.stage("plan", old_selection, config, old, old_users)
    stored = old.gather_weak(np.arange(len(old), dtype=np.int64))
    weak, stats = run.stage("mine", updated_lists, features, plan, config.selection, run.backend, stored,
                            new_from_old, k_old, others_old)
    run.open_checkpoint()
    try:
        run.stage("write", write_sequences, run, seqs)
        mined = write_mined(run, seqs, weak, features.owners)
        fault_point("SIMMINE_KILL_AFTER_STAGE", "update")
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
def match_anchors(old: Positives, old_users: pa.Array, seqs, delta_users: pa.Array) -> np.ndarray:
    """Per new anchor, the old seq_id of the anchor it equals, or -1 where it is new or changed. An anchor of a
    user without events in the delta is the same anchor (the same events, split the same way); one of a user
    with new events is compared: history, target and bucket. Matched old seq_ids ascend with the new ones."""
    n_old, n = len(old), seqs.n
    users = pc.dictionary_encode(pa.concat_arrays([old_users, seqs.user_values])).indices
    users = users.to_numpy().astype(np.int64)
    pos_old, pos_new = old.positions(), np.asarray(seqs.positions, dtype=np.int64)
    width = int(max(pos_old.max(initial=0), pos_new.max(initial=0))) + 1
    key_old, key_new = users[:n_old] * width + pos_old, users[n_old:] * width + pos_new
    order = np.argsort(key_old, kind="stable")
    at = np.minimum(np.searchsorted(key_old[order], key_new), max(n_old - 1, 0))
    found = np.flatnonzero(key_old[order][at] == key_new) if n_old else np.zeros(0, np.int64)
    cand = order[at[found]]
    moved = pc.is_in(seqs.user_values.take(pa.array(found)),
                     value_set=pc.cast(delta_users, seqs.user_values.type)).to_numpy(zero_copy_only=False)
    same = np.ones(len(found), dtype=bool)
    same[moved] = same_anchors(old, seqs, cand[moved], found[moved])
    new_from_old = np.full(n, -1, dtype=np.int64)
    new_from_old[found[same]] = cand[same]
    kept = new_from_old[new_from_old >= 0]
    if np.any(np.diff(kept) <= 0):
        raise RuntimeError("matched anchors are not in the same order in both builds")
    return new_from_old


def same_anchors(old: Positives, seqs, old_ids: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
    """Whether old anchor old_ids[m] and new anchor new_ids[m] have the same history, target and bucket."""
    from .io import bucket_column

    table = old.sequences(old_ids)
    old_hist = table.column("history").combine_chunks()
    old_off = old_hist.offsets.to_numpy().astype(np.int64)
    old_len = np.diff(old_off)
    new_len = seqs.indptr[new_ids + 1] - seqs.indptr[new_ids]
    same = old_len == new_len
    m = np.flatnonzero(same)
    new_values = seqs.item_values.take(pa.array(seqs.items[ranges(seqs.indptr[new_ids[m]], new_len[m])]))
    differ = ~pc.equal(old_hist.values.take(pa.array(ranges(old_off[m], old_len[m]))), new_values) \
        .to_numpy(zero_copy_only=False)
    same[m[np.bincount(np.repeat(np.arange(len(m)), old_len[m]), weights=differ, minlength=len(m)) > 0]] = False
    same &= pc.equal(table.column("target").combine_chunks(),
                     seqs.target_values.take(pa.array(new_ids))).to_numpy(zero_copy_only=False)
    a = table.column("bucket").combine_chunks()
    b = bucket_column(seqs.bucket_codes, seqs.bucket_labels, seqs.n).take(pa.array(new_ids))
    both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
    return same & (both_null | pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False))


def old_selection(config: BuildConfig, old: Positives, old_users: pa.Array) -> tuple:
    """(k, comparable anchors) per old anchor, from the old build's buckets and users (``old_users``)."""
    from .io import map_table

    bucket = map_table(os.path.join(old.path, "sequences.arrow")).column("bucket")
    codes = encode_sorted(bucket)[0] if bucket.null_count < len(bucket) else None
    owners = owner_codes(old_users) if config.excludes_same_user else None
    others = make_plan(len(old), codes, owners).others
    return k_per_anchor(config.selection, others), others


# ---------------------------------------------------------------------------------------------- re-mining
def updated_lists(features, plan, sel, backend, stored, new_from_old, k_old, others_old) -> tuple:
    """Every new anchor's weak list (a WeakResult) from the stored lists, bucket by bucket, and how many were
    copied, repaired and scored again. A bucket without a changed anchor or a list to repair is not scored."""
    n = features.n
    k_new, min_score = selection_request(sel, plan)
    off, nbr, score = np.asarray(stored[0], np.int64), stored[1], stored[2]
    n_old, length = len(off) - 1, np.diff(off)
    kept = new_from_old >= 0
    old_to_new = np.full(n_old, -1, dtype=np.int64 if n >= 2 ** 31 else np.int32)
    old_to_new[new_from_old[kept]] = np.flatnonzero(kept)
    mapped = old_to_new[nbr]
    # a full list may have left comparable anchors out: each ranks below its last entry
    full = (length >= k_old) & (k_old < others_old)
    last = np.full(n_old, np.inf, dtype=np.float64)
    last[length > 0] = score[off[1:][length > 0] - 1]
    rows = new_from_old[kept]
    bar = np.full(n, np.inf)  # what an offer must score to enter an unchanged anchor's list
    bar[kept] = np.where(full[rows], last[rows], -np.inf)
    gone_at = np.flatnonzero(mapped < 0)  # stored entries whose neighbour changed, by their row
    lost = np.bincount(np.searchsorted(off, gone_at, side="right") - 1, minlength=n_old)
    must = np.zeros(n, dtype=bool)  # lists that change without any offer: a neighbour left, or the cut moved
    must[kept] = (lost[rows] > 0) | np.where(full[rows], k_new[kept] != k_old[rows], k_new[kept] < length[rows])
    stored = (off, mapped, score)
    pieces, copied, again_total = [], [], 0
    for members in plan.members:
        changed = members[~kept[members]]
        unchanged = members[kept[members]]
        if len(members) < 2 or not (len(changed) or must[unchanged].any()):
            copied.append(unchanged)  # gone neighbours drop out; nothing else can change
            continue
        tile = features.tile(members)
        own, offers = bucket_rows(tile, members, np.searchsorted(members, changed), backend, k_new, min_score, bar,
                                  plan.others)
        touched = must[unchanged] | np.isin(unchanged, offers[0])
        copied.append(unchanged[~touched])
        fix = unchanged[touched]
        merged, again = repair(fix, new_from_old[fix], stored, offers, k_new, full, last)
        counts, cols, scores = backend.select(tile, np.searchsorted(members, again), k_new[again], min_score)
        pieces += [own, merged, (np.repeat(again, counts), members[cols], scores)]
        again_total += len(again)
    ids = np.concatenate(copied) if copied else np.zeros(0, np.int64)
    pieces.append(stored_entries(ids, new_from_old[ids], *stored))
    stats = {"anchors_new_or_changed": int(n - kept.sum()), "anchors_gone": int(n_old - kept.sum()),
             "lists_copied": int(len(ids)), "lists_repaired": int(kept.sum() - len(ids) - again_total),
             "lists_rescored": int(again_total)}
    return assemble(n, pieces), stats


def bucket_rows(tile, members, local, backend, k_new, min_score, bar, others) -> tuple:
    """Scores a bucket's changed anchors (``local`` rows of its tile) against the whole bucket: (their own
    lists, the first k_new of each row; their offers: the entries that may enter an unchanged anchor's list,
    score >= that anchor's bar, as (that anchor, the changed anchor, score)), each as entry arrays (anchor,
    neighbour, score). A backend with ``offers`` (the C++ core) keeps only those while scoring; elsewhere a
    changed row's every positive score is listed, then filtered."""
    own, offers = [], []
    if hasattr(backend, "offers"):
        for a in range(0, len(local), 4096):
            rows = local[a:a + 4096]
            counts, cols, scores = backend.select(tile, rows, k_new[members[rows]], min_score)
            own.append((np.repeat(members[rows], counts), members[cols], scores))
            r, c, s = backend.offers(tile, rows, bar[members].astype(np.float32), min_score)
            offers.append((members[c], members[r], s))
        return concat_entries(own), concat_entries(offers)
    k_all = others[members[local]]
    for a, b in capacity_blocks(k_all):
        counts, cols, scores = backend.select(tile, local[a:b], k_all[a:b], min_score)
        row = np.repeat(np.arange(b - a), counts)
        anchor, nbrs = members[local[a:b]][row], members[cols]
        mine = first_k(row, k_new[members[local[a:b]]], b - a)[0]  # each row's first k_new, best first
        own.append((anchor[mine], nbrs[mine], scores[mine]))
        offer = scores >= bar[nbrs]  # changed anchors' bar is +inf
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


def repair(ids, rows, stored, offers, k_new, full, last) -> tuple:
    """The lists of unchanged anchors ``ids`` (ascending; old seq_ids ``rows``) that gained offers, lost
    neighbours or changed k: stored entries and offers merged best first and cut to k. Exact where the list
    was complete, or where at least k of the merged entries beat everything it left out (its stored entries,
    and offers scoring above its last entry); returns (the exact ones' entries, the anchors to score again)."""
    s_anchor, s_nbr, s_score = stored_entries(ids, rows, *stored)
    o_anchor, o_nbr, o_score = offers
    s_pos, o_pos = np.searchsorted(ids, s_anchor), np.searchsorted(ids, o_anchor)
    pos = np.concatenate((s_pos, o_pos))
    nbr = np.concatenate((s_nbr, o_nbr))
    sc = np.concatenate((s_score, o_score)).astype(np.float32)
    order = best_first(pos, nbr, sc)
    pos, nbr, sc = pos[order], nbr[order], sc[order]
    k = k_new[ids]
    keep, _ = first_k(pos, k, len(ids))
    beats = np.bincount(s_pos, minlength=len(ids)) + \
        np.bincount(o_pos[o_score > last[rows[o_pos]]], minlength=len(ids))
    exact = ~full[rows] | (beats >= k)
    take = keep & exact[pos]
    return (ids[pos[take]], nbr[take], sc[take]), ids[~exact]


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
