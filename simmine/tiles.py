"""Tiles: the part of the features one bucket needs, local rows 0..n-1 (its members in ascending seq_id order),
codes remapped to a compact range, with the inverted index and the per-kind extras each scorer reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import numpy as np

from .csr import postings, row_pointers


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


# Tiles are typed per metric kind: each class declares the arrays its scorer reads, and the C++ core reads
# those same attributes (csrc/bindings.cpp: one maker per kind). A new kind is one class here and its maker.
@dataclass
class Tile:
    """One bucket's features, local rows 0..n-1 (= its members in ascending seq_id order): a CSR of local
    codes, and the rows each row never pairs with (same-user exclusion)."""

    kind: ClassVar[str] = ""
    indptr: np.ndarray            # int64 [n + 1]
    indices: np.ndarray           # int32 local codes
    vocab: int                    # local codes are 0..vocab-1
    ex_lo: Optional[np.ndarray] = None  # same-user exclusion: row i never pairs with rows ex_lo[i]..ex_hi[i]-1
    ex_hi: Optional[np.ndarray] = None

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def excluded(self, i: int) -> range:
        """The rows row i never pairs with: itself, or its user's run."""
        return range(i, i + 1) if self.ex_lo is None else range(int(self.ex_lo[i]), int(self.ex_hi[i]))


@dataclass
class SetTile(Tile):
    """Jaccard over sets (``jaccard``, ``ngram``): ascending unique codes per row, their postings, per-row
    bitmaps of the most popular codes, and the prefix sweep's windows for prefix anchors."""

    kind: ClassVar[str] = "set"
    post_ptr: Optional[np.ndarray] = None
    post_rows: Optional[np.ndarray] = None
    dense_words: int = 0
    dense_bits: Optional[np.ndarray] = None   # uint64 [n · dense_words]
    dense_code: Optional[np.ndarray] = None   # uint8 per code: 1 when a bitmap holds it
    sweep: Optional["Sweep"] = None           # prefix anchors' nested windows (metrics.sweep_index)
    _prefix: dict = field(default_factory=dict, repr=False)

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

    def prefix(self, threshold: float) -> "PrefixTile":
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
            p_ptr = row_pointers(p_rows, n)
            post_ptr, post_rows, _ = postings(p_ptr, p_ranks, self.vocab)
            self._prefix[key] = PrefixTile(self.indptr, self.indices, self.vocab, self.ex_lo, self.ex_hi, p_ptr,
                                           p_ranks.astype(np.int32), post_ptr, post_rows)
        return self._prefix[key]


@dataclass
class PrefixTile(Tile):
    """A set tile's prefix-filter index for one Jaccard threshold (SetTile.prefix): each row's rarest codes
    (their ranks) and the postings of those prefixes."""

    kind: ClassVar[str] = "prefix"
    prefix_ptr: Optional[np.ndarray] = None
    prefix_ranks: Optional[np.ndarray] = None
    prefix_post_ptr: Optional[np.ndarray] = None
    prefix_post_rows: Optional[np.ndarray] = None


@dataclass
class CosineTile(Tile):
    """TF-IDF cosine: weighted unique codes, norms, weighted postings, and the popular codes' bounds."""

    kind: ClassVar[str] = "cosine"
    weights: Optional[np.ndarray] = None       # float64 aligned with indices
    norms: Optional[np.ndarray] = None         # float64 per row
    post_ptr: Optional[np.ndarray] = None
    post_rows: Optional[np.ndarray] = None
    post_weights: Optional[np.ndarray] = None
    heavy: Optional[np.ndarray] = None         # uint8 per code: popular (scored from per-row lists)
    heavy_norm: Optional[np.ndarray] = None    # per row: ‖popular part‖ / ‖row‖
    inv_norms: Optional[np.ndarray] = None
    by_heavy: Optional[np.ndarray] = None      # rows by descending heavy_norm
    heavy_ptr: Optional[np.ndarray] = None     # CSR of each row's popular codes and weights
    heavy_idx: Optional[np.ndarray] = None
    heavy_w: Optional[np.ndarray] = None
    code_idf: Optional[np.ndarray] = None      # float64 per local code, with the sweep
    sweep: Optional["Sweep"] = None            # prefix anchors' nested windows (every occurrence counts)

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
        self.heavy_ptr = row_pointers(held_rows, self.n)
        self.heavy_idx = self.indices[held]


@dataclass
class EditTile(Tile):
    """Levenshtein: the item sequences themselves, and their multisets (codes, counts, postings) for the
    overlap bound that skips pairs."""

    kind: ClassVar[str] = "edit"
    ms_ptr: Optional[np.ndarray] = None
    ms_codes: Optional[np.ndarray] = None
    ms_counts: Optional[np.ndarray] = None
    post_ptr: Optional[np.ndarray] = None
    post_rows: Optional[np.ndarray] = None
    post_counts: Optional[np.ndarray] = None


@dataclass
class DenseTile(Tile):
    """Given vectors (``embedding``): float64 rows and their norms; the CSR is empty."""

    kind: ClassVar[str] = "dense"
    norms: Optional[np.ndarray] = None
    vectors: Optional[np.ndarray] = None


@dataclass
class Sweep:
    """What the prefix sweeps (csrc/sweep.hpp, csrc/sweep_cosine.hpp) read of a tile whose rows are nested
    windows (metrics.sweep_index): the users' streams in local codes, each row's window and family (user), and
    per code the row ranges holding one of its occurrences as their latest (a set tile) or at all (TF-IDF)."""

    stream: np.ndarray      # int32 local codes, -1 where no row's window reaches
    ws: np.ndarray          # int64 window start per row
    we: np.ndarray          # int64 window end per row
    family: np.ndarray      # int64 user per row
    code_ptr: np.ndarray    # int64 [vocab + 1]
    range_lo: np.ndarray    # int32
    range_hi: np.ndarray    # int32
    cover: np.ndarray       # int64 per code


TILE_KINDS = {cls.kind: cls for cls in (SetTile, CosineTile, EditTile, DenseTile)}
