"""The peers users would otherwise pick, each fed the same anchors as simmine, timed on prebuilt inputs.

Every function returns per-anchor (neighbours, scores) lists or a pair set, in simmine's conventions
(s > 0, self excluded), so results can be compared before any time is quoted.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp


def binary_csr(seqs_indptr, items, n_items):
    """N × V 0/1 matrix of the unique items of every history."""
    n = len(seqs_indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(seqs_indptr))
    x = sp.csr_matrix((np.ones(len(items), np.float32), (rows, items)), shape=(n, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def tfidf_csr(seqs_indptr, items, n_items):
    """N × V L2-normalised tf·ln(N/df) rows (simmine's definition)."""
    n = len(seqs_indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(seqs_indptr))
    tf = sp.csr_matrix((np.ones(len(items), np.float64), (rows, items)), shape=(n, n_items))
    tf.sum_duplicates()
    df = np.bincount(tf.indices, minlength=n_items)
    idf = np.log(n / np.maximum(df, 1))
    w = tf.multiply(idf[np.newaxis, :]).tocsr()
    w.eliminate_zeros()
    norms = np.sqrt(np.asarray(w.multiply(w).sum(axis=1)).ravel())
    norms[norms == 0] = 1
    return sp.csr_matrix(sp.diags(1 / norms) @ w)


def _topk_dense(block, row0, k):
    """Top-k per row of a dense score block, s > 0, self excluded, (score desc, column asc)."""
    out = []
    for r in range(block.shape[0]):
        s = block[r]
        s[row0 + r] = 0
        cand = np.flatnonzero(s > 0)
        if len(cand) > k:
            part = cand[np.argpartition(-s[cand], k - 1)[:k]]
            kth = s[part].min()
            cand = cand[s[cand] >= kth]
        order = np.lexsort((cand, -s[cand]))[:k]
        out.append((cand[order], s[cand[order]].astype(np.float32)))
    return out


def scipy_jaccard_topk(x, k, chunk=1000):
    """What users write by hand: X·Xᵀ in row chunks, Jaccard from counts, argpartition."""
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsr()
    out = []
    for lo in range(0, x.shape[0], chunk):
        inter = (x[lo:lo + chunk] @ xt).toarray()
        union = sizes[lo:lo + chunk, None] + sizes[None, :] - inter
        jac = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
        out.extend(_topk_dense(jac, lo, k))
    return out


def setsimilaritysearch_pairs(sets, threshold):
    """Exact AllPairs threshold join; unordered pairs (i < j)."""
    from SetSimilaritySearch import all_pairs

    return {(min(a, b), max(a, b)) for a, b, _ in all_pairs(sets, similarity_func_name="jaccard",
                                                            similarity_threshold=threshold)}


def sparse_dot_topn_tfidf(w, k, threads=2):
    """sparse_dot_topn's sp_matmul_topn on L2-normalised TF-IDF rows (self removed afterwards)."""
    from sparse_dot_topn import sp_matmul_topn

    c = sp_matmul_topn(w, w.T.tocsr(), top_n=k + 1, sort=True, n_threads=threads)
    return _rows_topk(c, k)


def implicit_tfidf(w, k, threads=2):
    """implicit's all_pairs_knn (the item-item kernel of its nearest-neighbour models): given a user × item
    matrix it pairs the columns, so it gets the transposed rows and pairs the anchors."""
    from implicit.nearest_neighbours import all_pairs_knn

    return _rows_topk(all_pairs_knn(w.T.tocsr(), K=k + 1, num_threads=threads, show_progress=False).tocsr(), k)


def _rows_topk(c, k):
    """Each row's top-k of a sparse score matrix: self removed, (score desc, column asc)."""
    out = []
    for i in range(c.shape[0]):
        cols = c.indices[c.indptr[i]:c.indptr[i + 1]]
        vals = c.data[c.indptr[i]:c.indptr[i + 1]]
        keep = (cols != i) & (vals > 0)
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:k]
        out.append((cols[order], vals[order].astype(np.float32)))
    return out


def rapidfuzz_levenshtein_topk(seqs, k, workers=2, chunk=1000):
    """rapidfuzz process.cdist with normalized Levenshtein similarity, chunked, then argpartition."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    out = []
    for lo in range(0, len(seqs), chunk):
        block = process.cdist(seqs[lo:lo + chunk], seqs, scorer=Levenshtein.normalized_similarity,
                              workers=workers, dtype=np.float32)
        out.extend(_topk_dense(block, lo, k))
    return out


def timed(fn, *args, **kw):
    t = time.perf_counter()
    result = fn(*args, **kw)
    return result, time.perf_counter() - t
