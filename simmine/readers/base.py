"""What every log reader shares: the loaded ``Log``, format sniffing, file checks, column picking and the
one-line errors that name the file, the line or row, and the column."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError

FORMATS = ("auto", "parquet", "csv", "tsv", "arrow", "inter", "lines", "ml-dat")

EXTENSIONS = {
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


def detect_format(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:6] == b"ARROW1" or head[:4] == b"\xff\xff\xff\xff":
        return "arrow"
    ext = os.path.splitext(path)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    first = first_text_line(path, head)
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


def first_text_line(path: str, head: bytes) -> str:
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


def check_file(path: str, fmt: str) -> str:
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


def pick_columns(path: str, names, user_col: str, item_col: str, time_col: Optional[str], bucket_cols) -> tuple:
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


def first_error_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def arrow_error(path: str, exc: Exception) -> InputError:
    return InputError(f"{path}: {first_error_line(exc)}")


def check_nulls(log: Log) -> None:
    for name in log.table.column_names:
        col = log.table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{log.path}: {where(log, row)}column '{name}': missing value")


def where(log: Log, row: int) -> str:
    row += log.row_base
    return f"line {log.first_line + row}: " if log.first_line else f"row {row + 1}: "


def time_values(log: Log) -> np.ndarray:
    col = log.table.column(log.time_col)
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        arr = col.to_numpy().astype(np.float64 if pa.types.is_floating(t) else np.int64, copy=False)
        if pa.types.is_floating(t) and not np.isfinite(arr).all():
            row = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(f"{log.path}: {where(log, row)}column '{log.time_col}': timestamp is not finite")
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
                raise InputError(f"{log.path}: {where(log, row)}column '{log.time_col}': "
                                 f"non-numeric timestamp '{v}'") from None
            if not np.isfinite(out[row]):
                raise InputError(f"{log.path}: {where(log, row)}column '{log.time_col}': timestamp is not finite")
        return out
    raise InputError(f"{log.path}: column '{log.time_col}': timestamps must be numbers or dates, not {t}")


def check_id_type(log: Log, name: str) -> pa.ChunkedArray:
    col = log.table.column(name)
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise InputError(f"{log.path}: column '{name}': IDs must be integers or strings, not {t}")
    return col
