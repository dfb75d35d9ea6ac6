"""Interaction logs in every supported format → a ``Log`` (the columns simmine needs, in file order).

Formats (docs/input.md): parquet, csv, tsv, arrow (IPC file or stream, Feather v2), inter (RecBole atomic
files), lines (``user item item ...`` per line) and ml-dat (MovieLens ``::``-separated). ``auto`` decides by
magic bytes, extension, then content. ``READERS`` is the one registry: a format is one entry there.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyarrow as pa

from ..errors import InputError
from . import columnar, delimited, lines
from .base import (FORMATS, Log, check_file, check_id_type, check_nulls, detect_format, pick_columns, time_values,
                   where)
from .delimited import RetypeAsText

__all__ = ["FORMATS", "READERS", "Log", "RetypeAsText", "check_id_type", "detect_format", "read_log", "stream_log",
           "time_values", "where"]

# format -> reader of the whole file: (table, file line of row 0, or 0 when rows are not lines)
READERS = {
    "parquet": columnar.read_parquet,
    "arrow": columnar.read_arrow,
    "csv": delimited.read_csv,
    "tsv": delimited.read_tsv,
    "inter": delimited.read_inter,
    "lines": lines.read_lines,
    "ml-dat": delimited.read_ml_dat,
}


def read_log(path: str, fmt: str = "auto", user_col: str = "user_id", item_col: str = "item_id",
             time_col: Optional[str] = None, bucket_cols: Sequence[str] = ()) -> Log:
    """Reads the columns simmine needs. ``time_col=None`` takes ``timestamp`` when present, else file order."""
    fmt = check_file(path, fmt)
    table, first_line = READERS[fmt](path)
    keep, time_name = pick_columns(path, table.column_names, user_col, item_col, time_col, bucket_cols)
    table = table.select(keep)
    if table.num_rows == 0:
        raise InputError(f"{path}: the log has no interactions")
    log = Log(path, fmt, table, user_col, item_col, time_name, tuple(bucket_cols), first_line)
    check_nulls(log)
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
    fmt = check_file(path, fmt)
    if fmt == "parquet":
        batches, first_line = columnar.parquet_batches(path, batch_rows), 0
    elif fmt == "arrow":
        batches, first_line = columnar.arrow_batches(path), 0
    elif fmt in ("csv", "tsv", "inter"):
        batches, first_line = delimited.delimited_batches(path, fmt, as_text)
    else:
        table, first_line = READERS[fmt](path)
        batches = table.to_batches(max_chunksize=batch_rows)
    row_base, keep, time_name = 0, None, None
    for batch in batches:
        if keep is None:
            keep, time_name = pick_columns(path, batch.schema.names, user_col, item_col, time_col, bucket_cols)
        table = pa.Table.from_batches([batch]).select(keep)
        for lo in range(0, table.num_rows, batch_rows):
            log = Log(path, fmt, table.slice(lo, batch_rows), user_col, item_col, time_name, tuple(bucket_cols),
                      first_line, row_base)
            check_nulls(log)
            yield log
            row_base += log.table.num_rows
    if row_base == 0:
        raise InputError(f"{path}: the log has no interactions")
