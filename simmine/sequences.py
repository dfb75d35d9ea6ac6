"""Interaction logs → SequenceSet: the CSR of item codes every later stage works on (docs/input.md).

Formats: parquet, csv, tsv, arrow (IPC file or stream, Feather v2), inter (RecBole atomic files with
``name:type`` headers), lines (``user item item ...`` per line, as SASRec/ICLRec ship) and ml-dat (MovieLens
``user::item::rating::timestamp``). ``auto`` decides by magic bytes, extension, then content.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError

FORMATS = ("auto", "parquet", "csv", "tsv", "arrow", "inter", "lines", "ml-dat")
SPLITS = ("loo", "none")
COMPARES = ("history", "full")

CSV_BLOCK_BYTES = 1 << 24   # delimited text is parsed (and its types inferred) a block at a time

_EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".arrow": "arrow",
    ".feather": "arrow", ".ipc": "arrow", ".inter": "inter",
}


@dataclass
class Log:
    """A loaded log: the columns simmine needs, in file order, and how rows map to file lines."""

    path: str
    fmt: str
    table: pa.Table            # user, item, [time], bucket columns, with the user's names
    user_col: str
    item_col: str
    time_col: Optional[str]    # None: file order
    bucket_cols: tuple
    first_line: int            # file line of table row 0 (1-based); 0 when rows are not lines
    row_base: int = 0          # rows of the file before this table (a streamed batch's position)


@dataclass
class Stream:
    """Prefix anchors' nested windows: each anchor user's training sequence T (item codes, user after user)
    and every anchor's compared part as a [start, end) window into it, nondecreasing along a user's anchors."""

    codes: np.ndarray       # int32 item codes
    windows: np.ndarray     # int64 [N, 2]


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


# ---------------------------------------------------------------------------------------------- format sniffing
def detect_format(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:6] == b"ARROW1" or head[:4] == b"\xff\xff\xff\xff":
        return "arrow"
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    first = _first_text_line(path, head)
    if "::" in first:
        return "ml-dat"
    fields = first.split("\t")
    if len(fields) > 1 and all(re.fullmatch(r"[^:\s]+:[a-z_]+", f.strip()) for f in fields):
        return "inter"
    if "\t" in first and not _all_tokens_are_data(first.split("\t")):
        return "tsv"
    if "," in first or ";" in first:
        return "csv"
    return "lines"


def _first_text_line(path: str, head: bytes) -> str:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) - exc.start > 4:  # not just a multi-byte character cut by the read window
            raise InputError(f"{path}: line 1: not a readable log (not UTF-8 text, Parquet or Arrow)") from None
        text = head[: exc.start].decode("utf-8")
    for line in text.splitlines():
        if line.strip():
            return line
    raise InputError(f"{path}: the log is empty")


def _all_tokens_are_data(tokens: Sequence[str]) -> bool:
    return all(re.fullmatch(r"-?\d+(\.\d+)?", t.strip() or "x") for t in tokens)


# ---------------------------------------------------------------------------------------------- readers
def _check_file(path: str, fmt: str) -> str:
    """The log's format, after checking that the file can be read at all."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a log file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: the log is empty")
    if fmt not in FORMATS:
        raise InputError(f"unknown --format '{fmt}' (choose from {', '.join(FORMATS)})")
    return detect_format(path) if fmt == "auto" else fmt


def _pick_columns(path: str, names, user_col: str, item_col: str, time_col: Optional[str], bucket_cols) -> tuple:
    """(columns to keep, time column or None). ``time_col=None`` takes ``timestamp`` when present."""
    explicit_time = time_col is not None
    time_name = time_col if explicit_time else "timestamp"
    wanted = [user_col, item_col] + list(bucket_cols)
    missing = [c for c in wanted if c not in names]
    if explicit_time and time_name not in names:
        missing.append(time_name)
    if missing:
        flag = {user_col: "--user-col", item_col: "--item-col", time_name: "--time-col"}.get(missing[0], "--bucket-by")
        raise InputError(f"{path}: no column '{missing[0]}' (columns: {', '.join(names)}); "
                         f"name the right one with {flag}")
    has_time = time_name in names
    keep = list(dict.fromkeys(wanted + ([time_name] if has_time else [])))
    return keep, (time_name if has_time else None)


