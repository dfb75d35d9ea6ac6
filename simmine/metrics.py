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
    stream: Optional[object] = None        # prefix anchors' nested windows (sequences.Stream), jaccard only
    families: Optional[np.ndarray] = None  # int64 user per anchor, with the stream
    _last_tile: tuple = field(default=(None, None), repr=False)

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def tile(self, members: np.ndarray) -> "Tile":
        """The features of anchors ``members`` (ascending seq_ids) with local codes and postings.
        The last tile is kept, so the output-size estimate and the mining of one bucket share it."""
        members = np.asarray(members, dtype=np.int64)
        key = hashlib.blake2b(members.tobytes(), digest_size=16).digest()
        if self._last_tile[0] != key:
            self._last_tile = (key, self._make_tile(members))
        return self._last_tile[1]

    def _make_tile(self, members: np.ndarray) -> "Tile":
        tile = self._tile_features(members)
        if self.owners is not None:
            tile.ex_lo, tile.ex_hi = exclusion_runs(self.owners[members])
        return tile

    def _tile_features(self, members: np.ndarray) -> "Tile":
        from .sequences import _ranges

        if self.kind == "dense":
            return Tile("dense", np.zeros(len(members) + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), 0,
                        norms=self.norms[members], vectors=np.ascontiguousarray(self.vectors[members]))

        lengths = self.indptr[members + 1] - self.indptr[members]
        pos = _ranges(self.indptr[members], lengths)
        codes = self.indices[pos]
        present = np.zeros(int(self.indices.max()) + 2 if len(self.indices) else 1, dtype=bool)
        present[codes] = True
        remap = np.cumsum(present, dtype=np.int64) - 1  # order-keeping compaction of the codes in use
        tile = Tile(self.kind, np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
                    remap[codes].astype(np.int32), int(present.sum()))
        if self.weights is not None:
            tile.weights = self.weights[pos]
            tile.norms = self.norms[members]
        if self.kind == "edit":  # multisets of the sequences, for overlap bounds
            tile.ms_ptr, tile.ms_codes, counts = _unique_per_row(tile.indptr, tile.indices)
            tile.ms_counts = counts.astype(np.int32)
            tile.post_ptr, tile.post_rows, order = _postings(tile.ms_ptr, tile.ms_codes, tile.vocab)
            tile.post_counts = tile.ms_counts[order]
        else:
            tile.post_ptr, tile.post_rows, order = _postings(tile.indptr, tile.indices, tile.vocab)
            if tile.weights is not None:
                tile.post_weights = np.ascontiguousarray(tile.weights[order])
                tile.add_heavy_bounds()
        if self.kind == "set":
            tile.add_dense_bitmaps()
            if self.stream is not None:
                tile.sweep = sweep_index(self.stream, self.families, members, present, remap)
        return tile


def sweep_index(stream, families: np.ndarray, members: np.ndarray, present: np.ndarray, remap: np.ndarray) -> dict:
    """What the prefix sweep (csrc/sweep.hpp) needs of a set tile whose rows are nested windows: the tile's
    part of the users' streams (local codes; -1 where no row's window reaches), each row's window in it, its
    family (user), and per code the row ranges holding one of its occurrences as their latest: occurrence p
    counts for rows whose window [ws, we) contains p and no later occurrence (ws <= p < we <= next(p))."""
    from .sequences import _ranges

    ws, we = stream.windows[members, 0], stream.windows[members, 1]
    fam = families[members]
    n = len(members)
    first = np.ones(n, dtype=bool)
    first[1:] = fam[1:] != fam[:-1]
    run = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n) - 1
    span_lo, span_len = ws[starts], np.maximum(we[ends] - ws[starts], 0)
    pos = _ranges(span_lo, span_len)
    pos_run = np.repeat(np.arange(len(starts)), span_len)
    codes = stream.codes[pos].astype(np.int64)
    big = int(len(stream.codes)) + 2
    nxt = np.full(len(pos), big - 1, dtype=np.int64)  # next occurrence of the code in the run, or past every window
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
    return {"stream": local.astype(np.int32), "ws": (ws + shift).astype(np.int64), "we": (we + shift).astype(np.int64),
            "family": run.astype(np.int64),
            "code_ptr": np.concatenate(([0], np.cumsum(np.bincount(local[keep], minlength=vocab)))).astype(np.int64),
            "range_lo": lo[keep][by_code].astype(np.int32), "range_hi": hi[keep][by_code].astype(np.int32),
            "cover": np.bincount(local[keep], weights=(hi - lo)[keep], minlength=vocab).astype(np.int64)}


def exclusion_runs(owners: np.ndarray):
    """(lo, hi) int32 per row: the run of consecutive rows with the row's owner, which it never pairs with."""
    n = len(owners)
    start = np.ones(n, dtype=bool)
    if n:
        start[1:] = owners[1:] != owners[:-1]
    first = np.flatnonzero(start)
    run = np.cumsum(start) - 1
    ends = np.append(first[1:], n)
    return first[run].astype(np.int32), ends[run].astype(np.int32)


