"""The C++ core (simmine._core): OpenMP over anchor rows, inverted-index or bit-parallel scorers."""
from __future__ import annotations

import numpy as np

from ..metrics import Tile

name = "cpp"

try:
    from .. import _core
except ImportError:  # not built on this machine
    _core = None


def available() -> bool:
    return _core is not None


def set_num_threads(n: int) -> None:
    _core.set_num_threads(int(n))


def _args(tile: Tile):
    if tile.kind == "set":
        return "sets", (tile.indptr, tile.indices, tile.post_ptr, tile.post_rows)
    if tile.kind == "cosine":
        return "cosine", (tile.indptr, tile.indices, tile.weights, tile.norms, tile.post_ptr, tile.post_rows,
                          tile.post_weights)
    return "edit", (tile.indptr, tile.indices, int(max(tile.vocab, 1)))


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    kind, args = _args(tile)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    k_row = np.ascontiguousarray(k_row, dtype=np.int64)
    return getattr(_core, f"select_{kind}")(*args, rows, k_row, float(np.float32(min_score)))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    kind, args = _args(tile)
    return getattr(_core, f"histogram_{kind}")(*args, np.ascontiguousarray(rows, dtype=np.int64), int(prefix))
