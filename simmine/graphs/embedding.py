"""Item top-k by given item embeddings (SRA-CL's text neighbours), exact: an approximate screen proposes
candidates and only they are rescored in float64 (docs/items.md)."""
from __future__ import annotations

import numpy as np

from .. import _native
from ..csr import best_first, best_k_per_row
from ..errors import InputError
from ..vectors import finite_vectors, read_vectors
from .cooccurrence import Edges

EMBED_BLOCK_VALUES = 1 << 24  # scores of one block of embedding rows (float32): 64 MB


EMBED_EXTRA = 16              # candidates beyond k per row from the float32 GEMM, rescored exactly


EMBED_MOST = 8192             # a row with more bfloat16 candidates than this takes the float32 GEMM route


def load_item_embeddings(path: str, n: int) -> np.ndarray:
    """--embeddings: [V, d] (row r for code r + 1) or [V + 1, d] (row 0 for padding, dropped)."""
    v = read_vectors(path, "items")
    if v.shape[0] not in (n, n + 1):
        raise InputError(f"{path}: {v.shape[0]} rows, but the log has {n} items (one row per item in sorted order "
                         f"of the item ids, or {n + 1} with a padding row first)")
    padding = v.shape[0] - n
    finite_vectors(path, v[:padding])  # the padding row is never read, but a NaN there is still bad input
    return finite_vectors(path, v[padding:], first_row=padding, keep_float32=True)


def embedding_neighbours(vectors: np.ndarray, k: int, similarity: str) -> Edges:
    """Each item's exact top k by cosine (or dot) of its vector, itself excluded, score desc then code asc.

    A score is the float64 dot product (divided by both norms for cosine; a zero vector scores 0), rounded
    to float32 once. An approximate pass proposes candidates and only they are rescored exactly: where the
    CPU has AMX tiles or AVX-512 BF16, a bfloat16 pass that keeps every item within twice its error bound of a
    row's k-th approximate score (so no item of the exact top k can be missed); elsewhere a float32 GEMM's best
    k + EMBED_EXTRA per row, a row being kept only if no other item can reach its k-th score (the GEMM's
    error bound), and rescored against every item otherwise."""

    n, d = vectors.shape
    if vectors.dtype == np.float64:
        as_float32 = vectors.astype(np.float32)
        if np.array_equal(as_float32, vectors):  # the same products from half the bytes
            vectors = as_float32
    exact_vectors = np.ascontiguousarray(vectors)
    if _native.available():  # the same float64 sums as the rescoring's, for float32 and float64 rows alike
        every = np.arange(n, dtype=np.int64)
        norms = np.sqrt(_native.core.pair_dots(exact_vectors, every, every))
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

    exact = _exact_scores(vectors, exact_vectors, norms, safe, similarity)
    src, dst, out = [], [], []
    rest = np.arange(n)  # rows for the float32 GEMM route
    if n > 1 and k >= 1 and size.max() < 1e18 and _native.available() and _native.core.embed_screen():
        rest = _screened_rows(fast, size, k, exact, (src, dst, out))
    _gemm_rows(fast, size, rest, k, exact, (src, dst, out))
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    src, dst, out = cat(src, np.int64), cat(dst, np.int64), cat(out, np.float64)
    if len(src) > 1 and np.any(src[1:] < src[:-1]):  # the GEMM route's rows after the others
        order = np.argsort(src, kind="stable")
        src, dst, out = src[order], dst[order], out[order]
    return Edges(src, dst, out, ranked=True)


def _exact_scores(vectors, exact_vectors, norms, safe, similarity):
    """The rescoring: a function giving the float32 scores of the pairs (rows[x], cols[x]) by float64
    arithmetic."""

    def exact(rows, cols):
        if _native.available():  # no gathered copy of the candidates' rows
            dot = _native.core.pair_dots(exact_vectors, np.ascontiguousarray(rows, dtype=np.int64),
                                      np.ascontiguousarray(cols, dtype=np.int64))
        else:
            dot = np.einsum("xd,xd->x", vectors[rows], vectors[cols])
        if similarity == "cosine":
            dot = dot / safe[rows] / safe[cols]
            dot[(norms[rows] == 0) | (norms[cols] == 0)] = 0.0
        return dot.astype(np.float32)

    return exact