# TF-IDF: codes held by at least HEAVY_FRACTION of a tile's rows are scored from per-row lists, not
# accumulated. On the 50k Zipf log, select took 4.3, 2.3, 2.3, 2.9 and 6.6 s at 1/8, 1/16, 1/24, 1/32, 1/48.
HEAVY_MIN_ROWS = 256
HEAVY_FRACTION = 1 / 16
# Popular codes move from the postings to per-row bitmaps when one 64-code word of them would cost the
# inverted index more than DENSE_WORD_GAIN · n² accumulations (sum of (df/n)² over the word's codes).
DENSE_MIN_ROWS = 256
DENSE_WORD_GAIN = 1.0
MAX_DENSE_WORDS = 8


def _postings(indptr: np.ndarray, codes: np.ndarray, vocab: int):
    """Inverted index of a CSR: (post_ptr, post_rows ascending per code, entry order)."""
    from .backends import cpp

    n = len(indptr) - 1
    row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    if cpp.available() and len(codes) and int(codes.max()) < vocab and int(codes.min()) >= 0:
        order = cpp._core.code_order(codes, int(vocab))  # counting sort: rows ascending within each code
    else:
        order = np.argsort(codes, kind="stable")
    post_ptr = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=vocab)))).astype(np.int64)
    return post_ptr, row_of[order], order


def _csr_ptr(rows: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n)))).astype(np.int64)


@dataclass
class Tile:
    """One bucket's features, local rows 0..n-1 (= its members in ascending seq_id order)."""

    kind: str
    indptr: np.ndarray
    indices: np.ndarray
    vocab: int
    weights: Optional[np.ndarray] = None
    norms: Optional[np.ndarray] = None
    post_ptr: Optional[np.ndarray] = None
    post_rows: Optional[np.ndarray] = None
    post_weights: Optional[np.ndarray] = None
    post_counts: Optional[np.ndarray] = None
    ms_ptr: Optional[np.ndarray] = None
    ms_codes: Optional[np.ndarray] = None
    ms_counts: Optional[np.ndarray] = None
    dense_words: int = 0
    dense_bits: Optional[np.ndarray] = None
    dense_code: Optional[np.ndarray] = None
    heavy: Optional[np.ndarray] = None
    heavy_norm: Optional[np.ndarray] = None
    inv_norms: Optional[np.ndarray] = None
    by_heavy: Optional[np.ndarray] = None
    heavy_ptr: Optional[np.ndarray] = None
    heavy_idx: Optional[np.ndarray] = None
    heavy_w: Optional[np.ndarray] = None
    vectors: Optional[np.ndarray] = None      # dense (embedding) tiles
    ex_lo: Optional[np.ndarray] = None        # same-user exclusion: row i never pairs with rows ex_lo[i]..ex_hi[i]-1
    ex_hi: Optional[np.ndarray] = None
    sweep: Optional[dict] = None              # prefix anchors' nested windows (metrics.sweep_index)
    _prefix: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def excluded(self, i: int) -> range:
        """The rows row i never pairs with: itself, or its user's run."""
        return range(i, i + 1) if self.ex_lo is None else range(int(self.ex_lo[i]), int(self.ex_hi[i]))

    def add_heavy_bounds(self) -> None:
        """Marks popular codes; gives every row its popular codes and weights (a CSR), its
        h = ‖popular part‖/‖row‖, and the rows in descending h."""
        df = np.diff(self.post_ptr)
        if self.n < HEAVY_MIN_ROWS or not len(df):
            return
        heavy = df >= max(2, self.n * HEAVY_FRACTION)
        if not heavy.any():
            return
        row_of = np.repeat(np.arange(self.n), np.diff(self.indptr))
        held = heavy[self.indices]
        held_rows = row_of[held]
        self.heavy_w = self.weights[held]
        part = np.bincount(held_rows, weights=self.heavy_w ** 2, minlength=self.n)
        positive = self.norms > 0
        self.inv_norms = np.where(positive, 1.0 / np.where(positive, self.norms, 1.0), 0.0)
        self.heavy_norm = np.sqrt(part) * self.inv_norms
        self.by_heavy = np.argsort(-self.heavy_norm, kind="stable").astype(np.int32)
        self.heavy = heavy.astype(np.uint8)
        self.heavy_ptr = _csr_ptr(held_rows, self.n)
        self.heavy_idx = self.indices[held]

    def add_dense_bitmaps(self) -> None:
        n = self.n
        df = np.diff(self.post_ptr)
        order = np.argsort(-df, kind="stable")
        words = 0
        if n >= DENSE_MIN_ROWS:
            share = (df[order].astype(np.float64) / n) ** 2
            while words < MAX_DENSE_WORDS and share[words * 64:(words + 1) * 64].sum() >= DENSE_WORD_GAIN:
                words += 1
        self.dense_words = words
        self.dense_code = np.zeros(max(self.vocab, 1), dtype=np.uint8)
        self.dense_bits = np.zeros(n * words, dtype=np.uint64)
        if not words:
            return
        top = order[:64 * words]
        bit_of = np.full(self.vocab, -1, dtype=np.int64)
        bit_of[top] = np.arange(len(top))
        self.dense_code[top] = 1
        row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        bit = bit_of[self.indices]
        dense = bit >= 0
        slot = row_of[dense] * words + bit[dense] // 64
        np.bitwise_or.at(self.dense_bits, slot, np.left_shift(np.uint64(1), (bit[dense] % 64).astype(np.uint64)))

    def prefix(self, threshold: float) -> dict:
        """Prefix-filter index for Jaccard >= threshold: each row's rarest |A| − ⌈t·|A|⌉ + 1 codes and the
        postings of those prefixes (t lowered by 1e-6 so float32 rounding can only add candidates)."""
        key = float(threshold)
        if key not in self._prefix:
            n, lengths = self.n, np.diff(self.indptr)
            df = np.diff(self.post_ptr)
            rank = np.empty(self.vocab, dtype=np.int32)
            rank[np.lexsort((np.arange(self.vocab), df))] = np.arange(self.vocab, dtype=np.int32)
            row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
            # each row's ranks ascending: one sort of row·vocab + rank (rows are contiguous already)
            ranks = np.sort(row_of * self.vocab + rank[self.indices]) - row_of * self.vocab
            t = key * (1 - 1e-6)
            keep_len = lengths - np.ceil(t * lengths - 1e-9).astype(np.int64) + 1
            pos_in_row = np.arange(len(ranks)) - np.repeat(self.indptr[:-1], lengths)
            keep = pos_in_row < keep_len[row_of]
            p_ranks, p_rows = ranks[keep], row_of[keep]
            p_ptr = _csr_ptr(p_rows, n)
            post_ptr, post_rows, _ = _postings(p_ptr, p_ranks, self.vocab)
            self._prefix[key] = {"prefix_ptr": p_ptr, "prefix_ranks": p_ranks.astype(np.int32),
                                 "prefix_post_ptr": post_ptr, "prefix_post_rows": post_rows}
        return self._prefix[key]


