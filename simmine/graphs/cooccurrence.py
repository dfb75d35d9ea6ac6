"""Item graphs over the users' training sequences (docs/items.md): co-occurrence within a window or the
whole sequence (the graph view of MVCrec and GCL4SR, ItemCF's counts), weights and normalisations, item top-k
by the items' user sets with the same exact kernels as ``build``, and the ranking of edges into rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..anchors import TrainingSequences
from .config import ItemsConfig
from ..csr import best_first, document_frequency, ranges, unique_per_row
from ..errors import InputError

BYTES_PER_PAIR = 40          # a co-occurrence while the graph is assembled (positions, codes, keys, weight)


@dataclass
class Edges:
    """A graph as (src, dst, weight) over item codes 0..V-1 (internal: the model's codes are these + 1)."""

    src: np.ndarray      # int64
    dst: np.ndarray      # int64
    weight: np.ndarray   # float64 (float32 for neighbour tables)
    ranked: bool = False  # already by src, weight (as float32) descending, dst ascending: the kernels' order


def pair_positions(seqs: TrainingSequences, window: int, limit_bytes: float):
    """Positions (p, q), p < q, of every pair at most ``window`` apart in one user's sequence (anywhere with
    window 0), and the user of each; refuses (InputError) when they would not fit in ``limit_bytes``."""
    lengths = np.diff(seqs.indptr)
    total = int(lengths.sum())
    user_of = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(total, dtype=np.int64) - np.repeat(seqs.indptr[:-1], lengths)
    after = lengths[user_of] - pos - 1  # positions after p in its sequence
    ahead = after if window == 0 else np.minimum(after, window)
    pairs = int(ahead.sum())
    if pairs * BYTES_PER_PAIR * 2 > limit_bytes:
        raise InputError(f"the graph would hold about {pairs * 2:,} co-occurrences "
                         f"({pairs * BYTES_PER_PAIR * 2 / 1e9:.1f}"
                         f" GB while assembled), over --max-output-gb; use a smaller --window, or item top-k by "
                         f"--metric cosine --k K")
    p = np.repeat(np.arange(total, dtype=np.int64), ahead)
    q = p + (ranges(np.ones(total, np.int64), ahead) if pairs else np.zeros(0, np.int64))
    return p, q, user_of[p]


def cooccurrence(seqs: TrainingSequences, config: ItemsConfig) -> Edges:
    """The co-occurrence graph A (docs/items.md): every pair at most --window apart (or anywhere) in a user's
    training sequence, weighted per --weight, counted per --count, both ways unless --directed."""
    p, q, user = pair_positions(seqs, config.window, config.max_output_gb * 1e9)
    a, b = seqs.codes[p].astype(np.int64), seqs.codes[q].astype(np.int64)
    if config.weight == "inverse-distance":
        w = 1.0 / (q - p).astype(np.float64)
    elif config.weight == "iuf":
        w = iuf_weights(seqs)[user]
    else:
        w = np.ones(len(p), dtype=np.float64)
    if not config.directed:
        a, b, w, user = np.concatenate((a, b)), np.concatenate((b, a)), np.concatenate((w, w)), \
            np.concatenate((user, user))
    n = len(seqs.item_values)
    if config.count == "set":  # once per user: the pair's largest weight (its nearest occurrence)
        key = (user * n + a) * n + b
        order = np.argsort(key)  # ties are one (user, a, b): their largest weight is kept, in any order
        key = key[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else order
        w = np.maximum.reduceat(w[order], starts) if len(key) else w
        a, b = (key[starts] // n) % n, key[starts] % n
    return aggregate(a, b, w, n)


def iuf_weights(seqs: TrainingSequences) -> np.ndarray:
    """1/log(1 + |S_u|) per user, S_u the set of items of its training sequence (ItemCF-IUF)."""

    indptr, _, _ = unique_per_row(seqs.indptr, seqs.codes)
    return 1.0 / np.log1p(np.diff(indptr).astype(np.float64))


def aggregate(a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int) -> Edges:
    """Σ of the weights of equal (a, b) pairs, pairs in ascending (a, b) order (sums in input order)."""
    key = a * n + b
    uniq, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse.reshape(-1), weights=w, minlength=len(uniq))
    return Edges(uniq // n, uniq % n, total)


def users_with(seqs: TrainingSequences) -> np.ndarray:
    """N_i: how many users' training sequences hold item i (per code)."""

    return document_frequency(seqs.indptr, seqs.codes, len(seqs.item_values)).astype(np.float64)


def normalized(edges: Edges, seqs: TrainingSequences, config: ItemsConfig) -> Edges:
    """--self-loops, --weight binary and --normalize applied to a co-occurrence graph."""
    n = len(seqs.item_values)
    src, dst, w = edges.src, edges.dst, edges.weight
    if config.self_loops:
        every = np.arange(n, dtype=np.int64)
        e = aggregate(np.concatenate((src, every)), np.concatenate((dst, every)),
                      np.concatenate((w, np.ones(n))), n)
        src, dst, w = e.src, e.dst, e.weight
    if config.weight == "binary":
        w = np.ones(len(w), dtype=np.float64)
    how = config.normalize
    if how == "sym":  # D^-1/2 A D^-1/2, D the row sums
        inv = _inverse(np.bincount(src, weights=w, minlength=n)) ** 0.5
        w = w * inv[src] * inv[dst]
    elif how == "row":
        w = w * _inverse(np.bincount(src, weights=w, minlength=n))[src]
    elif how == "cosine":  # ItemCF: c_ij / (√N_i √N_j), an item not its own neighbour
        root = np.sqrt(users_with(seqs))
        off = src != dst
        src, dst, w = src[off], dst[off], w[off] / (root[src[off]] * root[dst[off]])
    elif how == "gcl4sr":  # w · (1/out-degree(row) + 1/in-degree(col)), degrees counted in edges
        out_deg = np.bincount(src, minlength=n).astype(np.float64)
        in_deg = np.bincount(dst, minlength=n).astype(np.float64)
        w = w * (_inverse(out_deg)[src] + _inverse(in_deg)[dst])
    return Edges(src, dst, w)


def _inverse(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x), dtype=np.float64)
    np.divide(1.0, x, out=out, where=x != 0)
    return out


def user_set_neighbours(seqs: TrainingSequences, config: ItemsConfig, backend) -> Edges:
    """Each item's top k by its user set (--metric jaccard | cosine), by build's exact kernels: items are the
    anchors, users their set members."""
    from ..engines.local import make_plan, mine_weak
    from ..metrics import Features
    from ..select import Selection

    n = len(seqs.item_values)
    if hasattr(backend, "item_topk"):  # integer co-counts through the users' item lists (csrc/items.hpp)
        return kernel_neighbours(seqs, config.k, config.metric == "cosine", backend)
    u_ptr, items, _ = unique_per_row(seqs.indptr, seqs.codes)  # every user's unique items
    user = np.repeat(np.arange(len(u_ptr) - 1, dtype=np.int32), np.diff(u_ptr))
    order = np.argsort(items, kind="stable")  # item by item, users ascending
    indptr = np.concatenate(([0], np.cumsum(np.bincount(items, minlength=n)))).astype(np.int64)
    members = user[order]
    if config.metric == "jaccard":
        features = Features("set", indptr, members)
    else:  # cosine of 0/1 vectors: |U_i ∩ U_j| / (√N_i √N_j), ItemCF
        features = Features("cosine", indptr, members, np.ones(len(members)), np.sqrt(np.diff(indptr).astype(float)))
    plan = make_plan(n, None)
    w = mine_weak(features, plan, Selection("k", k=config.k), backend)
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(w.offsets))
    return Edges(src, w.neighbors.astype(np.int64), w.scores.astype(np.float64))


def kernel_neighbours(seqs: TrainingSequences, k: int, cosine: bool, backend, user_weight=None) -> Edges:
    """Each item's top k by Jaccard or cosine (ItemCF; ItemCF-IUF with per-user weights) of its user set, from
    the backend's co-count kernel."""
    n = len(seqs.item_values)
    offsets, cols, scores = backend.item_topk(seqs.indptr, seqs.codes, n, k, cosine, user_weight)
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    return Edges(src, cols.astype(np.int64), scores.astype(np.float64), ranked=True)


def is_itemcf(config: ItemsConfig) -> bool:
    """Whether a co-occurrence graph's top k is ItemCF (or ItemCF-IUF) over user sets, which the co-count
    kernel gives bit for bit without holding every pair: whole sequences, set counting, count or IUF weights
    (the same per-user weights, summed in the same ascending user order), both ways, cosine (which drops
    self-loops), a top k."""
    return (config.window == 0 and config.count == "set" and config.weight in ("count", "iuf")
            and not config.directed and config.normalize == "cosine" and config.k is not None)


def ranked_rows(edges: Edges, n: int, k: Optional[int]):
    """CSR over codes 0..V (row 0 padding, row c for item c): each item's edges by weight (as float32)
    descending then code ascending, its best k when given; neighbours as codes 1..V."""
    w32 = edges.weight.astype(np.float32)
    if edges.ranked:
        src, dst, w = edges.src, edges.dst, w32
    else:
        order = best_first(edges.src, edges.dst, w32)
        src, dst, w = edges.src[order], edges.dst[order], w32[order]
    counts = np.bincount(src, minlength=n)
    if k is not None:
        rank = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < k
        src, dst, w = src[keep], dst[keep], w[keep]
        counts = np.minimum(counts, k)
    offsets = np.concatenate(([0, 0], np.cumsum(counts))).astype(np.int64)
    return offsets, (dst + 1).astype(np.uint32), w
