"""CUDA backend: kernels compiled at run time by CuPy (NVRTC), one cached module, no CUDA needed to install.

Kernels (kernels/scores.cu) include the C++ core's metrics.hpp, so every pair is scored by the same
host+device functions as on the CPU. Selection is tiled: a block of anchor rows against its whole bucket is
scored into a [rows, n] float32 tile on the device (blocks sized to TILE_BYTES, never N×N), then
- top-k: each score and column packed into one uint64 key (score descending, seq_id ascending) and
  partitioned per row, so ties resolve exactly as on the CPU;
- thresholds, pair joins and global-alpha histograms: masks and bincounts over the tile's float32 bits.
"""
from __future__ import annotations

import os

import numpy as np

from ..metrics import Tile

name = "cuda"
TILE_BYTES = 1 << 29
HIST_BINS = 65536
_KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
_module = None
_device_tiles: dict = {}


def available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def include_dir() -> str:
    """Where metrics.hpp is: installed next to the kernels, or csrc/ of a source checkout."""
    if os.path.isfile(os.path.join(_KERNEL_DIR, "metrics.hpp")):
        return _KERNEL_DIR
    return os.path.normpath(os.path.join(_KERNEL_DIR, "..", "..", "..", "csrc"))


def kernel_source() -> str:
    with open(os.path.join(_KERNEL_DIR, "scores.cu")) as f:
        return f.read()


def _kernels():
    global _module
    if _module is None:
        import cupy

        _module = cupy.RawModule(code=kernel_source(), options=("-std=c++17", f"-I{include_dir()}"),
                                 name_expressions=None)
    return _module


def _on_device(tile: Tile) -> dict:
    import cupy

    key = id(tile)
    if key not in _device_tiles or _device_tiles[key][0] is not tile:
        arrays = {"indptr": tile.indptr, "indices": tile.indices}
        if tile.kind == "cosine":
            arrays.update(weights=tile.weights, norms=tile.norms)
        _device_tiles.clear()  # one bucket at a time
        _device_tiles[key] = (tile, {k: cupy.asarray(v) for k, v in arrays.items()})
    return _device_tiles[key][1]


