"""The C++ core (simmine._core): OpenMP over anchor rows; inverted index + popular-item bitmaps for sets,
prefix filtering for set threshold joins, inverted index for tfidf, bounded bit-parallel Levenshtein."""
from __future__ import annotations

import numpy as np

from .. import _native
from ..tiles import Tile

name = "cpp"
PREFIX_MIN_THRESHOLD = 0.4  # below it, prefix candidates are many and plain accumulation is faster
SWEEP_POOL_PER_K = 2        # a sweep refill puts at least max(2k, 32) columns in its pool (fastest on ML-1M)
SWEEP_POOL_MIN = 32
COSINE_POOL_PER_K = 16      # the TF-IDF sweep's pool: at least max(16k, 256) (MovieLens-100k: 2.9 s against
COSINE_POOL_MIN = 256       # 5.0 s at 2k/32, whose many refills each scan every column)
SWEEP_MAX_SET = 65535       # the sweep counts in 16 bits; larger sets take the inverted index
stats = {"sweep_refills": 0, "sweep_rows": 0}
routes = {}                 # rows scored per route, read into the manifest (docs/output.md)
ROUTE_OF_KIND = {"set": "inverted index + bitmaps", "prefix": "prefix filter", "cosine": "inverted index, bounded",
                 "edit": "bit-parallel alignment"}


def _count(route: str, rows) -> None:
    routes[route] = routes.get(route, 0) + len(rows)


def available() -> bool:
    return _native.available()


def set_num_threads(n: int) -> None:
    _native.core.set_num_threads(int(n))


def _scorer(tile: Tile, min_score: float) -> Tile:
    """The tile a scorer reads: a set tile's prefix-filter index for a high Jaccard threshold, else the tile."""
    if tile.kind == "set" and min_score >= PREFIX_MIN_THRESHOLD:
        return tile.prefix(min_score)
    return tile


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    min_score = float(np.float32(min_score))
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    k_row = np.ascontiguousarray(k_row, dtype=np.int64)
    sweep = getattr(tile, "sweep", None)  # set and cosine tiles of prefix anchors
    if sweep is not None and tile.n and (tile.kind == "cosine" or np.diff(tile.indptr).max() < SWEEP_MAX_SET):
        # prefix anchors: the sweep over nested windows (csrc/sweep.hpp; TF-IDF's in fixed point,
        # csrc/sweep_cosine.hpp, exact on its candidates)
        if tile.kind == "set":
            counts, cols, scores, refills = _native.core.sweep_select(tile, sweep, _sizes(tile), _pool(k_row),
                                                                      rows, k_row, min_score)
        else:
            pool = _pool(k_row, COSINE_POOL_PER_K, COSINE_POOL_MIN)
            counts, cols, scores, refills = _native.core.cosine_sweep_select(tile, sweep, pool, rows, k_row,
                                                                             min_score)
        stats["sweep_refills"] += int(refills)
        stats["sweep_rows"] += len(rows)
        _count("prefix sweep", rows)
        return counts, cols, scores
    scorer = _scorer(tile, min_score)
    _count(ROUTE_OF_KIND[scorer.kind], rows)
    return _native.core.select(scorer, rows, k_row, min_score)


def offers(tile: Tile, rows: np.ndarray, bar: np.ndarray, min_score: float):
    """Per row i: every j (either side) with s > 0, s >= min_score and s >= bar[j] -> (rows, cols, scores)."""
    _count(ROUTE_OF_KIND[tile.kind], rows)
    return _native.core.offers(tile, np.ascontiguousarray(rows, dtype=np.int64),
                               np.ascontiguousarray(bar, dtype=np.float32), float(np.float32(min_score)))


def _pool(k_row: np.ndarray, per_k: int = SWEEP_POOL_PER_K, least: int = SWEEP_POOL_MIN) -> int:
    """Columns a sweep refill puts in its pool, at least."""
    return int(max(per_k * (int(k_row.max()) if len(k_row) else 0), least))


def _sizes(tile: Tile) -> np.ndarray:
    return np.diff(tile.indptr).astype(np.uint16)


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    min_score = float(np.float32(min_score))
    scorer = _scorer(tile, min_score)
    _count(ROUTE_OF_KIND[scorer.kind], rows)
    return _native.core.pairs(scorer, np.ascontiguousarray(rows, dtype=np.int64), min_score)


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return _native.core.score_pairs(tile, np.ascontiguousarray(row_ids, dtype=np.int64),
                             np.ascontiguousarray(ptr, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int32))


def assemble_pairs(n: int, i, j, s, k_per_anchor, min_score: float):
    return _native.core.assemble_pairs(int(n), np.ascontiguousarray(i, dtype=np.int64),
                                       np.ascontiguousarray(j, dtype=np.int64),
                                np.ascontiguousarray(s, dtype=np.float32),
                                np.ascontiguousarray(k_per_anchor, dtype=np.int64), float(np.float32(min_score)))


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    return _native.core.minhash(np.ascontiguousarray(indptr, dtype=np.int64),
                                np.ascontiguousarray(codes, dtype=np.int64),
                         int(num_perm), int(seed))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    return _native.core.histogram(tile, np.ascontiguousarray(rows, dtype=np.int64), int(prefix))


def band_candidates(run_of: np.ndarray, run_ptr: np.ndarray, run_members: np.ndarray, anchors: np.ndarray,
                    max_candidates: np.ndarray, excluded=None):
    lo, hi = excluded if excluded is not None else (None, None)
    return _native.core.band_candidates(np.ascontiguousarray(run_of, dtype=np.int32),
                                 np.ascontiguousarray(run_ptr, dtype=np.int64),
                                 np.ascontiguousarray(run_members, dtype=np.int32), int(run_of.shape[0]),
                                 np.ascontiguousarray(anchors, dtype=np.int64),
                                 np.ascontiguousarray(max_candidates, dtype=np.int64), lo, hi)


def item_topk(user_indptr: np.ndarray, codes: np.ndarray, n_items: int, k: int, cosine: bool, user_weight=None):
    """Each item's best k other items by Jaccard or cosine of its user set (cosine: shared users weighted by
    ``user_weight`` when given), counted through the users' item lists (csrc/items.hpp): (offsets, cols,
    scores) as select returns them for items as anchors."""
    sets = _native.core.user_item_sets(np.ascontiguousarray(user_indptr, dtype=np.int64),
                                np.ascontiguousarray(codes, dtype=np.int32), int(n_items))
    user_ptr, user_items, item_ptr, item_users = sets
    weight = None if user_weight is None else np.ascontiguousarray(user_weight, dtype=np.float64)
    return _native.core.item_topk(item_ptr, item_users, user_ptr, user_items, int(k), bool(cosine), weight)