def _screened_rows(fast, size, k, exact, parts) -> np.ndarray:
    """The bfloat16 screen's candidates of every row rescored, each row's best k appended to ``parts`` (src,
    dst, scores lists); returns the rows left for the GEMM route (thousands of near-ties in their window)."""
    src, dst, out = parts
    n, d = fast.shape
    # Row r against any column c: with t = bf16(x) and x = t + ρ, x_r·x_c − t_r·t_c = ρ_r·t_c + t_r·ρ_c +
    # ρ_r·ρ_c, bounded by the norms (Cauchy–Schwarz); AMX tiles and vdpbf16ps add float32 sums of d exact
    # products (γ·|t_r|·|t_c|) and flush subnormals (tiny); the exact score differs from x_r·x_c by float32
    # roundings of x and of the score (2^-21 of the norms). Every column's error is below err[r], so
    # no item of the exact top k scores below the k-th approximate score minus 2·err[r].
    rounded, residual = _native.core.bf16_norms(fast)
    gamma = 1.01 * (d + 2) * 2.0 ** -24
    tiny = 2.0 ** -126 * (2 * np.sqrt(d) * size.max() + d) + 1e-30
    err = (residual * rounded.max() + rounded * residual.max() + residual * residual.max()
           + gamma * rounded * rounded.max() + 2.0 ** -21 * size * size.max() + tiny)
    window = np.ascontiguousarray(2 * err * (1 + 1e-6), dtype=np.float64)
    ptr, cols, overflow = _native.core.embed_candidates(fast, window, int(k), EMBED_MOST)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    scores = exact(rows, cols)
    order = best_first(rows, cols, scores)  # rows ascending, each by score desc then code asc
    rows, cols, scores = rows[order], cols[order], scores[order]
    keep = np.arange(len(rows)) - ptr[rows] < k
    src.append(rows[keep])
    dst.append(cols[keep])
    out.append(scores[keep])
    return np.flatnonzero(overflow)  # rows with thousands of near-ties in their window


def _gemm_rows(fast, size, rest, k, exact, parts) -> None:
    """Rows ``rest`` by a float32 GEMM's best k + EMBED_EXTRA candidates, rescored; a row is kept only if no
    other item can reach its k-th score (the GEMM's error bound), and rescored against every item otherwise.
    Each row's best k is appended to ``parts`` (src, dst, scores lists)."""
    src, dst, out = parts
    n, d = fast.shape
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
        cols, scores = best_k_per_row(cand, scores, k)
        sure = (scores.shape[1] == k) & (scores[:, -1].astype(np.float64) > bound * (1 + 1e-6) + 1e-30) \
            if width < n - 1 else np.ones(len(rows), dtype=bool)
        for r in np.flatnonzero(~sure).tolist():  # rescored against every item
            others = np.delete(np.arange(n), rows[r])
            c, s = best_k_per_row(others[None, :], exact(np.full(n - 1, rows[r]), others)[None, :], k)
            cols[r], scores[r] = c[0], s[0]
        src.append(np.repeat(rows, cols.shape[1]))
        dst.append(cols.reshape(-1))
        out.append(scores.reshape(-1))


def _dense_topk(scores: np.ndarray, width: int) -> np.ndarray:
    """The columns of each row's ``width`` largest scores (any order): the C++ core's bounded selection, or
    NumPy's partition where the core is not built."""

    if _native.available():
        return _native.core.dense_topk(np.ascontiguousarray(scores, dtype=np.float32), int(width))
    return np.argpartition(-scores, width - 1, axis=1)[:, :width]


def brute_force_neighbours(vectors: np.ndarray, k: int, similarity: str, rows: np.ndarray) -> Edges:
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
        cols, scores = best_k_per_row(np.arange(len(s))[None, :], s[None, :], k)
        _keep(src, dst, out, i, cols[0], scores[0])
    return Edges(np.concatenate(src), np.concatenate(dst), np.concatenate(out).astype(np.float64))


def _keep(src, dst, out, i, cols, scores):
    keep = np.isfinite(scores)
    src.append(np.full(int(keep.sum()), i, dtype=np.int64))
    dst.append(cols[keep])
    out.append(scores[keep])
