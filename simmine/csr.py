"""The one representation: a CSR (``indptr`` int64 [n+1], ``codes`` int32) of item codes per row.

Helpers every layer shares; nothing above the native module is imported.
"""
from __future__ import annotations

import numpy as np

from ._native import code_order, document_frequency, unique_per_row

__all__ = ["ranges", "row_pointers", "postings", "unique_per_row", "document_frequency", "best_first", "first_k",
           "best_k_per_row"]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def row_pointers(rows: np.ndarray, n: int) -> np.ndarray:
    """``indptr`` of a CSR whose entries belong to ``rows`` (ascending, each in [0, n))."""
    return np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n)))).astype(np.int64)


def postings(indptr: np.ndarray, codes: np.ndarray, vocab: int):
    """Inverted index of a CSR: (post_ptr, post_rows ascending per code, entry order)."""
    n = len(indptr) - 1
    row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    order = code_order(codes, vocab)
    post_ptr = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=vocab)))).astype(np.int64)
    return post_ptr, row_of[order], order


def _descending_bits(scores: np.ndarray) -> np.ndarray:
    """uint64 keys that sort float32 scores descending (−0.0 ties with 0.0)."""
    plain = (np.asarray(scores, dtype=np.float32) + np.float32(0)).view(np.uint32).astype(np.uint64)
    ascending = np.where(plain >> np.uint64(31) == 1, np.uint64(0xFFFFFFFF) - plain, plain | np.uint64(0x80000000))
    return np.uint64(0xFFFFFFFF) - ascending


def best_first(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The order of scored candidates the project uses everywhere (docs/selection.md): rows ascending, then
    score descending, then column ascending. float32 scores sort by their bits, packed with the column into
    one key; candidates already in (row, column) order need only a stable sort of row and score."""
    rows, cols, scores = np.asarray(rows), np.asarray(cols), np.asarray(scores)
    if scores.dtype != np.float32 or not len(scores) or int(cols.min()) < 0 or int(cols.max()) >= 2 ** 32:
        return np.lexsort((cols, -scores.astype(np.float64), rows))
    desc = _descending_bits(scores)
    if int(rows.max()) < 2 ** 31 and int(rows.min()) >= 0 and \
            bool(np.all((rows[1:] > rows[:-1]) | ((rows[1:] == rows[:-1]) & (cols[1:] > cols[:-1])))):
        return np.argsort((rows.astype(np.uint64) << np.uint64(32)) | desc, kind="stable")
    return np.lexsort(((desc << np.uint64(32)) | cols.astype(np.uint64), rows))


def first_k(sorted_rows: np.ndarray, k, n: int):
    """After ``best_first``: a mask of each row's first k entries (``k`` one number or one per row) and the
    kept count of every row 0..n-1."""
    counts = np.bincount(sorted_rows, minlength=n).astype(np.int64)
    rank = np.arange(len(sorted_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    limit = k[sorted_rows] if isinstance(k, np.ndarray) else k
    return rank < limit, np.minimum(counts, k)


def best_k_per_row(cols: np.ndarray, scores: np.ndarray, k: int):
    """Each row of [R, C] candidates (cols, scores) cut to its best k, best first: [R, min(k, C)] arrays."""
    r = np.repeat(np.arange(len(cols)), cols.shape[1])
    order = best_first(r, cols.reshape(-1), scores.reshape(-1)).reshape(cols.shape)[:, :k]
    return cols.reshape(-1)[order], scores.reshape(-1)[order]
