"""Logs → anchors: the SequenceSet (a CSR of item codes per anchor) every later stage works on, and the users'
training sequences for item graphs (docs/input.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._native import first_appearance, user_time_order
from .csr import ranges
from .errors import InputError
from .readers import Log, check_id_type, read_log, time_values

SPLITS = ("loo", "none")

COMPARES = ("history", "full")

ANCHORS = ("user", "prefix")


@dataclass
class Stream:
    """Prefix anchors' nested windows: each anchor user's training sequence T (item codes, user after user)
    and every anchor's compared part as a [start, end) window into it, nondecreasing along a user's anchors."""

    codes: np.ndarray       # int32 item codes
    windows: np.ndarray     # int64 [N, 2]
    user_ptr: np.ndarray    # int64 [U + 1]: user u's T is codes[user_ptr[u]:user_ptr[u + 1]] (u = its owner code)


@dataclass
class SequenceSet:
    """Anchors in seq_id order. ``items[indptr[i]:indptr[i+1]]`` is what anchor i is compared on."""

    indptr: np.ndarray          # int64 [N+1]
    items: np.ndarray           # int32 item codes; code order = sorted order of the item values
    item_values: pa.Array       # code -> item as given
    user_values: pa.Array       # per anchor, as given
    target_codes: np.ndarray    # int32 per anchor
    bucket_codes: Optional[np.ndarray]  # int32 per anchor, None without --bucket-by
    bucket_labels: Optional[list]       # bucket code -> label
    n_users: int
    skipped: int
    positions: Optional[np.ndarray] = None  # int64 per anchor: t (the target's index in T)
    owners: Optional[np.ndarray] = None     # int64 per anchor: its user, numbered 0.. in seq_id order
    stream: Optional[Stream] = None         # prefix anchors only

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def target_values(self) -> pa.Array:
        return self.item_values.take(pa.array(self.target_codes))

    def history_lists(self) -> pa.Array:
        values = self.item_values.take(pa.array(self.items))
        return pa.LargeListArray.from_arrays(pa.array(self.indptr, pa.int64()), values)


@dataclass
class AnchorRows:
    """Where each anchor's parts are in a log's table (docs/input.md), before any value is encoded."""

    user_codes: np.ndarray      # int64 per row: user in order of first appearance
    user_dict: pa.Array         # user code -> user as given
    history_rows: np.ndarray    # table rows of every anchor's compared items, anchor after anchor
    lengths: np.ndarray         # int64 compared items per anchor
    target_rows: np.ndarray     # table row of every anchor's target
    first_rows: np.ndarray      # table row of every anchor's user's first interaction
    valid: np.ndarray           # user code of every anchor
    positions: np.ndarray       # int64 per anchor: t, the target's index in the user's training sequence T
    n_users: int
    anchor_users: int           # users with at least one anchor
    stream_rows: Optional[np.ndarray] = None   # prefix anchors: table rows of each anchor user's T, user after user
    windows: Optional[np.ndarray] = None       # prefix anchors: [N, 2] compared part of each anchor in stream_rows
    stream_ptr: Optional[np.ndarray] = None    # prefix anchors: int64 [U + 1], user u's T in stream_rows


def anchor_rows(log: Log, split: str = "loo", max_len: int = 50, compare: str = "history",
                anchors: str = "user") -> AnchorRows:
    """Per docs/input.md: stable time sort per user, split into the training sequence T, then one anchor
    per user (target T[-1]) or per prefix (target T[t] for every t >= 1), each compared on the last
    max_len items before its target (history) or up to and including it (full)."""
    if split not in SPLITS:
        raise InputError(f"unknown --split '{split}' (choose from {', '.join(SPLITS)})")
    if compare not in COMPARES:
        raise InputError(f"unknown --compare '{compare}' (choose from {', '.join(COMPARES)})")
    if max_len < 1:
        raise InputError(f"--max-len must be at least 1, got {max_len}")
    users = check_id_type(log, log.user_col)
    user_codes, user_dict = first_appearance_codes(users)
    n_users = len(user_dict)
    order = user_time_order(user_codes, time_values(log) if log.time_col is not None else None, n_users)
    lengths = np.bincount(user_codes, minlength=n_users).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    t_len = np.maximum(lengths - 2, 0) if split == "loo" else lengths
    users_kept = np.flatnonzero(t_len >= 2)
    s, tl = starts[users_kept], t_len[users_kept]
    per_user = tl - 1 if anchors == "prefix" else np.ones(len(users_kept), dtype=np.int64)
    owner = np.repeat(np.arange(len(users_kept)), per_user)
    t = ranges(np.ones(len(users_kept), np.int64), per_user) if anchors == "prefix" else tl - 1
    target_pos = s[owner] + t
    c_end = target_pos if compare == "history" else target_pos + 1
    c_begin = np.maximum(s[owner], c_end - max_len)
    c_len = c_end - c_begin
    if order is None:  # each user's rows are consecutive: the first is where they start
        first = starts[users_kept]
    else:
        first = np.minimum.reduceat(order, starts)[users_kept] if len(order) else np.zeros(0, np.int64)
    rows = AnchorRows(user_codes, user_dict, take(order, ranges(c_begin, c_len)), c_len, take(order, target_pos),
                      first[owner], users_kept[owner], t.astype(np.int64), int(n_users), len(users_kept))
    if anchors == "prefix":  # nested windows over each user's T (the prefix sweep's stream)
        rows.stream_rows = take(order, ranges(s, tl))
        rows.stream_ptr = np.concatenate(([0], np.cumsum(tl))).astype(np.int64)
        shift = rows.stream_ptr[:-1] - s  # T's offset in stream_rows minus its offset in order
        rows.windows = np.stack((c_begin + shift[owner], c_end + shift[owner]), axis=1)
    return rows


def take(order: Optional[np.ndarray], positions: np.ndarray) -> np.ndarray:
    """Table rows at ``positions`` of a row order (None: the identity)."""
    return positions if order is None else order[positions]


def build_sequences(log: Log, split: str = "loo", max_len: int = 50, compare: str = "history",
                    item_values: Optional[pa.Array] = None, anchors: str = "user") -> SequenceSet:
    """The anchors of a log (docs/input.md). Items are coded in the sorted order of ``item_values`` (a sorted
    dictionary covering the log, as a streamed build passes) or of the log's own items."""
    rows = anchor_rows(log, split, max_len, compare, anchors)
    items = check_id_type(log, log.item_col)
    if item_values is None:
        item_codes, item_values = encode_sorted(items)
    else:
        item_codes = encode_with(items, item_values)
    bucket_codes = bucket_labels = None
    if log.bucket_cols:
        idx = pa.array(rows.target_rows)
        bucket_codes, bucket_labels = bucket_keys([log.table.column(c).take(idx) for c in log.bucket_cols])
    stream = None
    if rows.stream_rows is not None:
        stream = Stream(item_codes[rows.stream_rows], rows.windows, rows.stream_ptr)
    return SequenceSet(
        indptr=np.concatenate(([0], np.cumsum(rows.lengths))).astype(np.int64),
        items=item_codes[rows.history_rows],
        item_values=item_values,
        user_values=rows.user_dict.take(pa.array(rows.valid)),
        target_codes=item_codes[rows.target_rows],
        bucket_codes=bucket_codes,
        bucket_labels=bucket_labels,
        n_users=rows.n_users,
        skipped=int(rows.n_users - rows.anchor_users),
        positions=rows.positions,
        owners=owner_codes(rows.valid),
        stream=stream,
    )


