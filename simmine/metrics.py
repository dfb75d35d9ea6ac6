"""Metric registry and the per-metric features every backend scores (docs/metrics.md).

One representation crosses every boundary: a CSR over anchors. ``jaccard`` and ``ngram`` become sets of
unique ascending codes, ``tfidf`` weighted sets, ``levenshtein`` the item sequences themselves. A ``Tile``
is the part of the features one bucket needs, with codes remapped to a compact local range (order kept,
so sums run in the same order everywhere) and the inverted index (postings) of those codes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .csr import postings, ranges, unique_per_row
from .errors import InputError
from .anchors import SequenceSet, Stream
from .tiles import TILE_KINDS, DenseTile, Sweep, Tile, exclusion_runs


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str          # "set" | "cosine" | "edit": which scorer computes it
    formula: str
    aliases: tuple = ()


METRICS = {
    m.name: m
    for m in (
        Metric("jaccard", "set", "|A∩B| / |A∪B| over the sets of unique items", ("jac",)),
        Metric("tfidf", "cosine", "cosine of tf·ln(N/df) vectors", ("tf-idf", "cosine")),
        Metric("ngram", "set", "Jaccard over the sets of unique contiguous n-grams", ("n-gram", "ngrams")),
        Metric("levenshtein", "edit", "1 − edit distance / max(|A|, |B|)", ("edit", "lev")),
        Metric("embedding", "dense", "max(0, cosine) of given per-anchor vectors (--embeddings)", ("emb",)),
    )
}
_ALIASES = {alias: m.name for m in METRICS.values() for alias in (m.name,) + m.aliases}


def resolve_metric(name: str) -> Metric:
    """The metric called ``name`` or one of its aliases; InputError otherwise."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise InputError(f"unknown metric '{name}' (choose from {', '.join(METRICS)})")
    return METRICS[_ALIASES[key]]


@dataclass
class Features:
    """CSR over all anchors of what the metric compares."""

    kind: str
    indptr: np.ndarray                 # int64 [N+1]
    indices: np.ndarray                # int32 codes (ascending unique per row for set/cosine)
    weights: Optional[np.ndarray] = None   # float64 aligned with indices (cosine)
    norms: Optional[np.ndarray] = None     # float64 per row (cosine, dense)
    vectors: Optional[np.ndarray] = None   # float64 [N, d] (dense)
    owners: Optional[np.ndarray] = None    # int64 user per anchor when anchors of one user never pair
    stream: Optional[object] = None        # prefix anchors' nested windows (anchors.Stream): set and cosine
    families: Optional[np.ndarray] = None  # int64 user per anchor, with the stream
    idf: Optional[np.ndarray] = None       # float64 per code (cosine): ln(N / df), 0 where unseen
    _last_tile: tuple = field(default=(None, None), repr=False)

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def tile(self, members: np.ndarray) -> Tile:
        """The features of anchors ``members`` (ascending seq_ids) with local codes and postings.
        The last tile is kept, so the output-size estimate and the mining of one bucket share it."""
        members = np.asarray(members, dtype=np.int64)
        key = hashlib.blake2b(members.tobytes(), digest_size=16).digest()
        if self._last_tile[0] != key:
            self._last_tile = (key, self._make_tile(members))
        return self._last_tile[1]

    def _make_tile(self, members: np.ndarray) -> Tile:
        tile = self._tile_features(members)
        if self.owners is not None:
            tile.ex_lo, tile.ex_hi = exclusion_runs(self.owners[members])
        return tile

    def _tile_features(self, members: np.ndarray) -> Tile:
        if self.kind == "dense":
            return DenseTile(np.zeros(len(members) + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), 0,
                             norms=self.norms[members], vectors=np.ascontiguousarray(self.vectors[members]))

        lengths = self.indptr[members + 1] - self.indptr[members]
        pos = ranges(self.indptr[members], lengths)
        codes = self.indices[pos]
        present = np.zeros(int(self.indices.max()) + 2 if len(self.indices) else 1, dtype=bool)
        present[codes] = True
        remap = np.cumsum(present, dtype=np.int64) - 1  # order-keeping compaction of the codes in use
        tile = TILE_KINDS[self.kind](np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
                                     remap[codes].astype(np.int32), int(present.sum()))
        if self.kind == "edit":  # multisets of the sequences, for overlap bounds
            tile.ms_ptr, tile.ms_codes, counts = unique_per_row(tile.indptr, tile.indices)
            tile.ms_counts = counts.astype(np.int32)
            tile.post_ptr, tile.post_rows, order = postings(tile.ms_ptr, tile.ms_codes, tile.vocab)
            tile.post_counts = tile.ms_counts[order]
        elif self.kind == "cosine":
            tile.weights, tile.norms = self.weights[pos], self.norms[members]
            tile.post_ptr, tile.post_rows, order = postings(tile.indptr, tile.indices, tile.vocab)
            tile.post_weights = np.ascontiguousarray(tile.weights[order])
            tile.add_heavy_bounds()
            if self.stream is not None:
                tile.code_idf = np.ascontiguousarray(self.idf[np.flatnonzero(present)])
                tile.sweep = sweep_index(self.stream, self.families, members, present, remap, occurrences=True)
        else:
            tile.post_ptr, tile.post_rows, _ = postings(tile.indptr, tile.indices, tile.vocab)
            tile.add_dense_bitmaps()
            if self.stream is not None:
                tile.sweep = sweep_index(self.stream, self.families, members, present, remap)
        return tile


