"""One user per line: ``user item item ...`` (whitespace-separated), as SASRec/ICLRec ship their logs."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from .. import _native
from ..csr import ranges
from ..errors import InputError

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True  # what bytes.split() splits on
MAX_INT_DIGITS = 18


def read_lines(path: str):
    """One user per line: ``user item item ...`` (whitespace-separated). The C++ core scans the bytes in one
    pass (NumPy where it is not built): memory O(file size), no per-token Python."""
    data = np.fromfile(path, dtype=np.uint8)
    users, items, short, n_users = (scan_core(data, _native.core) if _native.available() else scan_numpy(data))
    bad_text = _first_non_utf8_line(data)
    if short and (bad_text is None or short <= bad_text):
        raise InputError(f"{path}: line {short}: too few fields (expected a user then at least one item)")
    if bad_text is not None:
        raise InputError(f"{path}: line {bad_text}: not UTF-8 text")
    if not n_users:
        raise InputError(f"{path}: the log is empty")
    return pa.table({"user_id": users, "item_id": items}), 0


def scan_core(data: np.ndarray, core):
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


def scan_numpy(data: np.ndarray):
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
    chars = data[ranges(starts, lengths)]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    wide = offsets[-1] >= 2**31
    return pa.Array.from_buffers(pa.large_string() if wide else pa.string(), len(starts),
                                 [None, pa.py_buffer(offsets.astype(np.int64 if wide else np.int32)),
                                  pa.py_buffer(chars)])


def _typed(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    return _token_array(data, starts, starts + lengths.astype(np.int64))


def _first_non_utf8_line(data: np.ndarray) -> Optional[int]:
    """The 1-based line of the file's first byte that is not UTF-8 text, or None."""
    try:
        data.tobytes().decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        return int(np.count_nonzero(data[:exc.start] == 10)) + 1