def read_log(path: str, fmt: str = "auto", user_col: str = "user_id", item_col: str = "item_id",
             time_col: Optional[str] = None, bucket_cols: Sequence[str] = ()) -> Log:
    """Reads the columns simmine needs. ``time_col=None`` takes ``timestamp`` when present, else file order."""
    fmt = _check_file(path, fmt)
    reader = {"parquet": _read_parquet, "arrow": _read_arrow, "csv": _read_csv, "tsv": _read_tsv,
              "inter": _read_inter, "lines": _read_lines, "ml-dat": _read_ml_dat}[fmt]
    table, first_line = reader(path)
    keep, time_name = _pick_columns(path, table.column_names, user_col, item_col, time_col, bucket_cols)
    table = table.select(keep)
    if table.num_rows == 0:
        raise InputError(f"{path}: the log has no interactions")
    log = Log(path, fmt, table, user_col, item_col, time_name, tuple(bucket_cols), first_line)
    _check_nulls(log)
    return log


def stream_log(path: str, fmt: str = "auto", user_col: str = "user_id", item_col: str = "item_id",
               time_col: Optional[str] = None, bucket_cols: Sequence[str] = (), batch_rows: int = 1 << 20,
               as_text: bool = False):
    """The log as a sequence of Logs of at most about ``batch_rows`` rows, in file order, each checked as
    read_log checks a whole log (row_base places a batch's rows in the file, for error messages).

    Parquet, Arrow and delimited text (csv, tsv, inter) are read batch by batch, so memory is bounded by
    the batch; ``lines`` and ``ml-dat`` files are read whole, then cut into batches. A delimited file whose
    column turns from numbers to text past the first block raises RetypeAsText: stream it again with
    ``as_text=True`` to get read_log's types."""
    fmt = _check_file(path, fmt)
    if fmt == "parquet":
        batches, first_line = _parquet_batches(path, batch_rows), 0
    elif fmt == "arrow":
        batches, first_line = _arrow_batches(path), 0
    elif fmt in ("csv", "tsv", "inter"):
        batches, first_line = _delimited_batches(path, fmt, as_text)
    else:
        table, first_line = (_read_lines if fmt == "lines" else _read_ml_dat)(path)
        batches = table.to_batches(max_chunksize=batch_rows)
    row_base, keep, time_name = 0, None, None
    for batch in batches:
        if keep is None:
            keep, time_name = _pick_columns(path, batch.schema.names, user_col, item_col, time_col, bucket_cols)
        table = pa.Table.from_batches([batch]).select(keep)
        for lo in range(0, table.num_rows, batch_rows):
            log = Log(path, fmt, table.slice(lo, batch_rows), user_col, item_col, time_name, tuple(bucket_cols),
                      first_line, row_base)
            _check_nulls(log)
            yield log
            row_base += log.table.num_rows
    if row_base == 0:
        raise InputError(f"{path}: the log has no interactions")


def _parquet_batches(path: str, batch_rows: int):
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=batch_rows):
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def _arrow_batches(path: str):
    try:
        source = pa.memory_map(path)
        try:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            batches = pa.ipc.open_stream(source)
        for batch in batches:
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({_first_line(exc)})") from None


def _delimited_batches(path: str, fmt: str, as_text: bool):
    """(batches, first line) of a csv/tsv/inter file, parsed block by block with the types read_log's
    whole-file reader would give (on a conversion error past the first block, every column is re-read as
    text, as read_log does)."""
    if fmt == "inter":
        return _delimited_stream(path, "\t", *_inter_columns(path), skip_rows=1), 2
    delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(path, ",")
    return _delimited_stream(path, delimiter, None, _text_types(path, delimiter, None) if as_text else None), 2


class RetypeAsText(Exception):
    """A streamed delimited log needs every column read as text (a column turned from numbers to text
    past the first block): start the stream again with ``as_text=True``."""