def sweep_index(stream, families: np.ndarray, members: np.ndarray, present: np.ndarray, remap: np.ndarray,
                occurrences: bool = False) -> Sweep:
    """What the prefix sweeps (csrc/sweep.hpp, csrc/sweep_cosine.hpp) need of a tile whose rows are nested
    windows: the tile's part of the users' streams (local codes; -1 where no row's window reaches or the code
    is not in the tile), each row's window in it, its family (user), and per code the row ranges holding one
    of its occurrences as their latest: occurrence p counts for rows whose window [ws, we) contains p and no
    later occurrence (ws <= p < we <= next(p)). With ``occurrences`` (term counts, TF-IDF) every occurrence
    counts for every row whose window contains it."""
    ws, we = stream.windows[members, 0], stream.windows[members, 1]
    fam = families[members]
    n = len(members)
    first = np.ones(n, dtype=bool)
    first[1:] = fam[1:] != fam[:-1]
    run = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n) - 1
    span_lo, span_len = ws[starts], np.maximum(we[ends] - ws[starts], 0)
    pos = ranges(span_lo, span_len)
    pos_run = np.repeat(np.arange(len(starts)), span_len)
    codes = stream.codes[pos].astype(np.int64)
    big = int(len(stream.codes)) + 2
    nxt = np.full(len(pos), big - 1, dtype=np.int64)  # next occurrence of the code in the run, or past every window
    if not occurrences:
        order = np.lexsort((pos, codes, pos_run))
        same = (pos_run[order[1:]] == pos_run[order[:-1]]) & (codes[order[1:]] == codes[order[:-1]])
        nxt[order[:-1][same]] = pos[order[1:][same]]
    key_we, key_ws, key_p = run * big + we, run * big + ws, pos_run * big + pos
    lo = np.searchsorted(key_we, key_p, side="right")
    hi = np.minimum(np.searchsorted(key_we, pos_run * big + nxt, side="right"),
                    np.searchsorted(key_ws, key_p, side="right"))
    keep = lo < hi
    known = np.minimum(codes, len(present) - 1)  # a code past every row's set (a last target) is in no window
    local = np.where((codes < len(present)) & present[known], remap[known], -1)
    by_code = np.argsort(local[keep], kind="stable")
    vocab = int(present.sum())
    span_at = np.concatenate(([0], np.cumsum(span_len)[:-1]))
    shift = (span_at - span_lo)[run]
    return Sweep(stream=local.astype(np.int32), ws=(ws + shift).astype(np.int64), we=(we + shift).astype(np.int64),
                 family=run.astype(np.int64),
                 code_ptr=np.concatenate(([0], np.cumsum(np.bincount(local[keep], minlength=vocab)))).astype(np.int64),
                 range_lo=lo[keep][by_code].astype(np.int32), range_hi=hi[keep][by_code].astype(np.int32),
                 cover=np.bincount(local[keep], weights=(hi - lo)[keep], minlength=vocab).astype(np.int64))


