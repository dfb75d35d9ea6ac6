"""Given vectors (``--embeddings``): read memory-mapped from .npy, checked finite."""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError


def read_vectors(path: str, rows: str) -> np.ndarray:
    """An ``--embeddings`` file, memory-mapped: a .npy 2-D array of numbers [rows, dims]."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: --embeddings file not found")
    try:
        v = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a NumPy .npy array ({str(exc).splitlines()[0]})") from None
    if v.ndim != 2 or v.shape[1] < 1:
        raise InputError(f"{path}: expected a 2-D array [{rows}, dims], got shape {tuple(v.shape)}")
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise InputError(f"{path}: expected numbers, got dtype {v.dtype}")
    return v


def finite_vectors(path: str, v: np.ndarray, first_row: int = 0, keep_float32: bool = False) -> np.ndarray:
    """``v`` as float64 (float32 kept as it is, memory-mapped, with ``keep_float32``: every float32 is a
    float64, so exact float64 arithmetic on it is unchanged), or the one-line error naming the file's first row
    (``first_row`` + index) holding a NaN or an infinity."""
    v = np.asarray(v) if keep_float32 and v.dtype == np.float32 else np.array(v, dtype=np.float64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: row {int(np.argmax(bad)) + first_row} has a NaN or infinite value")
    return v


def load_embeddings(path: str, n: int) -> np.ndarray:
    """The ``--embeddings`` file: a .npy of shape [N, d], row i for anchor seq_id i, finite numbers."""
    v = read_vectors(path, "anchors")
    if v.shape[0] != n:
        raise InputError(f"{path}: {v.shape[0]} rows, but the log gives {n} anchors (one row per seq_id, "
                         f"in order of first appearance of the user)")
    return finite_vectors(path, v)
