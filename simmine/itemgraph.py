"""Item graphs and item neighbours (docs/items.md), from the same loaders and split as ``simmine build``:

- co-occurrence graphs over the users' training sequences (the graph view of MVCrec and GCL4SR, ItemCF's
  co-occurrence counts): pairs within ``window`` positions or anywhere, weights, normalisations, top-k;
- item top-k by the items' user sets (Jaccard, cosine), with the same exact kernels as ``build``;
- item top-k by given item embeddings (SRA-CL's text neighbours), exact.

Items are coded 1..V in the sorted order of the log's item ids (0 is padding, the model's id space); the
output is ``items.arrow`` (row c: item c), ``edges.arrow`` (row c: its edges, best first) and a manifest,
written as ``build`` writes (temporary directory, then renamed).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from .config import ItemsConfig
from .errors import InputError
from .io import large_list, map_table, read_manifest, sha256_file, write_json, write_table
from .sequences import TrainingSequences, _ranges, training_sequences

ITEMS_FORMAT_VERSION = 1
BYTES_PER_PAIR = 40          # a co-occurrence while the graph is assembled (positions, codes, keys, weight)
EMBED_BLOCK_VALUES = 1 << 24  # scores of one block of embedding rows (float32): 64 MB
EMBED_EXTRA = 16              # candidates beyond k per row from the float32 GEMM, rescored exactly
EMBED_MOST = 8192             # a row with more bfloat16 candidates than this takes the float32 GEMM route


@dataclass
class Edges:
    """A graph as (src, dst, weight) over item codes 0..V-1 (internal: the model's codes are these + 1)."""

    src: np.ndarray      # int64
    dst: np.ndarray      # int64
    weight: np.ndarray   # float64 (float32 for neighbour tables)
    ranked: bool = False  # already by src, weight (as float32) descending, dst ascending: the kernels' order


# ---------------------------------------------------------------------------------------------- co-occurrence
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
        raise InputError(f"the graph would hold about {pairs * 2:,} co-occurrences ({pairs * BYTES_PER_PAIR * 2 / 1e9:.1f}"
                         f" GB while assembled), over --max-output-gb; use a smaller --window, or item top-k by "
                         f"--metric cosine --k K")
    p = np.repeat(np.arange(total, dtype=np.int64), ahead)
    q = p + (_ranges(np.ones(total, np.int64), ahead) if pairs else np.zeros(0, np.int64))
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
    from .metrics import _unique_per_row

    indptr, _, _ = _unique_per_row(seqs.indptr, seqs.codes)
    return 1.0 / np.log1p(np.diff(indptr).astype(np.float64))


def aggregate(a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int) -> Edges:
    """Σ of the weights of equal (a, b) pairs, pairs in ascending (a, b) order (sums in input order)."""
    key = a * n + b
    uniq, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse.reshape(-1), weights=w, minlength=len(uniq))
    return Edges(uniq // n, uniq % n, total)


def users_with(seqs: TrainingSequences) -> np.ndarray:
    """N_i: how many users' training sequences hold item i (per code)."""
    from .metrics import document_frequency

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


# ---------------------------------------------------------------------------------------------- neighbours
def user_set_neighbours(seqs: TrainingSequences, config: ItemsConfig, backend) -> Edges:
    """Each item's top k by its user set (--metric jaccard | cosine), by build's exact kernels: items are the
    anchors, users their set members."""
    from .engines.local import make_plan, mine_weak
    from .metrics import Features, _unique_per_row
    from .select import Selection

    n = len(seqs.item_values)
    if hasattr(backend, "item_topk"):  # integer co-counts through the users' item lists (csrc/items.hpp)
        return kernel_neighbours(seqs, config.k, config.metric == "cosine", backend)
    u_ptr, items, _ = _unique_per_row(seqs.indptr, seqs.codes)  # every user's unique items
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


def load_item_embeddings(path: str, n: int) -> np.ndarray:
    """--embeddings: [V, d] (row r for code r + 1) or [V + 1, d] (row 0 for padding, dropped)."""
    from .metrics import finite_vectors, read_vectors

    v = read_vectors(path, "items")
    if v.shape[0] not in (n, n + 1):
        raise InputError(f"{path}: {v.shape[0]} rows, but the log has {n} items (one row per item in sorted order "
                         f"of the item ids, or {n + 1} with a padding row first)")
    padding = v.shape[0] - n
    return finite_vectors(path, v[padding:], first_row=padding, keep_float32=True)


def embedding_neighbours(vectors: np.ndarray, k: int, similarity: str) -> Edges:
    """Each item's exact top k by cosine (or dot) of its vector, itself excluded, score desc then code asc.

    A score is the float64 dot product (divided by both norms for cosine; a zero vector scores 0), rounded
    to float32 once. An approximate pass proposes candidates and only they are rescored exactly: where the
    CPU has AMX tiles or AVX-512 BF16, a bfloat16 pass that keeps every item within twice its error bound of a
    row's k-th approximate score (so no item of the exact top k can be missed); elsewhere a float32 GEMM's best
    k + EMBED_EXTRA per row, a row being kept only if no other item can reach its k-th score (the GEMM's
    error bound), and rescored against every item otherwise."""
    from .backends import cpp

    n, d = vectors.shape
    if vectors.dtype == np.float64:
        as_float32 = vectors.astype(np.float32)
        if np.array_equal(as_float32, vectors):  # the same products from half the bytes
            vectors = as_float32
    exact_vectors = np.ascontiguousarray(vectors)
    if cpp.available():  # the same float64 sums as the rescoring's, for float32 and float64 rows alike
        every = np.arange(n, dtype=np.int64)
        norms = np.sqrt(cpp._core.pair_dots(exact_vectors, every, every))
    else:
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    safe = np.where(norms > 0, norms, 1.0)
    if similarity == "cosine":  # unit rows in float32, in blocks: no full-size float64 temporary
        fast, inverse = np.empty((n, d), dtype=np.float32), 1.0 / safe
        for lo in range(0, n, 1024):
            np.multiply(vectors[lo:lo + 1024], inverse[lo:lo + 1024, None], out=fast[lo:lo + 1024],
                        casting="same_kind")
    else:
        fast = np.ascontiguousarray(vectors, dtype=np.float32)
    size = np.sqrt(np.einsum("ij,ij->i", fast, fast, dtype=np.float64))

    def exact(rows, cols):  # float32 scores of the pairs (rows[x], cols[x]), float64 arithmetic
        if cpp.available():  # no gathered copy of the candidates' rows
            dot = cpp._core.pair_dots(exact_vectors, np.ascontiguousarray(rows, dtype=np.int64),
                                      np.ascontiguousarray(cols, dtype=np.int64))
        else:
            dot = np.einsum("xd,xd->x", vectors[rows], vectors[cols])
        if similarity == "cosine":
            dot = dot / safe[rows] / safe[cols]
            dot[(norms[rows] == 0) | (norms[cols] == 0)] = 0.0
        return dot.astype(np.float32)

    src, dst, out = [], [], []
    rest = np.arange(n)  # rows for the float32 GEMM route
    if n > 1 and k >= 1 and size.max() < 1e18 and cpp.available() and cpp._core.embed_screen():
        # Row r against any column c: with t = bf16(x) and x = t + ρ, x_r·x_c − t_r·t_c = ρ_r·t_c + t_r·ρ_c +
        # ρ_r·ρ_c, bounded by the norms (Cauchy–Schwarz); AMX tiles and vdpbf16ps add float32 sums of d exact
        # products (γ·|t_r|·|t_c|) and flush subnormals (tiny); the exact score differs from x_r·x_c by float32
        # roundings of x and of the score (2^-21 of the norms). Every column's error is below err[r], so
        # no item of the exact top k scores below the k-th approximate score minus 2·err[r].
        rounded, residual = cpp._core.bf16_norms(fast)
        gamma = 1.01 * (d + 2) * 2.0 ** -24
        tiny = 2.0 ** -126 * (2 * np.sqrt(d) * size.max() + d) + 1e-30
        err = (residual * rounded.max() + rounded * residual.max() + residual * residual.max()
               + gamma * rounded * rounded.max() + 2.0 ** -21 * size * size.max() + tiny)
        window = np.ascontiguousarray(2 * err * (1 + 1e-6), dtype=np.float64)
        ptr, cols, overflow = cpp._core.embed_candidates(fast, window, int(k), EMBED_MOST)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
        scores = exact(rows, cols)
        order = _rank_order(rows, cols, scores)  # rows ascending, each by score desc then code asc
        rows, cols, scores = rows[order], cols[order], scores[order]
        keep = np.arange(len(rows)) - ptr[rows] < k
        src.append(rows[keep])
        dst.append(cols[keep])
        out.append(scores[keep])
        rest = np.flatnonzero(overflow)  # rows with thousands of near-ties in their window

    width = min(n - 1, k + EMBED_EXTRA)
    eps = 2.0 * (d + 2) * 2.0 ** -24  # |float32 GEMM entry − exact| <= eps·|a|·|b| (inputs rounded, d products)
    step = max(1, EMBED_BLOCK_VALUES // max(n, 1))
    for lo in range(0, len(rest), step):
        rows = rest[lo:lo + step]
        approx = fast[rows] @ fast.T
        approx[np.arange(len(rows)), rows] = -np.inf
        cand = _dense_topk(approx, width)
        bound = np.take_along_axis(approx, cand, axis=1).min(axis=1).astype(np.float64) + \
            2 * eps * size[rows] * size.max()  # no item outside the candidates scores above this
        scores = exact(np.repeat(rows, cand.shape[1]), cand.reshape(-1)).reshape(cand.shape)
        cols, scores = _best(cand, scores, k)
        sure = (scores.shape[1] == k) & (scores[:, -1].astype(np.float64) > bound * (1 + 1e-6) + 1e-30) \
            if width < n - 1 else np.ones(len(rows), dtype=bool)
        for r in np.flatnonzero(~sure).tolist():  # rescored against every item
            others = np.delete(np.arange(n), rows[r])
            c, s = _best(others[None, :], exact(np.full(n - 1, rows[r]), others)[None, :], k)
            cols[r], scores[r] = c[0], s[0]
        src.append(np.repeat(rows, cols.shape[1]))
        dst.append(cols.reshape(-1))
        out.append(scores.reshape(-1))
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    src, dst, out = cat(src, np.int64), cat(dst, np.int64), cat(out, np.float64)
    if len(src) > 1 and np.any(src[1:] < src[:-1]):  # the GEMM route's rows after the others
        order = np.argsort(src, kind="stable")
        src, dst, out = src[order], dst[order], out[order]
    return Edges(src, dst, out, ranked=True)


def _dense_topk(scores: np.ndarray, width: int) -> np.ndarray:
    """The columns of each row's ``width`` largest scores (any order): the C++ core's bounded selection, or
    NumPy's partition where the core is not built."""
    from .backends import cpp

    if cpp.available():
        return cpp._core.dense_topk(np.ascontiguousarray(scores, dtype=np.float32), int(width))
    return np.argpartition(-scores, width - 1, axis=1)[:, :width]


def _best(cols: np.ndarray, scores: np.ndarray, k: int):
    """Each row's k best of its (cols, scores) by score descending then column ascending: [R, k] arrays."""
    r = np.repeat(np.arange(len(cols)), cols.shape[1])
    order = np.lexsort((cols.reshape(-1), -scores.reshape(-1).astype(np.float64), r)).reshape(cols.shape)
    take = order[:, :k]
    return cols.reshape(-1)[take], scores.reshape(-1)[take]


# ---------------------------------------------------------------------------------------------- ranking, output
def _rank_order(src: np.ndarray, dst: np.ndarray, w32: np.ndarray) -> np.ndarray:
    """The order of edges by src, weight descending, dst ascending. Edges already in (src, dst) order (as
    aggregated graphs are) need one stable sort of src·2³² + the weight's descending rank bits."""
    if len(src) > 1 and len(src) < 2 ** 31 and int(src.max()) < 2 ** 31 and \
            bool(np.all((src[1:] > src[:-1]) | ((src[1:] == src[:-1]) & (dst[1:] > dst[:-1])))):
        plain = np.where(w32 == 0, np.float32(0), w32).astype(np.float32)  # -0.0 ties with 0.0, as in lexsort
        bits = plain.view(np.uint32).astype(np.int64)
        # float32 bits → an integer that grows with the value (negatives flipped), then reversed: descending
        ascending = np.where(bits >> 31 == 1, 0xFFFFFFFF - bits, bits | 0x80000000)
        key = (src.astype(np.int64) << 32) | (0xFFFFFFFF - ascending)
        return np.argsort(key, kind="stable")
    return np.lexsort((dst, -w32.astype(np.float64), src))


def ranked_rows(edges: Edges, n: int, k: Optional[int]):
    """CSR over codes 0..V (row 0 padding, row c for item c): each item's edges by weight (as float32)
    descending then code ascending, its best k when given; neighbours as codes 1..V."""
    w32 = edges.weight.astype(np.float32)
    if edges.ranked:
        src, dst, w = edges.src, edges.dst, w32
    else:
        order = _rank_order(edges.src, edges.dst, w32)
        src, dst, w = edges.src[order], edges.dst[order], w32[order]
    counts = np.bincount(src, minlength=n)
    if k is not None:
        rank = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < k
        src, dst, w = src[keep], dst[keep], w[keep]
        counts = np.minimum(counts, k)
    offsets = np.concatenate(([0, 0], np.cumsum(counts))).astype(np.int64)
    return offsets, (dst + 1).astype(np.uint32), w


def items_table(seqs: TrainingSequences) -> pa.Table:
    """items.arrow: row c is item code c (row 0: padding, null), with its users and occurrences in training."""
    n = len(seqs.item_values)
    counts = np.bincount(seqs.codes, minlength=n)
    return pa.table({
        "code": pa.array(np.arange(n + 1, dtype=np.uint32)),
        "item": pa.concat_arrays([pa.nulls(1, seqs.item_values.type), seqs.item_values]),
        "users": pa.array(np.concatenate(([0], users_with(seqs))).astype(np.uint32)),
        "occurrences": pa.array(np.concatenate(([0], counts)).astype(np.uint32)),
    })


def edges_table(offsets, neighbors, weights) -> pa.Table:
    return pa.table({"neighbors": large_list(offsets, neighbors, pa.uint32()),
                     "weights": large_list(offsets, weights, pa.float32())})


def run_items(config: ItemsConfig) -> str:
    """``simmine items``: load → training sequences → graph or neighbours → items.arrow, edges.arrow, manifest."""
    from .backends import get_backend, set_num_threads
    from .pipeline import Run, check_out, load_log, resolved_input
    from .progress import make_progress

    backend = get_backend(config.backend)
    if config.threads:
        set_num_threads(config.threads)
    check_out(config.out)
    run = Run(config, backend, make_progress(config.quiet))
    loaded = run.stage("load", load_log, config)
    run.input_info = loaded.input_info
    run.resolved.update(resolved_input(config, loaded.log.fmt, loaded.log.time_col))
    seqs = run.stage("sequences", training_sequences, loaded.log, config.split)
    n = len(seqs.item_values)
    if config.relation == "cooccurrence" and is_itemcf(config) and hasattr(backend, "item_topk"):
        weight = iuf_weights(seqs) if config.weight == "iuf" else None
        edges = run.stage("edges", kernel_neighbours, seqs, config.k, True, backend, weight)  # no pairs held
    elif config.relation == "cooccurrence":
        raw = run.stage("edges", cooccurrence, seqs, config)
        edges = run.stage("normalize", normalized, raw, seqs, config)
    elif config.relation == "users":
        edges = run.stage("edges", user_set_neighbours, seqs, config, backend)
    else:
        vectors = run.stage("load", load_item_embeddings, config.embeddings, n)
        run.input_info["embeddings"] = {"path": os.path.abspath(config.embeddings),
                                        "sha256": sha256_file(config.embeddings)}
        edges = run.stage("edges", embedding_neighbours, vectors, config.k, config.similarity)
    offsets, neighbors, weights = run.stage("rank", ranked_rows, edges, n, config.k)
    run.open_checkpoint()
    try:
        run.stage("write", write_table, run.path("items.arrow"), items_table(seqs))
        run.stage("write", write_table, run.path("edges.arrow"), edges_table(offsets, neighbors, weights))
        return finish_items(run, seqs, offsets)
    except InputError:
        run.discard()
        raise


def finish_items(run, seqs: TrainingSequences, offsets: np.ndarray) -> str:
    out = run.config.out
    n = len(seqs.item_values)
    names = {"items.arrow": n + 1, "edges.arrow": n + 1}
    manifest = {
        "kind": "items",
        "format_version": ITEMS_FORMAT_VERSION,
        "simmine_version": __import__("simmine").__version__,
        "command": run.config.command_line(),
        "input": run.input_info,
        "params": run.params(),
        "config": run.config.to_dict(),
        "n_items": n,
        "n_users": len(seqs.indptr) - 1,
        "edges": int(offsets[-1]),
        "elapsed_s": {**{k: round(v, 6) for k, v in run.timings.items()},
                      "total": round(time.perf_counter() - run.started, 6)},
        "files": {name: {"sha256": sha256_file(run.path(name)), "bytes": os.path.getsize(run.path(name)),
                         "rows": [0, rows]} for name, rows in names.items()},
    }
    write_json(run.path("manifest.json"), manifest)
    os.remove(run.path("plan.json"))
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.replace(run.partial, out)
    return out


def items(input: Optional[str] = None, out: str = "simmine-items", **kwargs) -> str:
    """Builds an item graph or item neighbours (docs/items.md) into ``out``; keywords are ``simmine items``'
    flags with underscores (fields of ``simmine.ItemsConfig``). Returns ``out``."""
    return run_items(ItemsConfig(input=input, out=out, **kwargs))


# ---------------------------------------------------------------------------------------------- reading
class ItemGraph:
    """A finished ``simmine items`` output, memory-mapped: edges by item code, and the log's item ids.

    >>> g = simmine.open_items("simmine-items")     # doctest: +SKIP
    >>> src, dst, weight = g.edges()                 # doctest: +SKIP
    >>> items, scores = g.neighbors("B000052YAN")    # doctest: +SKIP
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.manifest = read_manifest(self.path)
        if self.manifest.get("kind") != "items":
            raise InputError(f"{self.path}: not a simmine items output (made by simmine build?)")
        self._edges = self._items = None

    def _open(self):
        if self._edges is None:
            from .io import _ListColumn

            t = map_table(os.path.join(self.path, "edges.arrow"))
            self._edges = (_ListColumn(t.column("neighbors")), _ListColumn(t.column("weights")))
            self._items = map_table(os.path.join(self.path, "items.arrow")).column("item").combine_chunks()

    @property
    def n_items(self) -> int:
        """V: item codes run 1..V (0 is padding)."""
        return int(self.manifest["n_items"])

    def items(self) -> pa.Array:
        """The log's item id of every code (index 0: padding, null)."""
        self._open()
        return self._items

    def codes(self, items) -> np.ndarray:
        """The codes of item ids (vectorised); 0 for an id the log does not hold."""
        import pyarrow.compute as pc

        self._open()
        try:
            query = pa.array(items, type=self._items.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # ids of another type: no such item
            return np.array([int(self.codes([x])[0]) if _fits(x, self._items.type) else 0 for x in items],
                            dtype=np.int64)
        at = pc.index_in(query, value_set=self._items.slice(1))
        return (at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1)

    def csr(self):
        """(offsets [V + 2], neighbour codes, weights): row c's edges are [offsets[c], offsets[c + 1])."""
        self._open()
        offsets, nbr = self._edges[0].gather(np.arange(self.n_items + 1))
        return offsets, nbr, self._edges[1].gather(np.arange(self.n_items + 1))[1]

    def edges(self, codes: bool = False):
        """(src, dst, weight) of every edge, in the log's item ids (codes with ``codes=True``)."""
        offsets, dst, w = self.csr()
        src = np.repeat(np.arange(self.n_items + 1, dtype=np.int64), np.diff(offsets))
        if codes:
            return src, dst.astype(np.int64), w
        ids = self.items()
        return (ids.take(pa.array(src)).to_numpy(zero_copy_only=False),
                ids.take(pa.array(dst.astype(np.int64))).to_numpy(zero_copy_only=False), w)

    def neighbors(self, item, codes: bool = False):
        """(items, scores) of one item (an id as given, or a code with ``codes=True``), best first (score
        descending, then code ascending), the item itself left out."""
        self._open()
        code = int(item) if codes else int(self.codes([item])[0])
        if code <= 0 or code > self.n_items:
            raise KeyError(f"{item!r} is not an item of this log")
        nbr, w = self._edges[0][code], self._edges[1][code]
        keep = nbr != code
        nbr, w = nbr[keep], w[keep]
        if codes:
            return nbr.astype(np.int64), w
        return self.items().take(pa.array(nbr.astype(np.int64))).to_numpy(zero_copy_only=False), w

    def neighbor_table(self, k: Optional[int] = None):
        """([V + 1, k] int64 codes, [V + 1, k] float32 scores): each code's best k neighbours (itself left
        out), 0 and score 0 where it has fewer; row 0 (padding) empty. k defaults to the longest row."""
        offsets, nbr, w = self.csr()
        src = np.repeat(np.arange(self.n_items + 1, dtype=np.int64), np.diff(offsets))
        keep = nbr.astype(np.int64) != src
        src, nbr, w = src[keep], nbr[keep].astype(np.int64), w[keep]
        counts = np.bincount(src, minlength=self.n_items + 1)
        k = int(counts.max(initial=0)) if k is None else int(k)
        rank = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < k
        table = np.zeros((self.n_items + 1, k), dtype=np.int64)
        scores = np.zeros((self.n_items + 1, k), dtype=np.float32)
        table[src[keep], rank[keep]] = nbr[keep]
        scores[src[keep], rank[keep]] = w[keep]
        return table, scores

    def __repr__(self) -> str:
        return f"ItemGraph({self.path!r}, items={self.n_items}, edges={self.manifest['edges']})"


def _fits(value, type_) -> bool:
    try:
        pa.array([value], type=type_)
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False


def open_items(path: str) -> ItemGraph:
    return ItemGraph(path)


def verify_items(out: str, sample: int = 20, seed: int = 0) -> list:
    """Problems found in an items output (empty: it verifies): checksums and rows; then, when the log (and
    the embeddings) it was made from are unchanged, a seeded sample of items' rows recomputed by a slower,
    separate route: the reference backend for --metric, every item scored in float64 for --embeddings, the
    graph assembled again for co-occurrence."""
    from .report import check_files

    m = read_manifest(out)
    problems = check_files(out, m)
    if problems:
        return problems
    config = ItemsConfig.from_dict(m["config"], f"{out}/manifest.json")
    src = m["input"]
    if not src.get("demo") and (not os.path.isfile(src["path"]) or sha256_file(src["path"]) != src["sha256"]):
        return [f"{src['path']}: the log this output read is missing or changed: only checksums were checked"]
    from .pipeline import load_log

    seqs = training_sequences(load_log(config.replace(input=src["path"])).log, config.split)
    n = len(seqs.item_values)
    if config.relation == "cooccurrence":
        edges = normalized(cooccurrence(seqs, config), seqs, config)
    elif config.relation == "users":
        from .backends import get_backend

        edges = user_set_neighbours(seqs, config, get_backend("python"))
    else:
        emb = src.get("embeddings", {})
        if not os.path.isfile(config.embeddings) or sha256_file(config.embeddings) != emb.get("sha256"):
            return [f"{config.embeddings}: the embeddings this output read are missing or changed"]
        vectors = load_item_embeddings(config.embeddings, n)
        edges = _brute_force_neighbours(vectors, config.k, config.similarity,
                                        np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    offsets, neighbors, weights = ranked_rows(edges, n, config.k)
    graph = ItemGraph(out)
    got_off, got_nbr, got_w = graph.csr()
    codes = np.unique(edges.src) + 1 if config.relation == "embeddings" else np.arange(1, n + 1)
    for c in codes.tolist():
        a, b = got_off[c], got_off[c + 1]
        x, y = offsets[c], offsets[c + 1]
        if not (np.array_equal(got_nbr[a:b], neighbors[x:y]) and np.array_equal(got_w[a:b], weights[x:y])):
            problems.append(f"edges.arrow: item code {c}: edges differ from a recomputation")
    return problems


def _brute_force_neighbours(vectors: np.ndarray, k: int, similarity: str, rows: np.ndarray) -> Edges:
    """Exact top k of some items by scoring every item in float64, one item at a time."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    src, dst, out = [], [], []
    for i in np.sort(rows).tolist():
        s = vectors @ vectors[i]
        if similarity == "cosine":
            s = np.where(norms > 0, s / max(norms[i], 1e-300) / np.where(norms > 0, norms, 1.0), 0.0)
            if norms[i] == 0:
                s[:] = 0.0
        s = s.astype(np.float32)
        s[i] = -np.inf
        cols, scores = _best(np.arange(len(s))[None, :], s[None, :], k)
        _keep(src, dst, out, i, cols[0], scores[0])
    return Edges(np.concatenate(src), np.concatenate(dst), np.concatenate(out).astype(np.float64))


def _keep(src, dst, out, i, cols, scores):
    keep = np.isfinite(scores)
    src.append(np.full(int(keep.sum()), i, dtype=np.int64))
    dst.append(cols[keep])
    out.append(scores[keep])


def items_summary(out: str) -> list:
    """What ``simmine items`` prints."""
    m = read_manifest(out)
    p = m["params"]
    if p["relation"] == "cooccurrence":
        how = (f"co-occurrence within {'the whole sequence' if p['window'] == 0 else str(p['window']) + ' positions'}"
               f", {p['count']}, {'directed' if p['directed'] else 'both ways'}, weight {p['weight']}"
               f"{', self-loops' if p['self_loops'] else ''}, normalize {p['normalize']}")
    elif p["relation"] == "users":
        how = f"{p['metric']} of the items' user sets"
    else:
        how = f"{p['similarity']} of the given embeddings"
    source = "built-in demo log" if m["input"].get("demo") else m["input"]["path"]
    return [f"simmine items: {out}",
            f"  input      {source}, split {p['split']}",
            f"  items      {m['n_items']:,} from {m['n_users']:,} users' training sequences",
            f"  edges      {m['edges']:,}: {how}" + (f", top {p['k']} per item" if p["k"] else ""),
            "  elapsed    " + ", ".join(f"{k} {v:.2f}s" for k, v in m["elapsed_s"].items())]
