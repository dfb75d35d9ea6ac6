"""Metric registry and the per-metric features every backend scores (SPEC §3).

One representation crosses every boundary: a CSR over anchors. ``jaccard`` and ``ngram`` become sets of
unique ascending codes, ``tfidf`` weighted sets, ``levenshtein`` the item sequences themselves. A ``Tile``
is the part of the features one bucket needs, with codes remapped to a compact local range (order kept,
so sums run in the same order everywhere) and the inverted index (postings) of those codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import InputError
from .sequences import SequenceSet


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
    norms: Optional[np.ndarray] = None     # float64 per row (cosine)

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def tile(self, members: np.ndarray) -> "Tile":
        """The features of anchors ``members`` (ascending seq_ids) with local codes and postings."""
        members = np.asarray(members, dtype=np.int64)
        lengths = self.indptr[members + 1] - self.indptr[members]
        from .sequences import _ranges

        pos = _ranges(self.indptr[members], lengths)
        codes = self.indices[pos]
        vocab_codes, local = np.unique(codes, return_inverse=True)
        local = local.astype(np.int32).reshape(-1)
        indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        vocab = len(vocab_codes)
        weights = self.weights[pos] if self.weights is not None else None
        norms = self.norms[members] if self.norms is not None else None
        post_ptr = post_rows = post_weights = None
        if self.kind in ("set", "cosine"):
            row_of = np.repeat(np.arange(len(members), dtype=np.int32), lengths)
            order = np.argsort(local, kind="stable")  # rows ascending within each code
            post_rows = row_of[order]
            post_ptr = np.concatenate(([0], np.cumsum(np.bincount(local, minlength=vocab)))).astype(np.int64)
            if weights is not None:
                post_weights = np.ascontiguousarray(weights[order])
        return Tile(self.kind, indptr, local, vocab, weights, norms, post_ptr, post_rows, post_weights)


@dataclass
class Tile:
    """One bucket's features, local rows 0..n-1 (= its members in ascending seq_id order)."""

    kind: str
    indptr: np.ndarray
    indices: np.ndarray
    vocab: int
    weights: Optional[np.ndarray]
    norms: Optional[np.ndarray]
    post_ptr: Optional[np.ndarray]
    post_rows: Optional[np.ndarray]
    post_weights: Optional[np.ndarray]

    @property
    def n(self) -> int:
        return len(self.indptr) - 1


def _unique_per_row(indptr: np.ndarray, codes: np.ndarray):
    """Per row, the ascending unique codes and their counts: (indptr, codes, counts)."""
    n = len(indptr) - 1
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    order = np.lexsort((codes, row_of))
    r, c = row_of[order], codes[order]
    if len(c) == 0:
        return np.zeros(n + 1, dtype=np.int64), c.astype(np.int32), np.zeros(0, dtype=np.int64)
    first = np.ones(len(c), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(c)))
    out_rows = r[starts]
    out_indptr = np.concatenate(([0], np.cumsum(np.bincount(out_rows, minlength=n)))).astype(np.int64)
    return out_indptr, c[starts].astype(np.int32), counts


def ngram_codes(indptr: np.ndarray, items: np.ndarray, n: int):
    """(indptr, codes) of the contiguous n-grams of every row, each n-gram coded by its sorted rank."""
    lengths = np.diff(indptr)
    g_len = np.maximum(lengths - n + 1, 0)
    from .sequences import _ranges

    starts = _ranges(indptr[:-1], g_len)
    g_indptr = np.concatenate(([0], np.cumsum(g_len))).astype(np.int64)
    if len(starts) == 0:
        return g_indptr, np.zeros(0, dtype=np.int32)
    grams = np.stack([items[starts + t] for t in range(n)], axis=1)
    _, codes = np.unique(grams, axis=0, return_inverse=True)
    return g_indptr, codes.reshape(-1).astype(np.int32)


def prepare_features(seqs: SequenceSet, metric: Metric, ngram_n: int = 2) -> Features:
    """Features of every anchor for ``metric`` (SPEC §3)."""
    if metric.name == "levenshtein":
        return Features("edit", seqs.indptr, seqs.items.astype(np.int32))
    if metric.name == "ngram":
        if ngram_n < 1:
            raise InputError(f"--ngram-n must be at least 1, got {ngram_n}")
        g_indptr, g_codes = ngram_codes(seqs.indptr, seqs.items, ngram_n)
        indptr, codes, _ = _unique_per_row(g_indptr, g_codes)
        return Features("set", indptr, codes)
    indptr, codes, counts = _unique_per_row(seqs.indptr, seqs.items)
    if metric.name == "jaccard":
        return Features("set", indptr, codes)
    # tfidf: w(v,u) = tf(v,u) · ln(N / df(v)), N = all anchors of the build, df over their histories
    n = seqs.n
    df = np.bincount(codes, minlength=int(codes.max()) + 1 if len(codes) else 0)
    idf = np.zeros(len(df), dtype=np.float64)
    seen = df > 0
    idf[seen] = np.log(n / df[seen].astype(np.float64))
    w = counts.astype(np.float64) * idf[codes]
    keep = w > 0  # items in every history weigh 0 and change no dot product
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))[keep]
    w, codes = w[keep], codes[keep]
    indptr = np.concatenate(([0], np.cumsum(np.bincount(row_of, minlength=n)))).astype(np.int64)
    norms = np.sqrt(np.bincount(row_of, weights=w * w, minlength=n))
    return Features("cosine", indptr, codes, w, norms)
