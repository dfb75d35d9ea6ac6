"""The one representation: a CSR (``indptr`` int64 [n+1], ``codes`` int32) of item codes per row.

Helpers every layer shares; nothing above the native module is imported.
"""
from __future__ import annotations

import numpy as np

from ._native import code_order, document_frequency, unique_per_row

__all__ = ["ranges", "row_pointers", "postings", "unique_per_row", "document_frequency"]


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

