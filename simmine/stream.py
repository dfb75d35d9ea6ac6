"""Bounded-memory builds (``--memory-gb``): the log streams through spill files and is never held whole.

The output is byte for byte the in-memory build's; only the route differs. Stages, each resumable:

A. input batches → user-hash partitions (``spill/users-P.arrows``) and the sorted item dictionary;
B. each partition → its anchors (SPEC §2): first file row, user, target, history codes, bucket values;
C. seq_ids (ranks of the users' first rows), bucket codes, and buckets packed into groups that fit the
   budget (a bucket is the unit of work: one larger than the budget is loaded whole);
D. anchors → group files, sequences.arrow in seq_id order, and document frequencies for TF-IDF;
E. each group mined by the local engine or on Ray → a result file sorted by seq_id (weak and strong);
F. output shards assembled by seq_id range from the memory-mapped results.

Memory is the budget plus about 40 bytes per anchor (seq_id order, bucket codes and lengths).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from .engines.local import make_plan, mine_weak, mine_weak_range, score_histogram, strong_counts, strong_positives
from .errors import InputError
from .io import ROWS_PER_BATCH, fault_point, strong_table, weak_table, write_json, write_table
from .metrics import document_frequency, prepare_features
from .select import check_output_size, global_threshold, k_per_anchor, output_bytes, weak_entries_bound
from .sequences import (Log, RetypeAsText, SequenceSet, _check_id_type, _ranges, _time_values, anchor_rows,
                        bucket_keys, encode_with, stream_log)

BYTES_PER_LOG_ROW = 160   # a partition's interactions while its anchors are built (table, sort keys, codes)
BYTES_PER_ENTRY = 64      # a group's history entries while mined (CSR, tile, postings, bitmaps)
BYTES_PER_KEPT = 16       # one weak entry while a group's lists are assembled
MAX_PARTITIONS = 1024
MIN_BATCH_ROWS = 1 << 14
ROW = "__row"


@dataclass
class StreamResult:
    n: int
    n_users: int
    skipped: int
    n_buckets: int
    compared: int
    weak_kept: int
    strong_kept: int
    threshold: object
    groups: int
    partitions: int
    tasks: Optional[dict]


def budget_bytes(memory_gb: float) -> int:
    return int(memory_gb * (1 << 30))


def describe_log(path, fmt, user_col, item_col, time_col, bucket_cols) -> dict:
    """What a streamed build needs to know of its log before it starts (format, time column), read from
    the first batch, which is checked like every later one."""
    batches = stream_log(path, fmt, user_col, item_col, time_col, bucket_cols, batch_rows=1 << 14)
    try:
        first = next(batches)
    finally:
        batches.close()
    return {"path": path, "fmt": first.fmt, "user_col": user_col, "item_col": item_col, "time_col": first.time_col,
            "bucket_cols": list(bucket_cols)}


# ---------------------------------------------------------------------------------------------- stage A
def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads any uint64 key over all bits."""
    h = h.astype(np.uint64, copy=True)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def user_partition(users: pa.ChunkedArray, parts: int) -> np.ndarray:
    """Partition (0..parts-1) of every row's user: a hash of the value, so a user's rows meet in one."""
    if parts == 1:
        return np.zeros(len(users), dtype=np.int64)
    arr = users.combine_chunks() if isinstance(users, pa.ChunkedArray) else users
    if pa.types.is_integer(arr.type):
        key = arr.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    else:  # strings: a polynomial hash of the UTF-8 bytes, vectorised over the array's buffers
        wide = pa.types.is_large_string(arr.type)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)
        offsets = offsets[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)
        pos = _ranges(offsets[:-1], lengths)                 # every byte of every string, string after string
        within = pos - np.repeat(offsets[:-1], lengths)      # its position in its string
        powers = np.cumprod(np.full(int(lengths.max(initial=0)) + 1, 0x100000001B3, dtype=np.uint64))
        terms = (data[pos].astype(np.uint64) + np.uint64(1)) * powers[within]
        key = lengths.astype(np.uint64)
        nonempty = np.flatnonzero(lengths)
        if len(nonempty):
            key[nonempty] += np.add.reduceat(terms, (np.cumsum(lengths) - lengths)[nonempty])
    return (_mix64(key) % np.uint64(parts)).astype(np.int64)


