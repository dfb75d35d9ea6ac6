"""Stages A–D of a streamed build (docs/scale.md): the log into user-hash partitions, each partition's anchors,
seq_ids and groups, and the anchors regrouped with sequences.arrow written in seq_id order."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from ..engines.local import (make_plan)
from ..io import ROWS_PER_BATCH, bucket_column, write_table
from ..csr import document_frequency, ranges
from ..select import (check_output_size, k_per_anchor, output_bytes,
                     weak_entries_bound)
from ..anchors import anchor_rows, bucket_keys, encode_with, owner_codes
from ..readers import Log, RetypeAsText, check_id_type, stream_log, time_values


BYTES_PER_LOG_ROW = 160   # a partition's interactions while its anchors are built (table, sort keys, codes)


BYTES_PER_ENTRY = 64      # a group's history entries while mined (CSR, tile, postings, bitmaps)


BYTES_PER_KEPT = 16       # one weak entry while a group's lists are assembled


MAX_PARTITIONS = 1024


MIN_BATCH_ROWS = 1 << 14


ROW = "__row"


def budget_bytes(memory_gb: float) -> int:
    return int(memory_gb * (1 << 30))


def spill_dir(run) -> str:
    return run.path("spill")


def map_file(path: str) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def list_array(offsets: np.ndarray, values) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values)


def list_parts(column) -> tuple:
    """(offsets from 0, values) of a large_list column as NumPy arrays."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
    return offsets - offsets[0], values


def reorder_lists(lengths: np.ndarray, values: np.ndarray, order: np.ndarray) -> tuple:
    """(offsets, values) of variable-length rows (``lengths``, values row after row) taken in ``order``."""
    starts = np.cumsum(lengths) - lengths
    taken = values[ranges(starts[order], lengths[order])]
    return np.concatenate(([0], np.cumsum(lengths[order]))).astype(np.int64), taken


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
        pos = ranges(offsets[:-1], lengths)                 # every byte of every string, string after string
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

    def __init__(self, pattern: str, compression: Optional[str]):
        self.pattern, self.compression, self.open = pattern, compression, {}

    def write(self, key: int, table: pa.Table) -> None:
        if key not in self.open:
            sink = pa.OSFile(self.pattern % key, "wb")
            options = pa.ipc.IpcWriteOptions(compression=self.compression)
            self.open[key] = (sink, pa.ipc.new_stream(sink, table.schema, options=options))
        self.open[key][1].write_table(table)

    def write_split(self, table: pa.Table, keys: np.ndarray, n_keys: int) -> None:
        """Appends each row of ``table`` to the file of its key (0..n_keys-1), rows keeping their order."""
        if n_keys <= 1 << 16:  # NumPy's stable sort of 16-bit keys is a radix sort: ~10x faster than of int64
            keys = keys.astype(np.uint16)
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


