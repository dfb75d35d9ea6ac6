"""Columnar logs: Parquet and Arrow (IPC file or stream, Feather v2), whole or batch by batch."""
from __future__ import annotations

import pyarrow as pa

from ..errors import InputError
from .base import first_error_line


def read_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path), 0
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({first_error_line(exc)})") from None


def parquet_batches(path: str, batch_rows: int):
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=batch_rows):
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({first_error_line(exc)})") from None


def read_arrow(path: str):
    try:
        with pa.memory_map(path) as source:
            try:
                return pa.ipc.open_file(source).read_all(), 0
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).read_all(), 0
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({first_error_line(exc)})") from None


def arrow_batches(path: str):
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
        raise InputError(f"{path}: not a readable Arrow file ({first_error_line(exc)})") from None
