"""Delimited text logs: csv, tsv, RecBole atomic ``.inter`` (``name:type`` headers) and MovieLens ``ml-dat``
(``user::item::rating::timestamp``), whole or block by block."""
from __future__ import annotations

import csv
import io
from typing import Optional

import pyarrow as pa

from ..errors import InputError
from .base import arrow_error, first_text_line

CSV_BLOCK_BYTES = 1 << 24   # delimited text is parsed (and its types inferred) a block at a time


class RetypeAsText(Exception):
    """A streamed delimited log needs every column read as text (a column turned from numbers to text
    past the first block): start the stream again with ``as_text=True``."""


def read_csv(path: str):
    return _read_delimited(path, _sniff_delimiter(path, ","))


def read_tsv(path: str):
    return _read_delimited(path, "\t")


def read_inter(path: str):
    return _read_delimited(path, "\t", *_inter_columns(path), skip_rows=1)


def read_ml_dat(path: str):
    data = open(path, "rb").read().replace(b"::", b"\x1f")
    return _read_delimited(path, "\x1f", ["user_id", "item_id", "rating", "timestamp"], data=data)


def delimited_batches(path: str, fmt: str, as_text: bool):
    """(batches, first line) of a csv/tsv/inter file, parsed block by block with the types read_log's
    whole-file reader would give (on a conversion error past the first block, every column is re-read as
    text, as read_log does)."""
    if fmt == "inter":
        return _delimited_stream(path, "\t", *_inter_columns(path), skip_rows=1), 2
    delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(path, ",")
    return _delimited_stream(path, delimiter, None, _text_types(path, delimiter, None) if as_text else None), 2


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
        raise _locate_bad_line(path, delimiter, header, column_names, None) or arrow_error(path, exc) from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _sniff_delimiter(path: str, default: str) -> str:
    with open(path, "rb") as f:
        first = first_text_line(path, f.read(1 << 16))
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else default


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
        raise _locate_bad_line(path, delimiter, header, column_names, data) or arrow_error(path, exc) from None
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
        first = first_text_line(path, f.read(1 << 16))
    names, types = [], {}
    for field in first.rstrip("\r\n").split("\t"):
        name, _, kind = field.partition(":")
        names.append(name)
        types[name] = pa.float64() if kind == "float" else pa.string()
    return names, types