def _estimate_rows(path: str, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "arrow":
        try:
            reader = pa.ipc.open_file(pa.memory_map(path))
            # batch by batch: RecordBatchFileReader.count_rows is missing from some pyarrow releases
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            pass
    return os.path.getsize(path) // 8 + 1  # text: an upper bound (no row is shorter than 8 bytes or so)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary-typed columns as their values, so every batch of a spill file has one schema."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


class _Appender:
    """Arrow IPC stream files opened on first write, appended batch after batch."""

    def __init__(self, pattern: str):
        self.pattern, self.open = pattern, {}

    def write(self, key: int, table: pa.Table) -> None:
        if key not in self.open:
            sink = pa.OSFile(self.pattern % key, "wb")
            options = pa.ipc.IpcWriteOptions(compression="lz4")  # spill is written once and read once
            self.open[key] = (sink, pa.ipc.new_stream(sink, table.schema, options=options))
        self.open[key][1].write_table(table)

    def write_split(self, table: pa.Table, keys: np.ndarray, n_keys: int) -> None:
        """Appends each row of ``table`` to the file of its key (0..n_keys-1), rows keeping their order."""
        order = np.argsort(keys, kind="stable")
        cuts = np.searchsorted(keys[order], np.arange(n_keys + 1))
        moved = table.take(pa.array(order))
        for key in np.flatnonzero(np.diff(cuts)).tolist():
            self.write(key, moved.slice(cuts[key], cuts[key + 1] - cuts[key]))

    def close(self) -> None:
        for sink, writer in self.open.values():
            writer.close()
            sink.close()
        self.open = {}


def _merge_unique(parts: list) -> pa.Array:
    import pyarrow.compute as pc

    return pc.unique(pa.chunked_array(parts).combine_chunks()) if len(parts) > 1 else parts[0]


def _partition_log(spill, src, budget, progress) -> dict:
    """Stage A: every row to its user's partition file, with its file row number; the sorted items."""
    import pyarrow.compute as pc

    parts = max(1, min(MAX_PARTITIONS, math.ceil(_estimate_rows(src["path"], src["fmt"]) * BYTES_PER_LOG_ROW
                                                 / budget)))
    batch_rows = int(max(MIN_BATCH_ROWS, min(1 << 22, budget // (4 * BYTES_PER_LOG_ROW))))
    as_text = False
    while True:
        out = _Appender(os.path.join(spill, "users-%05d.arrows"))
        items, pending, rows = None, [], 0
        tick = progress("partition", None) if progress else None
        try:
            for log in stream_log(src["path"], src["fmt"], src["user_col"], src["item_col"], src["time_col"],
                                  src["bucket_cols"], batch_rows, as_text):
                users = _check_id_type(log, log.user_col)
                item_col = _check_id_type(log, log.item_col)
                if log.time_col is not None:
                    _time_values(log)  # bad timestamps are reported here, with their file line
                table = _plain(log.table).append_column(ROW, pa.array(np.arange(rows, rows + log.table.num_rows)))
                out.write_split(table, user_partition(users, parts), parts)
                pending.append(pc.unique(item_col.combine_chunks()))
                if sum(len(a) for a in pending) > max(1 << 22, 2 * (len(items) if items is not None else 0)):
                    items = _merge_unique(([items] if items is not None else []) + pending)
                    pending = []
                rows += log.table.num_rows
                if tick:
                    tick(log.table.num_rows)
        except RetypeAsText:
            as_text = True
            continue
        finally:
            out.close()
        break
    if tick:
        tick(0, done=True)
    items = _merge_unique(([items] if items is not None else []) + pending)
    items = items.take(pc.sort_indices(items))
    write_table(os.path.join(spill, "items.arrow"), pa.table({"item": items}))
    return {"partitions": parts, "rows": rows,
            "present": [p for p in range(parts) if os.path.exists(os.path.join(spill, "users-%05d.arrows" % p))]}


# ---------------------------------------------------------------------------------------------- stage B
def _list_array(offsets: np.ndarray, values) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values)


def _list_parts(column) -> tuple:
    """(offsets from 0, values) of a large_list column as NumPy arrays."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
    return offsets - offsets[0], values


def _reorder_lists(lengths: np.ndarray, values: np.ndarray, order: np.ndarray) -> tuple:
    """(offsets, values) of variable-length rows (``lengths``, values row after row) taken in ``order``."""
    starts = np.cumsum(lengths) - lengths
    taken = values[_ranges(starts[order], lengths[order])]
    return np.concatenate(([0], np.cumsum(lengths[order]))).astype(np.int64), taken


def _partition_anchors(spill, src, items: pa.Array, p: int, split, max_len, compare) -> None:
    """Stage B for partition p: its anchors, in order of their users' first rows, to ``anchors-P.arrow``."""
    source = os.path.join(spill, "users-%05d.arrows" % p)
    table = pa.ipc.open_stream(pa.memory_map(source)).read_all()
    log = Log(src["path"], src["fmt"], table, src["user_col"], src["item_col"], src["time_col"],
              tuple(src["bucket_cols"]), 0)
    rows = anchor_rows(log, split, max_len, compare)
    codes = encode_with(table.column(src["item_col"]), items)
    file_rows = table.column(ROW).to_numpy()
    target_rows = pa.array(rows.target_rows)
    cols = {
        "first_row": pa.array(file_rows[rows.first_rows]),
        "user": rows.user_dict.take(pa.array(rows.valid)),
        "target": pa.array(codes[rows.target_rows]),
        "history": _list_array(np.concatenate(([0], np.cumsum(rows.lengths))), pa.array(codes[rows.history_rows])),
    }
    for i, name in enumerate(src["bucket_cols"]):
        cols[f"bucket{i}"] = table.column(name).take(target_rows).combine_chunks()
    meta = {"n_users": str(rows.n_users), "skipped": str(rows.n_users - len(rows.valid))}
    write_table(os.path.join(spill, "anchors-%05d.arrow" % p), pa.table(cols).replace_schema_metadata(meta))


def _map(path: str) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


# ---------------------------------------------------------------------------------------------- stage C
def _order_anchors(spill, state, sel, budget, max_output_gb) -> None:
    """Stage C: seq_ids, bucket codes and groups, saved to ``order.npz`` and the state."""
    tables = [_map(os.path.join(spill, "anchors-%05d.arrow" % p)) for p in state["present"]]
    first = np.concatenate([t.column("first_row").to_numpy() for t in tables]) if tables else np.zeros(0, np.int64)
    n = len(first)
    by_seq = np.argsort(first, kind="stable")
    seq = np.empty(n, dtype=np.int64)
    seq[by_seq] = np.arange(n)
    targets = np.concatenate([t.column("target").to_numpy() for t in tables])[by_seq] if n else np.zeros(0, np.int32)
    lengths = np.concatenate([np.diff(_list_parts(t.column("history"))[0]) for t in tables])[by_seq] \
        if n else np.zeros(0, np.int64)
    labels = None
    if state["bucket_cols"] and n:
        take = pa.array(by_seq)
        columns = [pa.chunked_array([t.column(f"bucket{i}") for t in tables]).combine_chunks().take(take)
                   for i in range(len(state["bucket_cols"]))]
        buckets, labels = bucket_keys(columns)
        del columns
    else:
        buckets = np.zeros(n, dtype=np.int32)
    n_buckets = int(buckets.max()) + 1 if n else 0
    size = np.bincount(buckets, minlength=n_buckets)
    bucket_size = size[buckets]
    strong = strong_counts(targets, buckets)
    # the output-size check of SPEC §4, as the in-memory build makes it (min-sim is checked while mining)
    weak = weak_entries_bound(sel, bucket_size, int(np.sum(size * (size - 1) // 2)))
    check_output_size(output_bytes(weak or 0, int(strong.sum()), int(lengths.sum()), n), max_output_gb)
    # groups: consecutive buckets whose working set stays under the budget
    kept = np.minimum(k_per_anchor(sel, bucket_size), bucket_size - 1)
    cost = np.bincount(buckets, weights=lengths * BYTES_PER_ENTRY + kept * BYTES_PER_KEPT + strong * 8,
                       minlength=n_buckets)
    group_of_bucket = np.zeros(n_buckets, dtype=np.int64)
    g, used = 0, 0.0
    for b in range(n_buckets):
        if used and used + cost[b] > budget:
            g, used = g + 1, 0.0
        group_of_bucket[b] = g
        used += cost[b]
    np.savez(os.path.join(spill, "order.npz"), seq=seq, buckets=buckets, group_of_bucket=group_of_bucket)
    state.update(n=int(n), n_buckets=n_buckets, entries=int(lengths.sum()), labels=labels,
                 groups=int(g + 1) if n else 0, counts=[t.num_rows for t in tables],
                 n_users=sum(int(t.schema.metadata[b"n_users"]) for t in tables),
                 skipped=sum(int(t.schema.metadata[b"skipped"]) for t in tables))


# ---------------------------------------------------------------------------------------------- stage D
def _regroup(spill, state, items: pa.Array, partial, metric_name, progress) -> None:
    """Stage D: anchors → group files; sequences.arrow in seq_id order; df for TF-IDF."""
    order = np.load(os.path.join(spill, "order.npz"))
    seq, buckets, group_of_bucket = order["seq"], order["buckets"], order["group_of_bucket"]
    tables = [_map(os.path.join(spill, "anchors-%05d.arrow" % p)) for p in state["present"]]
    starts = np.concatenate(([0], np.cumsum(state["counts"])))
    df = np.zeros(len(items), dtype=np.int64) if metric_name == "tfidf" else None
    out = _Appender(os.path.join(spill, "group-%05d.arrows"))
    tick = progress("regroup", len(tables)) if progress else None
    try:
        for t, table in enumerate(tables):
            s = seq[starts[t]:starts[t + 1]]
            g = group_of_bucket[buckets[s]]
            offsets, values = _list_parts(table.column("history"))
            if df is not None:
                df += document_frequency(offsets, values, len(df))
            part = pa.table({"seq_id": pa.array(s.astype(np.uint32)), "target": table.column("target"),
                             "history": table.column("history"), "bucket": pa.array(buckets[s])})
            out.write_split(part, g, state["groups"])
            if tick:
                tick(1)
    finally:
        out.close()
    if tick:
        tick(0, done=True)
    if df is not None:
        np.save(os.path.join(spill, "df.npy"), df)
    _write_sequences(os.path.join(partial, "sequences.arrow"), tables, seq, starts, buckets, state["labels"], items)


def _write_sequences(path, tables, seq, starts, buckets, labels, items: pa.Array) -> None:
    """sequences.arrow (SPEC §6), ROWS_PER_BATCH anchors at a time gathered from the partitions by seq_id:
    the same batches, so the same bytes, as io.write_table of the whole table."""
    n = len(seq)
    user_type = tables[0].schema.field("user").type
    schema = pa.schema([("seq_id", pa.uint32()), ("user_id", user_type), ("target", items.type),
                        ("history", pa.large_list(items.type)), ("bucket", pa.string())])
    label_array = pa.array(labels, pa.string()) if labels is not None else None
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for lo in range(0, n, ROWS_PER_BATCH):
            hi = min(lo + ROWS_PER_BATCH, n)
            users, targets, lens, hist, ids = [], [], [], [], []
            for t, table in enumerate(tables):
                s = seq[starts[t]:starts[t + 1]]
                a, b = np.searchsorted(s, [lo, hi])  # a partition's seq_ids ascend
                if a == b:
                    continue
                part = table.slice(a, b - a)
                offsets, values = _list_parts(part.column("history"))
                users.append(part.column("user").combine_chunks())
                targets.append(part.column("target").to_numpy())
                lens.append(np.diff(offsets))
                hist.append(values)
                ids.append(s[a:b])
            by_seq = np.argsort(np.concatenate(ids), kind="stable")
            offsets, codes = _reorder_lists(np.concatenate(lens), np.concatenate(hist), by_seq)
            bucket = label_array.take(pa.array(buckets[lo:hi])) if label_array is not None else pa.nulls(hi - lo,
                                                                                                         pa.string())
            writer.write_batch(pa.record_batch([
                pa.array(np.arange(lo, hi, dtype=np.uint32)),
                pa.concat_arrays(users).take(pa.array(by_seq)),
                items.take(pa.array(np.concatenate(targets)[by_seq])),
                _list_array(offsets, items.take(pa.array(codes))),
                bucket,
            ], schema=schema))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- stage E
def _load_group(spill, g: int):
    """(seq_ids ascending, SequenceSet of the group's anchors in that order, bucket codes)."""
    table = pa.ipc.open_stream(pa.memory_map(os.path.join(spill, "group-%05d.arrows" % g))).read_all()
    ids = table.column("seq_id").to_numpy()
    by_seq = np.argsort(ids, kind="stable")
    offsets, values = _list_parts(table.column("history"))
    indptr, items = _reorder_lists(np.diff(offsets), values, by_seq)
    seqs = SequenceSet(indptr=indptr, items=items.astype(np.int32), item_values=None, user_values=None,
                       target_codes=table.column("target").to_numpy()[by_seq].astype(np.int32),
                       bucket_codes=table.column("bucket").to_numpy()[by_seq].astype(np.int32),
                       bucket_labels=None, n_users=0, skipped=0)
    return ids[by_seq].astype(np.int64), seqs


def _group_features(spill, state, g, metric, ngram_n, df):
    ids, seqs = _load_group(spill, g)
    features = prepare_features(seqs, metric, ngram_n, df=df, n_total=state["n"])
    return ids, seqs, features, make_plan(seqs.n, seqs.bucket_codes)


def _threshold(spill, state, sel, be, metric, ngram_n, df, progress):
    """Global alpha's τ over every group's pairs (two histogram passes, as the in-memory build makes)."""
    def hist(prefix):
        total = None
        for g in range(state["groups"]):
            _, _, features, plan = _group_features(spill, state, g, metric, ngram_n, df)
            h = score_histogram(features, plan, be, prefix, None)
            total = h if total is None else total + h
        return total

    compared = state["compared"]
    tick = progress("threshold", None) if progress else None
    thr = global_threshold(sel.alpha, compared, hist(-1), hist)
    if tick:
        tick(0, done=True)
    return thr


def _mine_group(spill, state, g, sel, be, metric, ngram_n, df, thr, runner) -> tuple:
    """Stage E for group g: weak and strong lists of its anchors, by global seq_id, to ``result-G.arrow``."""
    ids, seqs, features, plan = _group_features(spill, state, g, metric, ngram_n, df)
    if runner is not None:
        runner.load(features, plan, thr)
        w = runner.mine(0, seqs.n)
    elif sel.mode == "alpha_global":
        w = mine_weak_range(features, plan, sel, be, 0, seqs.n, thr)
    else:
        w = mine_weak(features, plan, sel, be)
    s_off, s_nbr = strong_positives(seqs.target_codes, seqs.bucket_codes)
    table = pa.table({
        "seq_id": pa.array(ids.astype(np.uint32)),
        "weak": _list_array(w.offsets, pa.array(ids[w.neighbors].astype(np.uint32))),
        "scores": _list_array(w.offsets, pa.array(w.scores, pa.float32())),
        "strong": _list_array(s_off, pa.array(ids[s_nbr].astype(np.uint32))),
    })
    write_table(os.path.join(spill, "result-%05d.arrow" % g), table)
    return len(w.neighbors), len(s_nbr)


# ---------------------------------------------------------------------------------------------- stage F
def _gather(results, lo, hi, columns) -> dict:
    """{column: (offsets, values)} of list columns for anchors lo..hi-1, merged from the groups' results."""
    ids, parts = [], {c: ([], []) for c in columns}
    for seq_ids, table in results:
        a, b = np.searchsorted(seq_ids, [lo, hi])
        if a == b:
            continue
        ids.append(seq_ids[a:b])
        for c in columns:
            offsets, values = _list_parts(table.column(c).slice(a, b - a))
            parts[c][0].append(np.diff(offsets))
            parts[c][1].append(values)
    by_seq = np.argsort(np.concatenate(ids), kind="stable")
    return {c: _reorder_lists(np.concatenate(lens), np.concatenate(vals), by_seq) for c, (lens, vals) in parts.items()}


def _write_outputs(partial, spill, state, ranges, progress) -> list:
    results = []
    for g in range(state["groups"]):
        table = _map(os.path.join(spill, "result-%05d.arrow" % g))
        results.append((table.column("seq_id").to_numpy().astype(np.int64), table))
    sharded = len(ranges) > 1
    names = []
    tick = progress("shards", len(ranges)) if progress else None
    for s_, (lo, hi) in enumerate(ranges):
        weak_name, strong_name = (f"weak-{s_:05d}.arrow", f"strong-{s_:05d}.arrow") if sharded else \
            ("weak.arrow", "strong.arrow")
        names.append((weak_name, strong_name, [lo, hi]))
        if os.path.exists(os.path.join(partial, weak_name)) and os.path.exists(os.path.join(partial, strong_name)):
            continue
        lists = _gather(results, lo, hi, ("weak", "scores", "strong"))
        (offsets, neighbors), (_, scores) = lists["weak"], lists["scores"]
        write_table(os.path.join(partial, weak_name), weak_table(offsets, neighbors, scores))
        write_table(os.path.join(partial, strong_name), strong_table(*lists["strong"]))
        fault_point("SIMMINE_KILL_AFTER_SHARDS", s_ + 1)
        if tick:
            tick(1)
    if tick:
        tick(0, done=True)
    return names


# ---------------------------------------------------------------------------------------------- driver
def build_streamed(partial: str, src: dict, metric, sel, be, engine, split, max_len, compare, ngram_n,
                   memory_gb, max_output_gb, shard_rows, ray_address, progress, timings) -> tuple:
    """Runs stages A–F in ``partial`` (resuming what a previous run finished); returns (StreamResult,
    [(weak file, strong file, rows)])."""
    budget = budget_bytes(memory_gb)
    spill = os.path.join(partial, "spill")
    os.makedirs(spill, exist_ok=True)
    state_path = os.path.join(spill, "state.json")
    state = json.load(open(state_path)) if os.path.exists(state_path) else {"stage": "", **src}

    clock = [time.perf_counter()]

    def done(stage):
        now = time.perf_counter()
        timings[{"A": "partition", "B": "anchors", "C": "order", "D": "regroup"}[stage]] = now - clock[0]
        clock[0] = now
        state["stage"] = stage
        write_json(state_path, state)
        fault_point("SIMMINE_KILL_AFTER_STAGE", stage)

    if state["stage"] < "A":
        state.update(_partition_log(spill, src, budget, progress))
        done("A")
    items = _map(os.path.join(spill, "items.arrow")).column("item").combine_chunks()
    if state["stage"] < "B":
        tick = progress("anchors", len(state["present"])) if progress else None
        for p in state["present"]:
            users = os.path.join(spill, "users-%05d.arrows" % p)
            if not os.path.exists(os.path.join(spill, "anchors-%05d.arrow" % p)):
                _partition_anchors(spill, src, items, p, split, max_len, compare)
            if os.path.exists(users):
                os.remove(users)
            if tick:
                tick(1)
        if tick:
            tick(0, done=True)
        done("B")
    if state["stage"] < "C":
        _order_anchors(spill, state, sel, budget, max_output_gb)
        if state["n"] == 0:
            raise InputError(f"{src['path']}: no user has a non-empty history after --split {split} "
                             f"(every one of {state['n_users']} users was skipped)")
        done("C")
    order = np.load(os.path.join(spill, "order.npz"))
    size = np.bincount(order["buckets"], minlength=state["n_buckets"])
    state["compared"] = int(np.sum(size * (size - 1) // 2))
    if state["stage"] < "D":
        _regroup(spill, state, items, partial, metric.name, progress)
        done("D")
        for p in state["present"]:
            os.remove(os.path.join(spill, "anchors-%05d.arrow" % p))
    df = np.load(os.path.join(spill, "df.npy")) if metric.name == "tfidf" else None

    t = time.perf_counter()
    thr = None
    if sel.mode == "alpha_global":
        if "threshold" not in state:
            thr = _threshold(spill, state, sel, be, metric, ngram_n, df, progress)
            state["threshold"] = {"tau": thr.tau, "rank": thr.rank, "pairs_at_or_above": thr.pairs_at_or_above}
            write_json(state_path, state)
        from .engines.local import check_threshold_output
        from .select import GlobalThreshold

        thr = GlobalThreshold(**state["threshold"])
        check_threshold_output(thr, sel, state["n"], max_output_gb)
    runner = None
    kept = state.setdefault("kept", {})
    try:
        if engine == "ray":
            from .engines.ray_ import RayRunner

            runner = RayRunner(None, None, sel, be.name, None, ray_address)
        tick = progress("score", state["groups"]) if progress else None
        for g in range(state["groups"]):
            if str(g) not in kept or not os.path.exists(os.path.join(spill, "result-%05d.arrow" % g)):
                kept[str(g)] = _mine_group(spill, state, g, sel, be, metric, ngram_n, df, thr, runner)
                write_json(state_path, state)
                fault_point("SIMMINE_KILL_AFTER_GROUPS", g + 1)
            if sel.mode == "min_sim":  # min-sim's weak lists are counted as they come
                check_output_size(output_bytes(sum(v[0] for v in kept.values()), sum(v[1] for v in kept.values()),
                                               state["entries"], state["n"]), max_output_gb, "counted while mining")
            if tick:
                tick(1)
        if tick:
            tick(0, done=True)
        tasks = {"tasks": runner.tasks, "task_rows": runner.task_rows} if runner else None
    finally:
        if runner is not None:
            runner.close()
    timings["score"] = time.perf_counter() - t
    t = time.perf_counter()
    n = state["n"]
    ranges = [(lo, min(lo + shard_rows, n)) for lo in range(0, n, shard_rows)]
    names = _write_outputs(partial, spill, state, ranges, progress)
    timings["write"] = time.perf_counter() - t
    result = StreamResult(n=n, n_users=state["n_users"], skipped=state["skipped"], n_buckets=state["n_buckets"],
                          compared=state["compared"], weak_kept=sum(v[0] for v in kept.values()),
                          strong_kept=sum(v[1] for v in kept.values()), threshold=thr, groups=state["groups"],
                          partitions=state["partitions"], tasks=tasks)
    return result, names