def ngram_codes(indptr: np.ndarray, items: np.ndarray, n: int):
    """(indptr, codes) of the contiguous n-grams of every row, each n-gram coded by its sorted rank."""
    lengths = np.diff(indptr)
    g_len = np.maximum(lengths - n + 1, 0)
    starts = ranges(indptr[:-1], g_len)
    g_indptr = np.concatenate(([0], np.cumsum(g_len))).astype(np.int64)
    if len(starts) == 0:
        return g_indptr, np.zeros(0, dtype=np.int32)
    grams = np.stack([items[starts + t] for t in range(n)], axis=1)
    _, codes = np.unique(grams, axis=0, return_inverse=True)
    return g_indptr, codes.reshape(-1).astype(np.int32)


def stream_ngram_features(seqs: SequenceSet, n: int) -> Features:
    """``ngram`` features of prefix anchors without rebuilding each window's n-grams: the n-grams of the users'
    training sequences are coded once (the gram at stream position p is items p..p+n-1); anchor i's set is
    the codes of the grams that start in its window [ws, we − n + 1), itself a window of that gram stream, so
    the prefix sweep slides over it as over items. A gram that would cross into the next user sits past
    every window and is never read."""
    items, windows = seqs.stream.codes, seqs.stream.windows
    m = len(items)
    grams = np.zeros(m, dtype=np.int32)
    if m >= n:
        starts = np.arange(m - n + 1)
        parts = np.stack([items[starts + t] for t in range(n)], axis=1)
        grams[:m - n + 1] = np.unique(parts, axis=0, return_inverse=True)[1].reshape(-1)
    ws = windows[:, 0]
    gram_end = np.maximum(windows[:, 1] - n + 1, ws)
    g_len = gram_end - ws
    g_indptr = np.concatenate(([0], np.cumsum(g_len))).astype(np.int64)
    indptr, codes, _ = unique_per_row(g_indptr, grams[ranges(ws, g_len)])
    windows = np.stack((ws, gram_end), axis=1)
    return Features("set", indptr, codes, stream=Stream(grams, windows, seqs.stream.user_ptr), families=seqs.owners)


def prepare_features(seqs: SequenceSet, metric: Metric, ngram_n: int = 2, df: Optional[np.ndarray] = None,
                     n_total: Optional[int] = None) -> Features:
    """Features of every anchor for ``metric`` (docs/metrics.md). TF-IDF takes N and df from the anchors given, or
    from ``n_total`` and ``df`` (per item code) when they are part of a larger build."""
    if metric.name == "levenshtein":
        return Features("edit", seqs.indptr, seqs.items.astype(np.int32))
    if metric.name == "ngram":
        if ngram_n < 1:
            raise InputError(f"--ngram-n must be at least 1, got {ngram_n}")
        if seqs.stream is not None:
            return stream_ngram_features(seqs, ngram_n)
        g_indptr, g_codes = ngram_codes(seqs.indptr, seqs.items, ngram_n)
        indptr, codes, _ = unique_per_row(g_indptr, g_codes)
        return Features("set", indptr, codes)
    indptr, codes, counts = unique_per_row(seqs.indptr, seqs.items)
    if metric.name == "jaccard":
        return Features("set", indptr, codes, stream=seqs.stream, families=seqs.owners if seqs.stream else None)
    # tfidf: w(v,u) = tf(v,u) · ln(N / df(v)), N = all anchors of the build, df over their histories
    n = seqs.n
    if df is None:
        df = np.bincount(codes, minlength=int(codes.max()) + 1 if len(codes) else 0)
    n_idf = n if n_total is None else n_total
    idf = np.zeros(len(df), dtype=np.float64)
    seen = df > 0
    idf[seen] = np.log(n_idf / df[seen].astype(np.float64))
    w = counts.astype(np.float64) * idf[codes]
    keep = w > 0  # items in every history weigh 0 and change no dot product
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))[keep]
    w, codes = w[keep], codes[keep]
    indptr = np.concatenate(([0], np.cumsum(np.bincount(row_of, minlength=n)))).astype(np.int64)
    norms = np.sqrt(np.bincount(row_of, weights=w * w, minlength=n))
    return Features("cosine", indptr, codes, w, norms, stream=seqs.stream,
                    families=seqs.owners if seqs.stream is not None else None, idf=idf)


def dense_features(vectors: np.ndarray) -> Features:
    """Features of the ``embedding`` metric: the given rows in float64 and their norms (scores divide the
    dot product by the norms, so orthogonal integer vectors score exactly 0)."""
    v = np.ascontiguousarray(vectors, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", v, v))
    n = len(v)
    return Features("dense", np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), norms=norms, vectors=v)