def partition_log(run) -> dict:
    """Stage A: every row to its user's partition file, with its file row number; the sorted items."""
    import pyarrow.compute as pc

    spill, c, fmt, budget = spill_dir(run), run.config, run.state["fmt"], budget_bytes(run.config.memory_gb)
    parts = max(1, min(MAX_PARTITIONS, math.ceil(_estimate_rows(c.input, fmt) * BYTES_PER_LOG_ROW / budget)))
    batch_rows = int(max(MIN_BATCH_ROWS, min(1 << 22, budget // (4 * BYTES_PER_LOG_ROW))))
    as_text = False
    while True:
        # uncompressed: the log's rows are written once and read once at disk speed; LZ4 cost a fifth of
        # partition and anchors for a 2.9x smaller spill (docs/scale.md)
        out = _Appender(os.path.join(spill, "users-%05d.arrows"), None)
        items, pending, rows = None, [], 0
        tick = run.progress("partition", None) if run.progress else None
        try:
            for log in stream_log(c.input, fmt, c.user_col, c.item_col, run.state["time_col"], c.bucket_by,
                                  batch_rows, as_text):
                users = check_id_type(log, log.user_col)
                item_col = check_id_type(log, log.item_col)
                if log.time_col is not None:
                    time_values(log)  # bad timestamps are reported here, with their file line
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


def partition_anchors(run, items: pa.Array, p: int) -> None:
    """Stage B for partition p: its anchors, in order of their users' first rows, to ``anchors-P.arrow``."""
    spill, src, c = spill_dir(run), run.state, run.config
    table = pa.ipc.open_stream(pa.memory_map(os.path.join(spill, "users-%05d.arrows" % p))).read_all()
    log = Log(c.input, src["fmt"], table, c.user_col, c.item_col, src["time_col"], c.bucket_by, 0)
    rows = anchor_rows(log, c.split, c.max_len, c.compare, c.anchors)
    codes = encode_with(table.column(c.item_col), items)
    file_rows = table.column(ROW).to_numpy()
    target_rows = pa.array(rows.target_rows)
    cols = {
        "first_row": pa.array(file_rows[rows.first_rows]),
        "user": rows.user_dict.take(pa.array(rows.valid)),
        "position": pa.array(rows.positions.astype(np.uint32)),
        "target": pa.array(codes[rows.target_rows]),
        "history": list_array(np.concatenate(([0], np.cumsum(rows.lengths))), pa.array(codes[rows.history_rows])),
    }
    for i, name in enumerate(c.bucket_by):
        cols[f"bucket{i}"] = table.column(name).take(target_rows).combine_chunks()
    if rows.stream_rows is not None:  # prefix anchors: windows into each user's T, and T once per user
        cols.update(_partition_trains(spill, p, rows, codes, file_rows))
    meta = {"n_users": str(rows.n_users), "skipped": str(rows.n_users - rows.anchor_users)}
    write_table(os.path.join(spill, "anchors-%05d.arrow" % p), pa.table(cols).replace_schema_metadata(meta))


def _partition_trains(spill: str, p: int, rows, codes: np.ndarray, file_rows: np.ndarray) -> dict:
    """Partition p's users with prefix anchors to ``trains-P.arrow`` (first file row, user, T as item codes),
    and each anchor's window [start, end) in its user's T (docs/output.md)."""
    owner, user_ptr = owner_codes(rows.valid), rows.stream_ptr
    first = np.searchsorted(owner, np.arange(rows.anchor_users))
    write_table(os.path.join(spill, "trains-%05d.arrow" % p), pa.table({
        "first_row": pa.array(file_rows[rows.first_rows[first]]),
        "user": rows.user_dict.take(pa.array(rows.valid[first])),
        "sequence": list_array(user_ptr, pa.array(codes[rows.stream_rows].astype(np.uint32))),
    }))
    return {"start": pa.array((rows.windows[:, 0] - user_ptr[owner]).astype(np.uint32)),
            "end": pa.array((rows.windows[:, 1] - user_ptr[owner]).astype(np.uint32))}


def order_anchors(run) -> None:
    """Stage C: seq_ids, bucket codes and groups, saved to ``order.npz`` and the checkpoint."""
    spill, state, sel = spill_dir(run), run.state, run.config.selection
    tables = [map_file(os.path.join(spill, "anchors-%05d.arrow" % p)) for p in state["present"]]
    first = np.concatenate([t.column("first_row").to_numpy() for t in tables]) if tables else np.zeros(0, np.int64)
    n = len(first)
    by_seq = np.argsort(first, kind="stable")
    seq = np.empty(n, dtype=np.int64)
    seq[by_seq] = np.arange(n)
    lengths = np.concatenate([np.diff(list_parts(t.column("history"))[0]) for t in tables])[by_seq] \
        if n else np.zeros(0, np.int64)
    labels = None
    if run.config.bucket_by and n:
        take = pa.array(by_seq)
        columns = [pa.chunked_array([t.column(f"bucket{i}") for t in tables]).combine_chunks().take(take)
                   for i in range(len(run.config.bucket_by))]
        buckets, labels = bucket_keys(columns)
        del columns
    else:
        buckets = np.zeros(n, dtype=np.int32)
    n_buckets = int(buckets.max()) + 1 if n else 0
    plan = make_plan(n, buckets, owner_codes(first[by_seq]) if run.config.excludes_same_user else None)
    # the output-size check of docs/selection.md, as the in-memory build makes it (min-sim: while mining)
    weak = weak_entries_bound(sel, plan.others, plan.compared_pairs)
    check_output_size(output_bytes(weak or 0, int(lengths.sum()), n), run.config.max_output_gb)
    # groups: consecutive buckets whose working set stays under the budget
    kept = k_per_anchor(sel, plan.others)
    cost = np.bincount(buckets, weights=lengths * BYTES_PER_ENTRY + kept * BYTES_PER_KEPT, minlength=n_buckets)
    budget = budget_bytes(run.config.memory_gb)
    group_of_bucket = np.zeros(n_buckets, dtype=np.int64)
    g, used = 0, 0.0
    for b in range(n_buckets):
        if used and used + cost[b] > budget:
            g, used = g + 1, 0.0
        group_of_bucket[b] = g
        used += cost[b]
    np.savez(os.path.join(spill, "order.npz"), seq=seq, buckets=buckets, group_of_bucket=group_of_bucket,
             first=first[by_seq])
    state.update(n=int(n), n_buckets=n_buckets, entries=int(lengths.sum()), labels=labels,
                 groups=int(g + 1) if n else 0, counts=[t.num_rows for t in tables],
                 n_users=sum(int(t.schema.metadata[b"n_users"]) for t in tables),
                 skipped=sum(int(t.schema.metadata[b"skipped"]) for t in tables), compared=plan.compared_pairs)


def regroup(run, items: pa.Array) -> None:
    """Stage D: anchors → group files; sequences.arrow in seq_id order; df for TF-IDF."""
    spill, state = spill_dir(run), run.state
    order = np.load(os.path.join(spill, "order.npz"))
    seq, buckets, group_of_bucket = order["seq"], order["buckets"], order["group_of_bucket"]
    tables = [map_file(os.path.join(spill, "anchors-%05d.arrow" % p)) for p in state["present"]]
    starts = np.concatenate(([0], np.cumsum(state["counts"])))
    df = np.zeros(len(items), dtype=np.int64) if run.config.metric == "tfidf" else None
    out = _Appender(os.path.join(spill, "group-%05d.arrows"), "lz4")
    tick = run.progress("regroup", len(tables)) if run.progress else None
    try:
        for t, table in enumerate(tables):
            s = seq[starts[t]:starts[t + 1]]
            g = group_of_bucket[buckets[s]]
            offsets, values = list_parts(table.column("history"))
            if df is not None:
                df += document_frequency(offsets, values, len(df))
            part = pa.table({"seq_id": pa.array(s.astype(np.uint32)), "first_row": table.column("first_row"),
                             "target": table.column("target"), "history": table.column("history"),
                             "bucket": pa.array(buckets[s])})
            out.write_split(part, g, state["groups"])
            if tick:
                tick(1)
    finally:
        out.close()
    if tick:
        tick(0, done=True)
    if df is not None:
        np.save(os.path.join(spill, "df.npy"), df)
    anchor_order = AnchorOrder(seq, starts, buckets, state["labels"])
    if run.config.anchors == "prefix":
        _write_compact(run, tables, anchor_order, items, order["first"])
    else:
        _write_sequences(run.path("sequences.arrow"), tables, anchor_order, items)


@dataclass
class AnchorOrder:
    """Where the partitions' anchors go: seq[starts[t] + r] is the seq_id of partition t's row r."""

    seq: np.ndarray
    starts: np.ndarray
    buckets: np.ndarray      # bucket code per seq_id
    labels: Optional[list]   # bucket code -> label (None without --bucket-by)


def _write_sequences(path, tables, order: AnchorOrder, items: pa.Array) -> None:
    """sequences.arrow (docs/output.md), ROWS_PER_BATCH anchors at a time gathered from the partitions by
    seq_id: the same batches, so the same bytes, as io.write_table of the whole table."""
    n = len(order.seq)
    schema = pa.schema([("seq_id", pa.uint32()), ("user_id", tables[0].schema.field("user").type),
                        ("position", pa.uint32()), ("target", items.type), ("history", pa.large_list(items.type)),
                        ("bucket", pa.string())])
    with _BatchFile(path, schema) as writer:
        for lo in range(0, n, ROWS_PER_BATCH):
            hi = min(lo + ROWS_PER_BATCH, n)
            parts, by_seq = _by_seq(tables, order, lo, hi, ["user", "position", "target", "history"])
            offsets, codes = _gather_lists(parts, "history", by_seq)
            writer.write_batch(pa.record_batch([
                pa.array(np.arange(lo, hi, dtype=np.uint32)),
                pa.concat_arrays([p.column("user").combine_chunks() for p in parts]).take(pa.array(by_seq)),
                pa.array(np.concatenate([p.column("position").to_numpy() for p in parts])[by_seq]),
                items.take(pa.array(np.concatenate([p.column("target").to_numpy() for p in parts])[by_seq])),
                list_array(offsets, items.take(pa.array(codes))),
                bucket_column(order.buckets[lo:hi], order.labels, hi - lo),
            ], schema=schema))


def _gather_lists(parts, column: str, order: np.ndarray) -> tuple:
    """(offsets, values) of the list column of the partitions' slices, concatenated and taken in ``order``."""
    lengths, values = [], []
    for part in parts:
        offsets, codes = list_parts(part.column(column))
        lengths.append(np.diff(offsets))
        values.append(codes)
    return reorder_lists(np.concatenate(lengths), np.concatenate(values), order)


def _by_seq(tables, order: AnchorOrder, lo: int, hi: int, columns) -> tuple:
    """Seq_ids lo..hi-1 gathered from the partitions: (each partition's slice of them, the order that sorts
    their concatenation by seq_id)."""
    parts, ids = [], []
    for t, table in enumerate(tables):
        s = order.seq[order.starts[t]:order.starts[t + 1]]
        a, b = np.searchsorted(s, [lo, hi])  # a partition's seq_ids ascend
        if a < b:
            parts.append(table.slice(a, b - a).select(columns))
            ids.append(s[a:b])
    return parts, np.argsort(np.concatenate(ids), kind="stable")


def _write_compact(run, tables, order: AnchorOrder, items: pa.Array, first: np.ndarray) -> None:
    """A prefix build's sequences.arrow, users.arrow and vocabulary.arrow (docs/output.md), in the batches
    io.write_table gives the in-memory build's tables, so the same bytes."""
    n = len(order.seq)
    user_of_seq = owner_codes(first)  # users in order of their first file row, as seq_ids are
    schema = pa.schema([("seq_id", pa.uint32()), ("user", pa.uint32()), ("position", pa.uint32()),
                        ("start", pa.uint32()), ("end", pa.uint32()), ("bucket", pa.string())])
    with _BatchFile(run.path("sequences.arrow"), schema) as writer:
        for lo in range(0, n, ROWS_PER_BATCH):
            hi = min(lo + ROWS_PER_BATCH, n)
            parts, by_seq = _by_seq(tables, order, lo, hi, ["position", "start", "end"])
            cols = [np.concatenate([p.column(c).to_numpy() for p in parts])[by_seq] for c in ("position", "start",
                                                                                                "end")]
            writer.write_batch(pa.record_batch([pa.array(np.arange(lo, hi, dtype=np.uint32)),
                                                pa.array(user_of_seq[lo:hi].astype(np.uint32)),
                                                *[pa.array(c) for c in cols],
                                                bucket_column(order.buckets[lo:hi], order.labels, hi - lo)],
                                               schema=schema))
    _write_users(run)
    write_table(run.path("vocabulary.arrow"), pa.table({"item": items}))


def _write_users(run) -> None:
    """users.arrow from the partitions' trains-P.arrow files, users in order of their first file row."""
    spill = spill_dir(run)
    trains = [map_file(os.path.join(spill, "trains-%05d.arrow" % p)) for p in run.state["present"]]
    first = np.concatenate([t.column("first_row").to_numpy() for t in trains])
    by_first = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_first] = np.arange(len(first))
    order = AnchorOrder(rank, np.concatenate(([0], np.cumsum([t.num_rows for t in trains]))), None, None)
    schema = pa.schema([("user_id", trains[0].schema.field("user").type), ("sequence", pa.large_list(pa.uint32()))])
    with _BatchFile(run.path("users.arrow"), schema) as writer:
        for lo in range(0, len(first), ROWS_PER_BATCH):
            hi = min(lo + ROWS_PER_BATCH, len(first))
            parts, by_rank = _by_seq(trains, order, lo, hi, ["user", "sequence"])
            offsets, codes = _gather_lists(parts, "sequence", by_rank)
            users = pa.concat_arrays([part.column("user").combine_chunks() for part in parts]).take(pa.array(by_rank))
            writer.write_batch(pa.record_batch([users, list_array(offsets, pa.array(codes, pa.uint32()))],
                                               schema=schema))


class _BatchFile:
    """An Arrow IPC file written batch by batch to ``path.tmp``, renamed to ``path`` when complete."""

    def __init__(self, path: str, schema: pa.Schema):
        self.path, self.schema = path, schema

    def __enter__(self):
        self.sink = pa.OSFile(self.path + ".tmp", "wb")
        self.writer = pa.ipc.new_file(self.sink, self.schema)
        return self.writer

    def __exit__(self, kind, value, trace):
        self.writer.close()
        self.sink.close()
        if kind is None:
            os.replace(self.path + ".tmp", self.path)