def _delimited_stream(path: str, delimiter: str, column_names=None, column_types=None, skip_rows: int = 0):
    import pyarrow.csv as pacsv

    header = column_names is None
    emitted = 0
    try:
        with pacsv.open_csv(path, **_csv_options(delimiter, column_names, column_types, skip_rows)) as reader:
            for batch in reader:
                emitted += 1
                yield batch
    except pa.ArrowInvalid as exc:
        if "conversion error" in str(exc) and column_types is None:
            if emitted:  # batches with the first block's types are out already: the reader must start again
                raise RetypeAsText(path) from None
            yield from _delimited_stream(path, delimiter, column_names, _text_types(path, delimiter, column_names),
                                         skip_rows)
            return
        raise _locate_bad_line(path, delimiter, header, column_names, None) or _arrow_error(path, exc) from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _arrow_error(path: str, exc: Exception) -> InputError:
    return InputError(f"{path}: {_first_line(exc)}")


def _read_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path), 0
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def _read_arrow(path: str):
    try:
        with pa.memory_map(path) as source:
            try:
                return pa.ipc.open_file(source).read_all(), 0
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).read_all(), 0
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({_first_line(exc)})") from None


def _sniff_delimiter(path: str, default: str) -> str:
    with open(path, "rb") as f:
        first = _first_text_line(path, f.read(1 << 16))
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else default


def _read_csv(path: str):
    return _read_delimited(path, _sniff_delimiter(path, ","))


def _read_tsv(path: str):
    return _read_delimited(path, "\t")


def _read_delimited(path: str, delimiter: str, column_names=None, column_types=None, data: Optional[bytes] = None,
                    skip_rows: int = 0):
    """pyarrow's CSV reader; on a parse error, a second plain scan finds the offending line. Without
    column_names the first line is the header; with them, skip_rows leading lines are skipped."""
    import pyarrow.csv as pacsv

    header = column_names is None
    source = io.BytesIO(data) if data is not None else path
    try:
        table = pacsv.read_csv(source, **_csv_options(delimiter, column_names, column_types, skip_rows))
    except pa.ArrowInvalid as exc:
        if "conversion error" in str(exc) and column_types is None:
            # a column inferred as numbers from the first block holds text later: read every column as text
            types = _text_types(path, delimiter, column_names, data)
            return _read_delimited(path, delimiter, column_names, types, data, skip_rows)
        raise _locate_bad_line(path, delimiter, header, column_names, data) or _arrow_error(path, exc) from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return table, (2 if header else 1 + skip_rows)


def _csv_options(delimiter: str, column_names, column_types, skip_rows: int) -> dict:
    """pyarrow.csv options shared by the whole-file and the streamed reader: CSV_BLOCK_BYTES blocks (types
    are inferred from the first), no value read as null. Without column_names the first line is the header."""
    import pyarrow.csv as pacsv

    return {"read_options": pacsv.ReadOptions(column_names=column_names, skip_rows=skip_rows,
                                              block_size=CSV_BLOCK_BYTES),
            "parse_options": pacsv.ParseOptions(delimiter=delimiter),
            "convert_options": pacsv.ConvertOptions(column_types=column_types or {}, strings_can_be_null=False,
                                                    quoted_strings_can_be_null=False)}


def _text_types(path: str, delimiter: str, column_names, data: Optional[bytes] = None) -> dict:
    """Every column as text, named by column_names or by the header."""
    names = _header_names(path, delimiter, data) if column_names is None else column_names
    return {n: pa.string() for n in names}


def _header_names(path: str, delimiter: str, data: Optional[bytes]):
    text = (data if data is not None else open(path, "rb").read(1 << 16)).decode("utf-8", "replace")
    return next(csv.reader(io.StringIO(text), delimiter=delimiter))


def _locate_bad_line(path, delimiter, header, column_names, data) -> Optional[InputError]:
    with (io.BytesIO(data) if data is not None else open(path, "rb")) as lines:
        return _first_bad_line(path, delimiter, header, column_names, lines)


def _first_bad_line(path, delimiter, header, column_names, lines) -> Optional[InputError]:
    expected = None if header else len(column_names)
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip(b"\n")
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            return InputError(f"{path}: line {lineno}: not UTF-8 text")
        if not text.strip():
            continue
        n = len(next(csv.reader([text], delimiter=delimiter)))
        if expected is None:
            expected = n
        elif n != expected:
            word = "too few" if n < expected else "too many"
            return InputError(f"{path}: line {lineno}: {word} fields (expected {expected}, got {n})")
    return None