@dataclass
class TrainingSequences:
    """Every user's training sequence T (time-sorted, split as --split says), users with at least one item,
    in order of first appearance; items coded in the sorted order of all the log's items."""

    indptr: np.ndarray         # int64 [U + 1]
    codes: np.ndarray          # int32 item codes, user after user
    item_values: pa.Array      # code -> item as given (every item of the log, held-out ones included)
    user_values: pa.Array      # per user, as given


def training_sequences(log: Log, split: str = "loo") -> TrainingSequences:
    """The users' training sequences of a log (docs/input.md), for graphs over items."""
    users = check_id_type(log, log.user_col)
    user_codes, user_dict = first_appearance_codes(users)
    order = user_time_order(user_codes, time_values(log) if log.time_col is not None else None,
                             len(user_dict))
    lengths = np.bincount(user_codes, minlength=len(user_dict)).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    t_len = np.maximum(lengths - 2, 0) if split == "loo" else lengths
    kept = np.flatnonzero(t_len >= 1)
    item_codes, item_values = encode_sorted(check_id_type(log, log.item_col))
    if order is None and split == "none":  # every row, in table order
        codes = item_codes
    else:
        codes = item_codes[take(order, ranges(starts[kept], t_len[kept]))]
    return TrainingSequences(np.concatenate(([0], np.cumsum(t_len[kept]))).astype(np.int64), codes,
                             item_values, user_dict.take(pa.array(kept)))