def _scores(tile: Tile, rows: np.ndarray):
    """[len(rows), n] float32 tile of exact scores on the device."""
    import cupy

    d = _on_device(tile)
    n, r = tile.n, len(rows)
    out = cupy.zeros((r, n), dtype=cupy.float32)
    if r == 0 or n == 0:
        return out
    rows_d = cupy.asarray(rows, dtype=cupy.int64)
    threads = 256
    grid = ((n + threads - 1) // threads, r)
    mod = _kernels()
    if tile.kind == "set":
        mod.get_function("set_tile")(grid, (threads,), (d["indptr"], d["indices"], rows_d, np.int64(r),
                                                        np.int64(n), out))
    elif tile.kind == "cosine":
        mod.get_function("cosine_tile")(grid, (threads,), (d["indptr"], d["indices"], d["weights"], d["norms"],
                                                           rows_d, np.int64(r), np.int64(n), out))
    else:
        max_len = int(np.diff(tile.indptr).max())
        scratch = cupy.empty(r * n * (max_len + 1) if max_len > 64 else 1, dtype=cupy.int64)
        mod.get_function("edit_tile")(grid, (threads,), (d["indptr"], d["indices"], rows_d, np.int64(r),
                                                         np.int64(n), np.int64(max_len), scratch, out))
    return out


def _row_blocks(tile: Tile, rows: np.ndarray):
    per = max(1, TILE_BYTES // (max(tile.n, 1) * (4 + 8)))
    for lo in range(0, len(rows), per):
        yield lo, rows[lo:lo + per]


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    import cupy

    rows = np.asarray(rows, dtype=np.int64)
    k_row = np.clip(np.asarray(k_row, dtype=np.int64), 0, max(tile.n - 1, 0))
    counts, cols, scores = [], [], []
    for lo, block in _row_blocks(tile, rows):
        s = _scores(tile, block)
        s = cupy.where(s >= cupy.float32(min_score), s, cupy.float32(0))
        bits = s.view(cupy.uint32).astype(cupy.uint64)
        col = cupy.arange(tile.n, dtype=cupy.uint64)[None, :]
        keys = ((cupy.uint64(0xFFFFFFFF) - bits) << cupy.uint64(32)) | col  # smaller key = better
        k = int(k_row[lo:lo + len(block)].max()) if len(block) else 0
        if k == 0:
            counts.append(np.zeros(len(block), np.int64))
            continue
        best = cupy.sort(cupy.partition(keys, k - 1, axis=1)[:, :k] if k < tile.n else keys, axis=1)[:, :k]
        best_bits = (cupy.uint64(0xFFFFFFFF) - (best >> cupy.uint64(32))).astype(cupy.uint32)
        best_s = best_bits.view(cupy.float32)
        keep = (best_s > 0) & (cupy.arange(k)[None, :] < cupy.asarray(k_row[lo:lo + len(block)])[:, None])
        keep_h = cupy.asnumpy(keep)
        counts.append(keep_h.sum(axis=1).astype(np.int64))
        cols.append(cupy.asnumpy((best & cupy.uint64(0xFFFFFFFF)).astype(cupy.int32))[keep_h])
        scores.append(cupy.asnumpy(best_s)[keep_h])
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return cat(counts, np.int64), cat(cols, np.int32), cat(scores, np.float32)


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    import cupy

    out_r, out_c, out_s = [], [], []
    for _, block in _row_blocks(tile, np.asarray(rows, dtype=np.int64)):
        s = _scores(tile, block)
        upper = cupy.arange(tile.n)[None, :] > cupy.asarray(block)[:, None]
        r, c = cupy.nonzero(upper & (s > 0) & (s >= cupy.float32(min_score)))
        out_r.append(block[cupy.asnumpy(r)].astype(np.int32))
        out_c.append(cupy.asnumpy(c).astype(np.int32))
        out_s.append(cupy.asnumpy(s[r, c]))
    if not out_r:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_s)


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    import cupy

    hist = cupy.zeros(HIST_BINS, dtype=cupy.int64)
    for _, block in _row_blocks(tile, np.asarray(rows, dtype=np.int64)):
        s = _scores(tile, block)
        upper = cupy.arange(tile.n)[None, :] > cupy.asarray(block)[:, None]
        bits = s[upper & (s > 0)].view(cupy.uint32)
        if prefix < 0:
            hist += cupy.bincount((bits >> 16).astype(cupy.int64), minlength=HIST_BINS)
        else:
            sel = bits[(bits >> 16) == prefix]
            hist += cupy.bincount((sel & 0xFFFF).astype(cupy.int64), minlength=HIST_BINS)
    return cupy.asnumpy(hist)


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.zeros(len(cols), dtype=np.float32)
    row_ids = np.asarray(row_ids, dtype=np.int64)
    for lo, block in _row_blocks(tile, row_ids):
        s = _scores(tile, block)
        owner = np.repeat(np.arange(len(block)), np.diff(ptr[lo:lo + len(block) + 1]))
        span = slice(ptr[lo], ptr[lo + len(block)])
        import cupy

        out[span] = cupy.asnumpy(s[cupy.asarray(owner), cupy.asarray(cols[span].astype(np.int64))])
    return out


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    import cupy

    from ..approx.minhash import perm_seeds

    n = len(indptr) - 1
    sig = cupy.empty((n, num_perm), dtype=cupy.uint32)
    if n:
        threads = 128
        _kernels().get_function("minhash_sig")(
            ((num_perm + threads - 1) // threads, n), (threads,),
            (cupy.asarray(indptr, dtype=cupy.int64), cupy.asarray(codes, dtype=cupy.int64),
             cupy.asarray(perm_seeds(num_perm, seed)), np.int64(n), np.int64(num_perm), sig))
    return cupy.asnumpy(sig)


def set_num_threads(n: int) -> None:
    """The GPU backend has no CPU thread pool to size."""


def band_candidates(run_of, run_ptr, run_members, anchors, max_candidates):
    """LSH collision counting is host bookkeeping (runs of row ids, no arithmetic): the C++ core does it,
    or Numba where the core is not built."""
    from . import cpp, numba_

    return (cpp if cpp.available() else numba_).band_candidates(run_of, run_ptr, run_members, anchors,
                                                                max_candidates)
