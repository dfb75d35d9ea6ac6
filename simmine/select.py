"""Selection semantics of weak positives (docs/selection.md), shared by every backend and engine.

Every mode reduces to one per-anchor request the kernels understand: "columns with s > 0 and
s >= min_score, the best k of them, score descending then seq_id ascending".
- alpha, anchor scope: k_u = ⌈A·(n_u − 1)⌉, min_score 0
- k: k_u = K
- min-sim: min_score = S, k_u unbounded
- alpha, global scope: min_score = τ, the ⌈A·P⌉-th largest score over the P compared unordered pairs,
  found exactly from two histogram passes over float32 bit patterns (high 16 bits, then low 16 bits)
``--max-per-anchor M`` caps k_u in every mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np

from .errors import InputError

ALPHA_SCOPES = ("anchor", "global")
HIST_BINS = 65536  # a score histogram's bins: 16 bits of the float32 pattern (the high half, then the low)


@dataclass(frozen=True)
class Selection:
    mode: str                        # "alpha" | "alpha_global" | "k" | "min_sim"
    alpha: Optional[float] = None
    k: Optional[int] = None
    min_sim: Optional[float] = None
    max_per_anchor: Optional[int] = None


def make_selection(alpha=None, alpha_scope: str = "anchor", k=None, min_sim=None, max_per_anchor=None) -> Selection:
    """Validates the selection flags; exactly one of alpha, k, min_sim."""
    given = [name for name, v in (("--alpha", alpha), ("--k", k), ("--min-sim", min_sim)) if v is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise InputError(f"give exactly one of --alpha, --k, --min-sim (got {which})")
    if alpha_scope not in ALPHA_SCOPES:
        raise InputError(f"unknown --alpha-scope '{alpha_scope}' (choose from {', '.join(ALPHA_SCOPES)})")
    if max_per_anchor is not None and (not _is_int(max_per_anchor) or max_per_anchor < 1):
        raise InputError(f"--max-per-anchor must be a positive integer, got {max_per_anchor}")
    if alpha is not None:
        if not _is_number(alpha) or not (0 < alpha <= 1):
            raise InputError(f"--alpha must be in (0, 1], got {alpha}")
        return Selection("alpha" if alpha_scope == "anchor" else "alpha_global", alpha=float(alpha),
                         max_per_anchor=max_per_anchor)
    if k is not None:
        if not _is_int(k) or k < 1:
            raise InputError(f"--k must be a positive integer, got {k}")
        return Selection("k", k=int(k), max_per_anchor=max_per_anchor)
    if not _is_number(min_sim) or not (0 <= min_sim <= 1):
        raise InputError(f"--min-sim must be in [0, 1], got {min_sim}")
    return Selection("min_sim", min_sim=float(min_sim), max_per_anchor=max_per_anchor)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def ceil_fraction(alpha: float, count: int) -> int:
    """⌈alpha · count⌉ with alpha read as the decimal it was written as (0.05 is 5/100, not 0.05000000000000000277)."""
    return math.ceil(Fraction(repr(float(alpha))) * int(count))


def k_per_anchor(sel: Selection, others: np.ndarray) -> np.ndarray:
    """The per-anchor k of a request; ``others`` = n_u − 1 per anchor, the anchors it may be compared with
    (fewer with same-user exclusion); unbounded is all of them."""
    others = np.maximum(np.asarray(others, dtype=np.int64), 0)
    if sel.mode == "alpha":
        sizes, inverse = np.unique(others, return_inverse=True)  # few distinct bucket sizes
        k = np.array([ceil_fraction(sel.alpha, m) for m in sizes.tolist()], dtype=np.int64)[inverse.reshape(-1)]
    elif sel.mode == "k":
        k = np.full(len(others), sel.k, dtype=np.int64)
    else:
        k = others.copy()
    if sel.max_per_anchor is not None:
        k = np.minimum(k, sel.max_per_anchor)
    return np.minimum(k, others).astype(np.int64)


def min_score_of(sel: Selection) -> float:
    """The threshold of a non-global request (s > 0 always holds on top of it)."""
    return float(sel.min_sim) if sel.mode == "min_sim" else 0.0


@dataclass
class GlobalThreshold:
    tau: Optional[float]     # None: nothing is kept (rank 0); 0.0: every positive pair is kept
    rank: int                # ⌈A·P⌉
    pairs_at_or_above: int   # unordered pairs with s >= τ and s > 0


def bits_to_float(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def find_bin(hist: np.ndarray, rank: int):
    """(bin, rank within bin, count above bin) of the rank-th largest element (1-based) of a histogram."""
    rev = np.cumsum(hist[::-1])
    pos = int(np.searchsorted(rev, rank))  # first index where cumulative count from the top >= rank
    b = len(hist) - 1 - pos
    above = int(rev[pos - 1]) if pos > 0 else 0
    return b, rank - above, above


def global_threshold(alpha: float, pairs: int, hist_high, hist_low_of) -> GlobalThreshold:
    """τ = the ⌈alpha·pairs⌉-th largest similarity, zeros included (docs/selection.md).

    hist_high: counts of positive scores by high 16 bits; hist_low_of(prefix): counts by low 16 bits among
    positive scores whose high bits are prefix.
    """
    rank = ceil_fraction(alpha, pairs)
    positive = int(np.sum(hist_high))
    if rank == 0:
        return GlobalThreshold(None, 0, 0)
    if rank > positive:  # the rank falls among zero scores: τ = 0, every pair with s > 0 is kept
        return GlobalThreshold(0.0, rank, positive)
    hi, r_in_hi, above_hi = find_bin(np.asarray(hist_high), rank)
    low = np.asarray(hist_low_of(hi))
    lo, _, above_lo = find_bin(low, r_in_hi)
    tau = bits_to_float((hi << 16) | lo)
    return GlobalThreshold(tau, rank, above_hi + above_lo + int(low[lo]))


BYTES_PER_WEAK = 8      # uint32 neighbour + float32 score
BYTES_PER_HISTORY = 8   # one history item as given, in sequences.arrow
BYTES_PER_ANCHOR = 48   # seq_id, user, position, target, offsets; strong group id and group member (4 + 4 + 8)


def output_bytes(weak: int, history: int, n: int) -> int:
    """Size of a build's tables from its entry counts (weak entries, history items, anchors). Strong
    positives are groups: a fixed cost per anchor, whatever the groups' sizes."""
    return weak * BYTES_PER_WEAK + history * BYTES_PER_HISTORY + BYTES_PER_ANCHOR * n


def weak_entries_bound(sel: Selection, others: np.ndarray, compared_pairs: int) -> Optional[int]:
    """Weak entries a selection keeps before computing: exact for k and alpha, a lower bound for global
    alpha (checked again once τ is known), None for min-sim (which only mining or sampling can tell);
    ``others`` as k_per_anchor takes it."""
    k = k_per_anchor(sel, others)
    if sel.mode in ("alpha", "k"):
        return int(k.sum())
    if sel.mode == "alpha_global":
        return min(2 * ceil_fraction(sel.alpha, compared_pairs), int(k.sum()))
    return None


def check_output_size(est_bytes: int, max_output_gb: float, what: str = "estimated") -> None:
    """Refuses a build whose output would pass --max-output-gb, suggesting how to keep less."""
    if est_bytes > max_output_gb * 1e9:
        raise InputError(f"the output would be about {est_bytes / 1e9:.1f} GB ({what}), over --max-output-gb "
                         f"{max_output_gb:g}; keep fewer neighbours with --k or --max-per-anchor, or compare "
                         f"within groups with --bucket-by")