def _unique_per_row(indptr: np.ndarray, codes: np.ndarray):
    """Per row, the ascending unique codes and their counts: (indptr, codes, counts). Counting passes in the
    C++ core where it is built (codes in [0, 2³¹)), one sort of row·span + code otherwise."""
    from .backends import cpp

    n = len(indptr) - 1
    if len(codes) == 0:
        return np.zeros(n + 1, dtype=np.int64), codes.astype(np.int32), np.zeros(0, dtype=np.int64)
    span = int(codes.max()) + 1
    if cpp.available() and int(codes.min()) >= 0 and span < 2 ** 31:
        return cpp._core.unique_per_row(np.ascontiguousarray(indptr, dtype=np.int64),
                                        np.ascontiguousarray(codes, dtype=np.int32), span)
    key = np.repeat(np.arange(n, dtype=np.int64) * span, np.diff(indptr)) + codes  # row-major, then code
    key.sort()  # one int64 sort: 3-4x faster than lexsort on two keys
    first = np.ones(len(key), dtype=bool)
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(key)))
    out_rows, out_codes = np.divmod(key[starts], span)
    out_indptr = np.concatenate(([0], np.cumsum(np.bincount(out_rows, minlength=n)))).astype(np.int64)
    return out_indptr, out_codes.astype(np.int32), counts


def document_frequency(indptr: np.ndarray, codes: np.ndarray, vocab: int) -> np.ndarray:
    """Rows holding each code 0..vocab-1 (TF-IDF's df, an item's N_i), a code repeated within a row counted
    once: one pass in the C++ core, a sort by row and code where it is not built."""
    from .backends import cpp

    if cpp.available() and (len(codes) == 0 or (int(np.min(codes)) >= 0 and int(np.max(codes)) < vocab)):
        return cpp._core.users_per_item(np.ascontiguousarray(indptr, dtype=np.int64),
                                        np.ascontiguousarray(codes, dtype=np.int32), int(vocab))
    _, unique, _ = _unique_per_row(indptr, codes)
    return np.bincount(unique, minlength=vocab)


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


def prepare_features(seqs: SequenceSet, metric: Metric, ngram_n: int = 2, df: Optional[np.ndarray] = None,
                     n_total: Optional[int] = None) -> Features:
    """Features of every anchor for ``metric`` (docs/metrics.md). TF-IDF takes N and df from the anchors given, or
    from ``n_total`` and ``df`` (per item code) when they are part of a larger build."""
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
    return Features("cosine", indptr, codes, w, norms)


def dense_features(vectors: np.ndarray) -> Features:
    """Features of the ``embedding`` metric: the given rows in float64 and their norms (scores divide the
    dot product by the norms, so orthogonal integer vectors score exactly 0)."""
    v = np.ascontiguousarray(vectors, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", v, v))
    n = len(v)
    return Features("dense", np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), norms=norms, vectors=v)


def read_vectors(path: str, rows: str) -> np.ndarray:
    """An ``--embeddings`` file, memory-mapped: a .npy 2-D array of numbers [rows, dims]."""
    import os

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
    float64, so exact float64 arithmetic on it is unchanged), or the one-line error naming the file's first row (``first_row`` +
    index) holding a NaN or an infinity."""
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