def first_appearance_codes(users) -> tuple:
    """(codes int64, dictionary) with codes in order of first appearance, as Arrow's dictionary_encode gives.
    Integer ids over a span of a few per row take one pass over a table of the span, however the rows are
    ordered; other integer ids whose rows come user after user take one pass over the runs (checked by the
    runs' values being distinct) instead of a hash table."""
    flat = users.combine_chunks() if isinstance(users, pa.ChunkedArray) else users
    if pa.types.is_integer(flat.type) and flat.null_count == 0 and len(flat) > 1:
        u = flat.to_numpy(zero_copy_only=False)
        lo, hi = int(u.min()), int(u.max())
        if hi - lo < 4 * len(u) + 1024 and -2 ** 62 < lo and hi < 2 ** 62:
            codes, first = first_appearance(u.astype(np.int64, copy=False), lo, hi - lo + 1)
            return codes, pa.array(u[first], type=flat.type)
        change = np.empty(len(u), dtype=bool)
        change[0] = True
        np.not_equal(u[1:], u[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        runs = u[starts]
        ordered = np.sort(runs)
        if 2 * len(runs) <= len(u) and not np.any(ordered[1:] == ordered[:-1]):
            codes = np.cumsum(change, dtype=np.int64) - 1
            return codes, pa.array(runs, type=flat.type)
    enc = pc.dictionary_encode(flat)
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary


def encode_sorted(values) -> tuple:
    """(codes int32, dictionary) with codes in the sorted order of the values. Integer values over a span
    of at most a few per row take a presence table instead of a hash table."""
    flat = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_integer(flat.type) and flat.null_count == 0 and len(flat):
        v = flat.to_numpy(zero_copy_only=False)
        lo, hi = int(v.min()), int(v.max())
        if hi - lo < 4 * len(v) + 1024 and hi - lo < 2 ** 31 and -2 ** 62 < lo and hi < 2 ** 62:
            offset = (v.astype(np.int64) - lo) if lo else v  # int64: no wrap in a narrow type
            present = np.zeros(hi - lo + 1, dtype=bool)
            present[offset] = True
            table = np.cumsum(present, dtype=np.int32) - 1
            return table[offset], pa.array(np.flatnonzero(present) + lo, type=flat.type)
    uniq = pc.unique(values)
    uniq = uniq.take(pc.sort_indices(uniq))
    codes = pc.index_in(values, value_set=uniq)
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    return codes.to_numpy(zero_copy_only=False).astype(np.int32), uniq


def owner_codes(user_of_anchor) -> np.ndarray:
    """Dense user numbers 0, 1, ... per anchor, from any per-anchor user key (NumPy or Arrow) whose equal
    values are consecutive (the anchors of a user are consecutive seq_ids)."""
    n = len(user_of_anchor)
    change = np.zeros(n, dtype=np.int64)
    if n > 1:
        if isinstance(user_of_anchor, (pa.Array, pa.ChunkedArray)):
            u = user_of_anchor
            change[1:] = pc.not_equal(u.slice(1), u.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        else:
            u = np.asarray(user_of_anchor)
            change[1:] = u[1:] != u[:-1]
    return np.cumsum(change)


def encode_with(values, dictionary: pa.Array) -> np.ndarray:
    """int32 codes of ``values`` in a sorted dictionary that holds every one of them."""
    if pa.types.is_integer(dictionary.type) and pa.types.is_integer(values.type) and values.null_count == 0 \
            and len(dictionary):
        ids = dictionary.to_numpy(zero_copy_only=False).astype(np.int64)
        lo, span = int(ids[0]), int(ids[-1]) - int(ids[0]) + 1
        if span <= 4 * len(ids) + 1024:  # dense ids: a lookup table instead of a hash table per call
            table = np.zeros(span, dtype=np.int32)
            table[ids - lo] = np.arange(len(ids), dtype=np.int32)
            flat = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            return table[flat.to_numpy(zero_copy_only=False).astype(np.int64) - lo]
    codes = pc.index_in(values, value_set=dictionary)
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    return codes.to_numpy(zero_copy_only=False).astype(np.int32)


def bucket_keys(columns: list):
    """Bucket code per anchor from the values of its bucket columns (one array per column): codes in the
    sorted order of the value tuples; label = the values joined by '|'."""
    parts, labels_per_col = [], []
    for values in columns:
        codes, dictionary = encode_sorted(values)
        parts.append(codes)
        labels_per_col.append([str(v) for v in dictionary.to_pylist()])
    if not len(parts[0]):
        return np.zeros(0, dtype=np.int32), []
    keys, inverse = np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)
    labels = ["|".join(labels_per_col[c][k] for c, k in enumerate(key)) for key in keys]
    return inverse.reshape(-1).astype(np.int32), labels


def load_sequences(path: str, fmt: str = "auto", user_col: str = "user_id", item_col: str = "item_id",
                   time_col: Optional[str] = None, bucket_by: Sequence[str] = (), split: str = "loo",
                   max_len: int = 50, compare: str = "history", anchors: str = "user") -> SequenceSet:
    """Reads a log and builds its anchors (docs/input.md)."""
    log = read_log(path, fmt, user_col, item_col, time_col, bucket_by)
    return build_sequences(log, split, max_len, compare, anchors=anchors)