def _inter_columns(path: str) -> tuple:
    """(names, types) of a RecBole atomic file: tab-separated, header fields ``name:type`` (token, float,
    token_seq, float_seq); float columns are numbers, the rest text."""
    with open(path, "rb") as f:
        first = _first_text_line(path, f.read(1 << 16))
    names, types = [], {}
    for field in first.rstrip("\r\n").split("\t"):
        name, _, kind = field.partition(":")
        names.append(name)
        types[name] = pa.float64() if kind == "float" else pa.string()
    return names, types


def _read_inter(path: str):
    return _read_delimited(path, "\t", *_inter_columns(path), skip_rows=1)


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True  # what bytes.split() splits on
MAX_INT_DIGITS = 18


def _int_tokens(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Optional[np.ndarray]:
    """The tokens as int64 when every one is a canonical integer (-?[1-9][0-9]{0,17} or 0, so nothing is
    lost), else None; vectorised over tokens, one pass per digit position."""
    if not len(starts):
        return np.zeros(0, dtype=np.int64)
    minus = data[starts] == ord("-")
    first = starts + minus
    digits = ends - first
    if digits.min() < 1 or digits.max() > MAX_INT_DIGITS:
        return None
    lead = data[first]
    if np.any((lead == ord("0")) & ((digits > 1) | minus)):
        return None
    value = np.zeros(len(starts), dtype=np.int64)
    for k in range(int(digits.max())):
        live = np.flatnonzero(digits > k)
        d = data[first[live] + k].astype(np.int64) - ord("0")
        if np.any((d < 0) | (d > 9)):
            return None
        value[live] = value[live] * 10 + d
    return np.where(minus, -value, value)


def _token_array(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Integers when every token is a canonical integer, else strings (no Python loop)."""
    ints = _int_tokens(data, starts, ends)
    return pa.array(ints) if ints is not None else _text_array(data, starts, ends)


def _text_array(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The tokens' bytes as an Arrow string array (one gather of the bytes, offsets from the lengths)."""
    lengths = ends - starts
    chars = data[_ranges(starts, lengths)]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    wide = offsets[-1] >= 2**31
    return pa.Array.from_buffers(pa.large_string() if wide else pa.string(), len(starts),
                                 [None, pa.py_buffer(offsets.astype(np.int64 if wide else np.int32)),
                                  pa.py_buffer(chars)])


def _read_lines(path: str):
    """One user per line: ``user item item ...`` (whitespace-separated). The C++ core scans the bytes in one
    pass (NumPy where it is not built): memory O(file size), no per-token Python."""
    data = np.fromfile(path, dtype=np.uint8)
    from .backends import cpp

    users, items, short, n_users = (_lines_core(data, cpp._core) if cpp.available() else _lines_numpy(data))
    bad_text = _first_non_utf8_line(data)
    if short and (bad_text is None or short <= bad_text):
        raise InputError(f"{path}: line {short}: too few fields (expected a user then at least one item)")
    if bad_text is not None:
        raise InputError(f"{path}: line {bad_text}: not UTF-8 text")
    if not n_users:
        raise InputError(f"{path}: the log is empty")
    return pa.table({"user_id": users, "item_id": items}), 0


def _lines_core(data: np.ndarray, core):
    """(users of the items, items, first line with one token or 0, users) by the C++ core: integer columns
    when every token is a canonical integer, else the tokens' bytes (users and items typed separately, as
    the NumPy route types them)."""
    t = core.lines_tokens(data, False)
    n_items, n_users = int(t["items"]), int(t["users"])
    if t["integers"]:
        return (pa.array(t["item_user_value"][:n_items]), pa.array(t["item_value"][:n_items]),
                int(t["first_short_line"]), n_users)
    if not t["text"]:
        t = core.lines_tokens(data, True)
    users = _typed(data, t["user_start"][:n_users], t["user_len"][:n_users]).take(pa.array(t["item_user"][:n_items]))
    items = _typed(data, t["item_start"][:n_items], t["item_len"][:n_items])
    return users, items, int(t["first_short_line"]), n_users


def _typed(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    return _token_array(data, starts, starts + lengths.astype(np.int64))


def _lines_numpy(data: np.ndarray):
    """(users of the items, items, first line with one token or 0, users) by NumPy over the bytes."""
    newlines = np.flatnonzero(data == 10)
    ws = _WHITESPACE[data]
    starts = np.flatnonzero(~ws & np.concatenate(([True], ws[:-1])))
    ends = np.flatnonzero(~ws & np.concatenate((ws[1:], [True]))) + 1
    line = np.searchsorted(newlines, starts)  # 0-based line of each token
    head = np.ones(len(starts), dtype=bool)
    head[1:] = line[1:] != line[:-1]
    firsts = np.flatnonzero(head)
    per_line = np.diff(np.append(firsts, len(starts)))
    short = int(line[firsts[per_line < 2][0]]) + 1 if np.any(per_line < 2) else 0
    items = ~head
    users = _token_array(data, starts[firsts], ends[firsts]).take(pa.array(np.repeat(np.arange(len(firsts)),
                                                                                    per_line - 1)))
    return users, _token_array(data, starts[items], ends[items]), short, len(firsts)


def _first_non_utf8_line(data: np.ndarray) -> Optional[int]:
    """The 1-based line of the file's first byte that is not UTF-8 text, or None."""
    try:
        data.tobytes().decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        return int(np.count_nonzero(data[:exc.start] == 10)) + 1


def _read_ml_dat(path: str):
    data = open(path, "rb").read().replace(b"::", b"\x1f")
    return _read_delimited(path, "\x1f", ["user_id", "item_id", "rating", "timestamp"], data=data)


def _check_nulls(log: Log) -> None:
    for name in log.table.column_names:
        col = log.table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{log.path}: {_where(log, row)}column '{name}': missing value")


def _where(log: Log, row: int) -> str:
    row += log.row_base
    return f"line {log.first_line + row}: " if log.first_line else f"row {row + 1}: "


# ---------------------------------------------------------------------------------------------- sequences
def _time_values(log: Log) -> np.ndarray:
    col = log.table.column(log.time_col)
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        arr = col.to_numpy().astype(np.float64 if pa.types.is_floating(t) else np.int64, copy=False)
        if pa.types.is_floating(t) and not np.isfinite(arr).all():
            row = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(f"{log.path}: {_where(log, row)}column '{log.time_col}': timestamp is not finite")
        return arr
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
        return pc.cast(col, pa.int64()).to_numpy() if not pa.types.is_date(t) else \
            pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()).to_numpy()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = col.to_pylist()
        out = np.empty(len(values), dtype=np.float64)
        for row, v in enumerate(values):
            try:
                out[row] = float(v)
            except ValueError:
                raise InputError(f"{log.path}: {_where(log, row)}column '{log.time_col}': "
                                 f"non-numeric timestamp '{v}'") from None
            if not np.isfinite(out[row]):
                raise InputError(f"{log.path}: {_where(log, row)}column '{log.time_col}': timestamp is not finite")
        return out
    raise InputError(f"{log.path}: column '{log.time_col}': timestamps must be numbers or dates, not {t}")


def _check_id_type(log: Log, name: str) -> pa.ChunkedArray:
    col = log.table.column(name)
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise InputError(f"{log.path}: column '{name}': IDs must be integers or strings, not {t}")
    return col


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def first_appearance_codes(users) -> tuple:
    """(codes int64, dictionary) with codes in order of first appearance, as Arrow's dictionary_encode gives.
    Integer ids whose rows come user after user (most logs) take one pass over the runs instead of a hash
    table: a run per user, checked by the runs' values being distinct."""
    flat = users.combine_chunks() if isinstance(users, pa.ChunkedArray) else users
    if pa.types.is_integer(flat.type) and flat.null_count == 0 and len(flat) > 1:
        u = flat.to_numpy(zero_copy_only=False)
        change = np.empty(len(u), dtype=bool)
        change[0] = True
        np.not_equal(u[1:], u[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        runs = u[starts]
        if len(np.unique(runs)) == len(runs):
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


ANCHORS = ("user", "prefix")


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
    users = _check_id_type(log, log.user_col)
    user_codes, user_dict = first_appearance_codes(users)
    n_users = len(user_dict)
    order = _user_time_order(user_codes, _time_values(log) if log.time_col is not None else None, n_users)
    lengths = np.bincount(user_codes, minlength=n_users).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    t_len = np.maximum(lengths - 2, 0) if split == "loo" else lengths
    users_kept = np.flatnonzero(t_len >= 2)
    s, tl = starts[users_kept], t_len[users_kept]
    per_user = tl - 1 if anchors == "prefix" else np.ones(len(users_kept), dtype=np.int64)
    owner = np.repeat(np.arange(len(users_kept)), per_user)
    t = _ranges(np.ones(len(users_kept), np.int64), per_user) if anchors == "prefix" else tl - 1
    target_pos = s[owner] + t
    c_end = target_pos if compare == "history" else target_pos + 1
    c_begin = np.maximum(s[owner], c_end - max_len)
    c_len = c_end - c_begin
    if order is None:  # each user's rows are consecutive: the first is where they start
        first = starts[users_kept]
    else:
        first = np.minimum.reduceat(order, starts)[users_kept] if len(order) else np.zeros(0, np.int64)
    rows = AnchorRows(user_codes, user_dict, _take(order, _ranges(c_begin, c_len)), c_len, _take(order, target_pos),
                      first[owner], users_kept[owner], t.astype(np.int64), int(n_users), len(users_kept))
    if anchors == "prefix":  # nested windows over each user's T (the prefix sweep's stream)
        rows.stream_rows = _take(order, _ranges(s, tl))
        shift = np.concatenate(([0], np.cumsum(tl)[:-1])) - s  # T's offset in stream_rows minus its offset in order
        rows.windows = np.stack((c_begin + shift[owner], c_end + shift[owner]), axis=1)
    return rows


def _user_time_order(user_codes: np.ndarray, times: Optional[np.ndarray], n_users: int) -> Optional[np.ndarray]:
    """Rows by user, then by time, ties in file order (a stable sort); None when the log is already in that
    order, as many are written (recognised in one pass, nothing sorted or allocated)."""
    from .backends import cpp

    if cpp.available():
        return cpp._core.user_time_order(user_codes, times, int(n_users))
    du = np.diff(user_codes)
    grouped = bool((du >= 0).all())
    if grouped and (times is None or bool(((du > 0) | (np.diff(times) >= 0)).all())):
        return None
    if times is None:
        return np.argsort(user_codes, kind="stable")
    return np.lexsort((times, user_codes))  # lexsort is stable: ties keep file order


def _take(order: Optional[np.ndarray], positions: np.ndarray) -> np.ndarray:
    """Table rows at ``positions`` of a row order (None: the identity)."""
    return positions if order is None else order[positions]


def build_sequences(log: Log, split: str = "loo", max_len: int = 50, compare: str = "history",
                    item_values: Optional[pa.Array] = None, anchors: str = "user") -> SequenceSet:
    """The anchors of a log (docs/input.md). Items are coded in the sorted order of ``item_values`` (a sorted
    dictionary covering the log, as a streamed build passes) or of the log's own items."""
    rows = anchor_rows(log, split, max_len, compare, anchors)
    items = _check_id_type(log, log.item_col)
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
        stream = Stream(item_codes[rows.stream_rows], rows.windows)
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
    users = _check_id_type(log, log.user_col)
    user_codes, user_dict = first_appearance_codes(users)
    order = _user_time_order(user_codes, _time_values(log) if log.time_col is not None else None,
                             len(user_dict))
    lengths = np.bincount(user_codes, minlength=len(user_dict)).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    t_len = np.maximum(lengths - 2, 0) if split == "loo" else lengths
    kept = np.flatnonzero(t_len >= 1)
    item_codes, item_values = encode_sorted(_check_id_type(log, log.item_col))
    if order is None and split == "none":  # every row, in table order
        codes = item_codes
    else:
        codes = item_codes[_take(order, _ranges(starts[kept], t_len[kept]))]
    return TrainingSequences(np.concatenate(([0], np.cumsum(t_len[kept]))).astype(np.int64), codes,
                             item_values, user_dict.take(pa.array(kept)))


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
