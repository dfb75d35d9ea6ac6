"""Numba backend: the same scorers as the C++ core, for machines where the extension is not built.

Inverted index with popular-code popcount bitmaps for sets, prefix filtering for set joins >= 0.4,
Cauchy–Schwarz bounds on TF-IDF's popular codes, Myers for short edit rows, best-k heaps. One driver for
rows (select and pairs) and one for histograms handle every feature kind, so the selection logic exists
once; rows are split into chunks, each chunk running in its own thread with its own O(n) scratch.
"""
from __future__ import annotations

import numpy as np

from ..metrics import Tile

name = "numba"
HIST_BINS = 65536
PAIRS_BLOCK_ENTRIES = 1 << 25  # virtual: np.empty touches only the pages written
KIND_SET, KIND_COSINE, KIND_EDIT, KIND_PREFIX = 0, 1, 2, 3
LOW_FLOOR_K = 64  # top-k requests up to this k take a first floor from light-code cosines
KBELOW = 1.0 - 1e-6  # bounds are compared with floor·KBELOW: rounding can only add verifications
PREFIX_MIN_THRESHOLD = 0.4  # as the C++ core: below it, prefix candidates are many and accumulation wins

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is a dependency, but may fail to import on exotic platforms
    numba = None


def available() -> bool:
    return numba is not None


if numba is not None:

    @njit(cache=True, nogil=True, inline="always")
    def _postings_from(pptr, prow, v, j_min):
        """The range of code v's postings holding rows >= j_min (rows ascend within a posting list)."""
        q0 = pptr[v]
        q1 = pptr[v + 1]
        if j_min > 0:
            q0 += np.searchsorted(prow[q0:q1], j_min)
        return q0, q1

    @njit(cache=True, nogil=True)
    def _myers64(la, b, peq):
        one = np.uint64(1)
        top = one << np.uint64(la - 1)
        pv = np.uint64(0xFFFFFFFFFFFFFFFF)
        if la < 64:
            pv = (one << np.uint64(la)) - one
        mv = np.uint64(0)
        score = la
        for t in range(len(b)):
            eq = peq[b[t]]
            xv = eq | mv
            xh = (((eq & pv) + pv) ^ pv) | eq
            ph = mv | ~(xh | pv)
            mh = pv & xh
            if ph & top:
                score += 1
            elif mh & top:
                score -= 1
            ph = (ph << one) | one
            mh = mh << one
            pv = mh | ~(xv | ph)
            mv = ph & xv
        return score

    @njit(cache=True, nogil=True)
    def _edit_dp(a, b, row):
        lb = len(b)
        for j in range(lb + 1):
            row[j] = j
        for i in range(1, len(a) + 1):
            diag = row[0]
            row[0] = i
            for j in range(1, lb + 1):
                up = row[j]
                best = diag + (0 if a[i - 1] == b[j - 1] else 1)
                if up + 1 < best:
                    best = up + 1
                if row[j - 1] + 1 < best:
                    best = row[j - 1] + 1
                row[j] = best
                diag = up
        return row[lb]

    @njit(cache=True, nogil=True)
    def _prefix_row(i, j_min, floor, indptr, idx, fptr, franks, pptr, prow, mark, has, touched, cand_j, cand_s):
        """Prefix filtering for Jaccard >= floor: candidates share a prefix code (rarest codes first), pass
        the size filter, and are verified by counting row j's codes present in row i."""
        nt = 0
        for p in range(fptr[i], fptr[i + 1]):
            r = franks[p]
            q0, q1 = _postings_from(pptr, prow, r, j_min)
            for q in range(q0, q1):
                j = prow[q]
                if mark[j] == 0:
                    mark[j] = 1
                    touched[nt] = j
                    nt += 1
        a = indptr[i + 1] - indptr[i]
        for p in range(indptr[i], indptr[i + 1]):
            has[idx[p]] = 1
        m = 0
        for t in range(nt):
            j = touched[t]
            mark[j] = 0
            if j == i:
                continue
            b = indptr[j + 1] - indptr[j]
            if np.float32(min(a, b) / max(a, b)) < floor:  # size filter: |A∩B| <= min, |A∪B| >= max
                continue
            c = 0
            for p in range(indptr[j], indptr[j + 1]):
                c += np.int64(has[idx[p]])
            s = np.float32(c / (a + b - c)) if c > 0 else np.float32(0.0)
            if s > 0:
                cand_j[m] = j
                cand_s[m] = s
                m += 1
        for p in range(indptr[i], indptr[i + 1]):
            has[idx[p]] = 0
        return m

    @njit(cache=True, nogil=True)
    def _score_row(kind, i, j_min, indptr, idx, w, norms, pptr, prow, pw,
                   acc_i, acc_f, touched, peq, dprow, cand_j, cand_s):
        """Writes (j, s) for every column j >= j_min, j != i, s > 0 into cand_j/cand_s; returns the count."""
        n = len(indptr) - 1
        m = 0
        if kind == KIND_EDIT:
            a = idx[indptr[i]:indptr[i + 1]]
            la = len(a)
            if la <= 64:
                for p in range(la):
                    peq[a[p]] |= np.uint64(1) << np.uint64(p)
            for j in range(j_min, n):
                if j == i:
                    continue
                b = idx[indptr[j]:indptr[j + 1]]
                d = _myers64(la, b, peq) if la <= 64 else _edit_dp(a, b, dprow)
                mx = max(la, len(b))
                s = np.float32(1.0 - d / mx)
                if s > 0:
                    cand_j[m] = j
                    cand_s[m] = s
                    m += 1
            if la <= 64:
                for p in range(la):
                    peq[a[p]] = np.uint64(0)
            return m
        if kind == KIND_COSINE and norms[i] <= 0:
            return 0
        nt = 0
        for p in range(indptr[i], indptr[i + 1]):
            v = idx[p]
            q0, q1 = _postings_from(pptr, prow, v, j_min)
            for q in range(q0, q1):
                j = prow[q]
                if acc_i[j] == 0:
                    touched[nt] = j
                    nt += 1
                acc_i[j] += 1
                if kind == KIND_COSINE:
                    acc_f[j] += w[p] * pw[q]
        size_i = indptr[i + 1] - indptr[i]
        for t in range(nt):
            j = touched[t]
            c = acc_i[j]
            acc_i[j] = 0
            dot = 0.0
            if kind == KIND_COSINE:
                dot = acc_f[j]
                acc_f[j] = 0.0
            if j == i:
                continue
            s = np.float32(0.0)
            if kind == KIND_SET:
                uni = size_i + (indptr[j + 1] - indptr[j]) - c
                if c > 0 and uni > 0:
                    s = np.float32(c / uni)
            elif dot > 0 and norms[j] > 0:
                s = np.float32(min(dot / (norms[i] * norms[j]), 1.0))
            if s > 0:
                cand_j[m] = j
                cand_s[m] = s
                m += 1
        return m

    @njit(cache=True, nogil=True, inline="always")
    def _popcount(x):
        """Set bits of a uint64 (the SWAR idiom, which LLVM turns into one popcnt where the CPU has it)."""
        x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
        x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
        x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
        return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))

    @njit(cache=True, nogil=True)
    def _bitmap_set_row(i, j_min, indptr, idx, pptr, prow, bits, dense_code, words, acc_i, cand_j, cand_s):
        """Sets with popular-code bitmaps (as the C++ core): intersections count the rarer codes through
        the postings and the popular ones by popcount of the rows' bitmaps, for every column j >= j_min."""
        n = len(indptr) - 1
        for p in range(indptr[i], indptr[i + 1]):
            v = idx[p]
            if dense_code[v]:
                continue
            q0, q1 = _postings_from(pptr, prow, v, j_min)
            for q in range(q0, q1):
                acc_i[prow[q]] += 1
        size_i = indptr[i + 1] - indptr[i]
        bi = i * words
        m = 0
        for j in range(j_min, n):
            c = np.int64(acc_i[j])
            acc_i[j] = 0
            bj = j * words
            for t in range(words):
                c += _popcount(bits[bi + t] & bits[bj + t])
            if c == 0 or j == i:
                continue
            cand_j[m] = j
            cand_s[m] = np.float32(c / (size_i + (indptr[j + 1] - indptr[j]) - c))
            m += 1
        return m

    @njit(cache=True, nogil=True)
    def _row(kind, i, j_min, floor, indptr, idx, w, norms, pptr, prow, pw, prefix, dense, scratch):
        """Candidates of row i (columns >= j_min, s > 0) into the scratch's cand_j/cand_s; returns the count.
        KIND_PREFIX (sets, floor >= PREFIX_MIN_THRESHOLD) finds them by prefix filtering, the others score
        every column sharing a code (or, for edit, every column); sets with bitmaps (dense words > 0) add
        popcounts of their popular codes."""
        acc_i, acc_f, touched, peq, dprow, cand_j, cand_s = scratch[:7]
        bits, dense_code, words = dense
        if kind == KIND_SET and words > 0:
            return _bitmap_set_row(i, j_min, indptr, idx, pptr, prow, bits, dense_code, words, acc_i, cand_j,
                                   cand_s)
        if kind == KIND_PREFIX:
            fptr, franks, fpost_ptr, fpost_rows = prefix
            return _prefix_row(i, j_min, floor, indptr, idx, fptr, franks, fpost_ptr, fpost_rows, acc_i, peq,
                               touched, cand_j, cand_s)
        return _score_row(kind, i, j_min, indptr, idx, w, norms, pptr, prow, pw,
                          acc_i, acc_f, touched, peq, dprow, cand_j, cand_s)

    @njit(cache=True, nogil=True, inline="always")
    def _worse(s1, j1, s2, j2):
        """(s1, j1) comes after (s2, j2) in the order score descending, column ascending."""
        return s1 < s2 or (s1 == s2 and j1 > j2)

    @njit(cache=True, nogil=True)
    def _sift_down(hs, hj, pos, size, s, j):
        """Places (s, j) at pos of the worst-first heap hs/hj[:size], moving better children up."""
        while True:
            child = 2 * pos + 1
            if child >= size:
                break
            if child + 1 < size and _worse(hs[child + 1], hj[child + 1], hs[child], hj[child]):
                child += 1
            if not _worse(hs[child], hj[child], s, j):
                break
            hs[pos] = hs[child]
            hj[pos] = hj[child]
            pos = child
        hs[pos] = s
        hj[pos] = j

    @njit(cache=True, nogil=True, inline="always")
    def _heap_push(hs, hj, size, k, s, j):
        """Offers (s, j) to the worst-first heap hs/hj[:size] of the k best so far; returns its new size.
        A candidate not better than the root (the k-th best) is dropped on arrival."""
        if size < k:
            pos = size
            while pos > 0:
                parent = (pos - 1) >> 1
                if not _worse(s, j, hs[parent], hj[parent]):
                    break
                hs[pos] = hs[parent]
                hj[pos] = hj[parent]
                pos = parent
            hs[pos] = s
            hj[pos] = j
            return size + 1
        if _worse(hs[0], hj[0], s, j):
            _sift_down(hs, hj, 0, size, s, j)
        return size

    @njit(cache=True, nogil=True)
    def _heap_sort(hs, hj, size):
        """Sorts a worst-first heap in place into score descending, column ascending."""
        for end in range(size - 1, 0, -1):  # pop the worst to the back
            ws, wj = hs[0], hj[0]
            _sift_down(hs, hj, 0, end, hs[end], hj[end])
            hs[end] = ws
            hj[end] = wj
        return size

    @njit(cache=True, nogil=True)
    def _take_best(cand_j, cand_s, m, k, out_col, out_score):
        """Best min(k, m) candidates in the order score descending, column ascending, through a heap of
        the k best so far, then sorted in place."""
        if k <= 0 or m == 0:
            return 0
        hs, hj = out_score, out_col
        size = 0
        for t in range(m):
            s, j = cand_s[t], cand_j[t]
            if size == k and not _worse(hs[0], hj[0], s, j):
                continue  # not better than the k-th best so far: the common case, decided here
            size = _heap_push(hs, hj, size, k, s, j)
        return _heap_sort(hs, hj, size)

    @njit(cache=True, nogil=True)
    def _bounded_cosine(i, j_min, k, ranked, min_score, indptr, idx, w, norms, pptr, prow, pw, bounds, acc_f, mark,
                        touched, table, cand_j, cand_ub, hs, hj, ex_lo, ex_hi):
        """Top-k TF-IDF with bounds (as the C++ core's bounded path): only light codes are accumulated; a pair
        is verified exactly only if its light part + its heavy part (screened first by h_i·h_j,
        Cauchy–Schwarz) reaches the k-th best so far, most promising first; pairs sharing no light code
        are visited by descending h_j until h_i·h_j falls below it, their heavy part being their exact dot.
        Columns j >= j_min; ``ranked`` (top-k) verifies the k best bounds first, a threshold join (k = every
        column) needs no ranking. Writes the heap hs/hj, sorted."""
        heavy, heavy_norm, inv_norms, by_heavy, heavy_ptr, heavy_idx, heavy_w, _ = bounds
        ni = norms[i]
        if ni <= 0 or k <= 0:
            return 0
        nt = 0
        for p in range(indptr[i], indptr[i + 1]):
            v = idx[p]
            table[v] = w[p]
            if heavy[v]:
                continue
            q0, q1 = _postings_from(pptr, prow, v, j_min)
            for q in range(q0, q1):
                j = prow[q]
                if mark[j] == 0:
                    mark[j] = 1
                    touched[nt] = j
                    nt += 1
                acc_f[j] += w[p] * pw[q]
        hi = heavy_norm[i] * (1.0 + 1e-9)
        inv_i = inv_norms[i]
        # light codes alone bound each cosine from below; the k-th largest of those bounds the k-th best
        # score, so a candidate whose upper bound is under it is never kept (acc_f[j] becomes that cosine)
        low_floor = ranked and k <= LOW_FLOOR_K
        push_floor = KBELOW * min_score
        if low_floor:
            low_s = np.empty(k, np.float64)
            low_j = np.empty(k, np.int64)
            nl = 0
            for t in range(nt):
                j = touched[t]
                if (j < ex_lo or j >= ex_hi) and norms[j] > 0:
                    acc_f[j] = acc_f[j] / (ni * norms[j])
                    nl = _heap_push(low_s, low_j, nl, k, acc_f[j], j)
            if nl == k:
                push_floor = max(push_floor, KBELOW * low_s[0])
        nc = 0
        for t in range(nt):
            j = touched[t]
            if (j < ex_lo or j >= ex_hi) and norms[j] > 0:
                light = (acc_f[j] if low_floor else acc_f[j] / (ni * norms[j])) * (1.0 + 1e-9)
                if light + hi * heavy_norm[j] >= push_floor:
                    dot = _table_dot(j, table, heavy_ptr, heavy_idx, heavy_w)
                    ub = light + dot * inv_i * inv_norms[j] * (1.0 + 1e-9)
                    if ub >= push_floor:
                        cand_j[nc] = j
                        cand_ub[nc] = ub
                        nc += 1
            acc_f[j] = 0.0
        size = 0
        first = min(k, nc) if ranked else 0
        if first > 0:  # the most promising first, to raise the floor before the rest is filtered
            top_ub = np.empty(first, np.float64)
            top = np.empty(first, np.int64)
            kept = 0
            for t in range(nc):  # the `first` largest bounds, by a heap like the selection's
                kept = _heap_push(top_ub, top, kept, first, cand_ub[t], t)
            for t in top[:kept]:
                j = cand_j[t]
                s = _cosine_with_table(j, table, indptr, idx, w, ni, norms[j])
                if s > 0 and s >= min_score:
                    size = _heap_push(hs, hj, size, k, s, j)
                cand_ub[t] = -1.0
        for t in range(nc):
            floor = max(KBELOW * (hs[0] if size == k else min_score), push_floor)
            if cand_ub[t] >= floor:
                j = cand_j[t]
                s = _cosine_with_table(j, table, indptr, idx, w, ni, norms[j])
                if s > 0 and s >= min_score:
                    size = _heap_push(hs, hj, size, k, s, j)
        for t in range(len(by_heavy)):
            floor = max(KBELOW * (hs[0] if size == k else min_score), push_floor)
            j = by_heavy[t]
            if hi * heavy_norm[j] < floor:
                break
            if j >= j_min and (j < ex_lo or j >= ex_hi) and mark[j] == 0 and norms[j] > 0:
                s = _cosine_from_dot(_table_dot(j, table, heavy_ptr, heavy_idx, heavy_w), ni, norms[j])
                if s > 0 and s >= min_score:
                    size = _heap_push(hs, hj, size, k, s, j)
        for t in range(nt):
            mark[touched[t]] = 0
        for p in range(indptr[i], indptr[i + 1]):
            table[idx[p]] = 0.0
        return _heap_sort(hs, hj, size)

    @njit(cache=True, nogil=True, inline="always")
    def _cosine_with_table(j, table, indptr, idx, w, ni, nj):
        """Exact cosine of row i (spread in table) with row j."""
        return _cosine_from_dot(_table_dot(j, table, indptr, idx, w), ni, nj)

    @njit(cache=True, nogil=True, inline="always")
    def _table_dot(j, table, indptr, idx, w):
        """Row i (spread in table) against row j of the CSR (indptr, idx, w): products added in ascending code
        order of j, non-common codes adding an exact 0.0, so the sum rounds as the accumulation does. On the
        heavy lists it is the dot with row j's heavy part."""
        dot = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            dot += table[idx[p]] * w[p]
        return dot

    @njit(cache=True, nogil=True, inline="always")
    def _cosine_from_dot(dot, ni, nj):
        if dot <= 0 or ni <= 0 or nj <= 0:
            return np.float32(0.0)
        return np.float32(min(dot / (ni * nj), 1.0))

    @njit(cache=True, nogil=True)
    def _scratch(kind, n, vocab, max_len):
        """One thread's O(n) scratch: accumulators (or marks), touched list, Myers table (or the prefix
        filter's code table), DP row, candidates; for cosine, the row's weight table and upper bounds."""
        return (np.zeros(n, np.int32), np.zeros(n if kind == KIND_COSINE else 1, np.float64),
                np.empty(n, np.int32), np.zeros(vocab if kind in (KIND_EDIT, KIND_PREFIX) else 1, np.uint64),
                np.empty(max_len + 1, np.int64), np.empty(n, np.int32), np.empty(n, np.float32),
                np.zeros(vocab if kind == KIND_COSINE else 1, np.float64),
                np.empty(n if kind == KIND_COSINE else 1, np.float64))

    @njit(cache=True, parallel=True)
    def _mine_rows(kind, indptr, idx, w, norms, pptr, prow, pw, vocab, max_len, prefix, dense, bounds, excl,
                   rows, out_off, min_score, upper, nchunks, out_col, out_score, out_count):
        """Row r's results at out_off[r], out_count[r] of them, columns not excluded (excl = per-row runs
        lo, hi) with s > 0 and s >= min_score:
        upper=False (select): the best out_off[r+1] − out_off[r], score descending then column ascending;
        upper=True (pairs): every column j > rows[r], unsorted."""
        n = len(indptr) - 1
        nrows = len(rows)
        for c in prange(nchunks):
            lo = c * nrows // nchunks
            hi = (c + 1) * nrows // nchunks
            scratch = _scratch(kind, n, vocab, max_len)
            acc_i, acc_f, touched, _, _, cand_j, cand_s, table, cand_ub = scratch
            has_bounds = bounds[-1]
            for r in range(lo, hi):
                i = rows[r]
                j_min = i + 1 if upper else 0
                o = out_off[r]
                k = out_off[r + 1] - o
                ex_lo, ex_hi = excl[0][i], excl[1][i]
                if kind == KIND_COSINE and has_bounds and (min_score >= 0.1 or (not upper and k * 64 <= n)):
                    out_count[r] = _bounded_cosine(i, j_min, k, not upper, min_score, indptr, idx, w, norms, pptr,
                                                   prow, pw, bounds, acc_f, acc_i, touched, table, cand_j, cand_ub,
                                                   out_score[o:o + k], out_col[o:o + k], ex_lo, ex_hi)
                    continue
                m = _row(kind, i, j_min, min_score, indptr, idx, w, norms, pptr, prow, pw, prefix, dense, scratch)
                kept = 0
                for t in range(m):  # pairs go straight to the output, a selection to its heap
                    if cand_s[t] >= min_score and (cand_j[t] < ex_lo or cand_j[t] >= ex_hi):
                        if upper:
                            out_col[o + kept] = cand_j[t]
                            out_score[o + kept] = cand_s[t]
                        else:
                            cand_j[kept] = cand_j[t]
                            cand_s[kept] = cand_s[t]
                        kept += 1
                out_count[r] = kept if upper else _take_best(cand_j, cand_s, kept, k, out_col[o:o + k],
                                                             out_score[o:o + k])

    @njit(cache=True, parallel=True)
    def _histogram(kind, indptr, idx, w, norms, pptr, prow, pw, vocab, max_len, prefix, dense, excl, rows,
                   bits_prefix, nchunks):
        n = len(indptr) - 1
        nrows = len(rows)
        hist = np.zeros((nchunks, HIST_BINS), np.int64)
        for c in prange(nchunks):
            lo = c * nrows // nchunks
            hi = (c + 1) * nrows // nchunks
            scratch = _scratch(kind, n, vocab, max_len)
            cand_s = scratch[6]
            for r in range(lo, hi):
                i = rows[r]
                m = _row(kind, i, i + 1, np.float32(0.0), indptr, idx, w, norms, pptr, prow, pw, prefix, dense,
                         scratch)
                bits = cand_s[:m].view(np.uint32)
                cand_j = scratch[5]
                for t in range(m):
                    if cand_j[t] >= excl[0][i] and cand_j[t] < excl[1][i]:
                        continue
                    b = bits[t]
                    if bits_prefix < 0:
                        hist[c, b >> 16] += 1
                    elif (b >> 16) == bits_prefix:
                        hist[c, b & 0xFFFF] += 1
        return hist.sum(axis=0)


if numba is not None:

    @njit(cache=True, nogil=True)
    def _pair_score(kind, i, j, indptr, idx, w, norms, dprow):
        a0, a1, b0, b1 = indptr[i], indptr[i + 1], indptr[j], indptr[j + 1]
        if kind == KIND_EDIT:
            d = _edit_dp(idx[a0:a1], idx[b0:b1], dprow)
            return np.float32(1.0 - d / max(a1 - a0, b1 - b0))
        p, q, c, dot = a0, b0, 0, 0.0
        while p < a1 and q < b1:  # ascending codes: the same summation order as every backend
            if idx[p] < idx[q]:
                p += 1
            elif idx[q] < idx[p]:
                q += 1
            else:
                c += 1
                if kind == KIND_COSINE:
                    dot += w[p] * w[q]
                p += 1
                q += 1
        if kind == KIND_SET:
            uni = (a1 - a0) + (b1 - b0) - c
            return np.float32(c / uni) if c > 0 and uni > 0 else np.float32(0.0)
        if dot <= 0 or norms[i] <= 0 or norms[j] <= 0:
            return np.float32(0.0)
        return np.float32(min(dot / (norms[i] * norms[j]), 1.0))

    @njit(cache=True, parallel=True)
    def _score_pairs(kind, indptr, idx, w, norms, max_len, row_ids, ptr, cols, out):
        for r in prange(len(row_ids)):
            dprow = np.empty(max_len + 1, np.int64)
            for t in range(ptr[r], ptr[r + 1]):
                out[t] = _pair_score(kind, row_ids[r], cols[t], indptr, idx, w, norms, dprow)

    @njit(cache=True, parallel=True)
    def _minhash(indptr, codes, seeds, out):
        n = len(indptr) - 1
        for i in prange(n):
            for q in range(indptr[i], indptr[i + 1]):
                v = np.uint64(codes[q])
                for p in range(len(seeds)):
                    x = (v ^ seeds[p]) + np.uint64(0x9E3779B97F4A7C15)
                    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                    x = x ^ (x >> np.uint64(31))
                    h = np.uint32(x & np.uint64(0xFFFFFFFF))
                    if h < out[i, p]:
                        out[i, p] = h

    @njit(cache=True, nogil=True)
    def _band_anchor(a, run_of, run_ptr, run_members, max_c, count, touched, hist, ex_lo, ex_hi):
        """One anchor's band collisions, as the C++ core: rows sharing a run, counted into ``count``
        (listed in ``touched``); returns (how many touched, the shared-run floor of the kept ones)."""
        bands = run_of.shape[1]
        nt = 0
        for t in range(bands):
            r = run_of[a, t]
            if r < 0:
                continue
            for q in range(run_ptr[r], run_ptr[r + 1]):
                j = run_members[q]
                if j < ex_lo or j >= ex_hi:
                    if count[j] == 0:
                        touched[nt] = j
                        nt += 1
                    count[j] += 1
        floor = 1
        if max_c > 0 and nt > max_c:
            hist[:] = 0
            for x in range(nt):
                hist[count[touched[x]]] += 1
            seen = 0
            for c in range(bands, 0, -1):
                seen += hist[c]
                if seen >= max_c:
                    floor = c
                    break
        return nt, floor

    @njit(cache=True, parallel=True)
    def _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, out_nbr,
                         out_shared, out_ptr, fill):
        """Pass 1 (fill False) counts each anchor's kept rows into ``kept``; pass 2 writes them at out_ptr."""
        m, bands = run_of.shape
        na = len(anchors)
        for c in prange(chunks):
            count = np.zeros(m, np.int32)
            touched = np.empty(m, np.int32)
            hist = np.zeros(bands + 1, np.int64)
            shared = np.empty(m, np.int32)  # the kept rows' counts
            for x in range(c * na // chunks, (c + 1) * na // chunks):
                a = anchors[x]
                nt, floor = _band_anchor(a, run_of, run_ptr, run_members, max_candidates[x], count, touched, hist,
                                         excl[0][a], excl[1][a])
                w = 0  # keep and reset in one pass; only the kept rows are sorted, and only when written
                for y in range(nt):
                    j = touched[y]
                    if count[j] >= floor:
                        touched[w] = j
                        shared[w] = count[j]
                        w += 1
                    count[j] = 0
                kept[x] = w
                if fill:
                    order = np.argsort(touched[:w])
                    for y in range(w):
                        out_nbr[out_ptr[x] + y] = touched[order[y]]
                        out_shared[out_ptr[x] + y] = shared[order[y]]


def band_candidates(run_of: np.ndarray, run_ptr: np.ndarray, run_members: np.ndarray, anchors: np.ndarray,
                    max_candidates: np.ndarray, excluded=None):
    run_of = np.ascontiguousarray(run_of, dtype=np.int32)
    run_ptr = np.ascontiguousarray(run_ptr, dtype=np.int64)
    run_members = np.ascontiguousarray(run_members, dtype=np.int32)
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    max_candidates = np.ascontiguousarray(max_candidates, dtype=np.int64)
    na = len(anchors)
    chunks = max(1, min(na, 4 * numba.get_num_threads()))
    kept = np.zeros(na, np.int64)
    ptr = np.zeros(na + 1, np.int64)
    empty = np.zeros(0, np.int32)
    excl = _runs(run_of.shape[0], excluded)
    _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, empty, empty, ptr,
                     False)
    np.cumsum(kept, out=ptr[1:])
    nbr = np.empty(ptr[-1], np.int32)
    shared = np.empty(ptr[-1], np.int32)
    _band_candidates(run_of, run_ptr, run_members, anchors, max_candidates, excl, chunks, kept, nbr, shared, ptr,
                     True)
    return ptr, nbr, shared


def score_pairs(tile: Tile, row_ids: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    kind, indptr, idx, w, norms, _, _, _, _, max_len, _, _ = _args(tile)
    out = np.zeros(len(cols), np.float32)
    if len(cols):
        _score_pairs(kind, indptr, idx, w, norms, max_len, np.ascontiguousarray(row_ids, dtype=np.int64),
                     np.ascontiguousarray(ptr, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64), out)
    return out


def minhash(indptr: np.ndarray, codes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    from ..approx.minhash import perm_seeds

    out = np.full((len(indptr) - 1, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    _minhash(np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(codes, dtype=np.int64),
             perm_seeds(num_perm, seed), out)
    return out


_NO_PREFIX = (np.zeros(1, np.int64), np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.int32))
_NO_DENSE = (np.zeros(1, np.uint64), np.zeros(1, np.uint8), np.int64(0))


def _args(tile: Tile, min_score: float = 0.0):
    """The kernels' arguments: kind, CSR, weights, postings, vocab, longest row, prefix-filter index."""
    kind = {"set": KIND_SET, "cosine": KIND_COSINE, "edit": KIND_EDIT}[tile.kind]
    prefix = _NO_PREFIX
    if kind == KIND_SET and min_score >= PREFIX_MIN_THRESHOLD:
        kind = KIND_PREFIX
        f = tile.prefix(float(np.float32(min_score)))
        prefix = (np.ascontiguousarray(f["prefix_ptr"], dtype=np.int64),
                  np.ascontiguousarray(f["prefix_ranks"], dtype=np.int32),
                  np.ascontiguousarray(f["prefix_post_ptr"], dtype=np.int64),
                  np.ascontiguousarray(f["prefix_post_rows"], dtype=np.int32))
    f64 = np.zeros(1, np.float64)
    i64 = np.zeros(1, np.int64)
    i32 = np.zeros(1, np.int32)
    lengths = np.diff(tile.indptr)
    dense = _NO_DENSE
    if kind == KIND_SET and tile.dense_words:
        dense = (np.ascontiguousarray(tile.dense_bits, dtype=np.uint64),
                 np.ascontiguousarray(tile.dense_code, dtype=np.uint8), np.int64(tile.dense_words))
    return (kind, tile.indptr, tile.indices,
            tile.weights if tile.weights is not None else f64,
            tile.norms if tile.norms is not None else f64,
            tile.post_ptr if tile.post_ptr is not None else i64,
            tile.post_rows if tile.post_rows is not None else i32,
            tile.post_weights if tile.post_weights is not None else f64,
            max(tile.vocab, 1), int(lengths.max()) if len(lengths) else 0, prefix, dense)


_NO_BOUNDS = (np.zeros(1, np.uint8), np.zeros(1, np.float64), np.zeros(1, np.float64), np.zeros(1, np.int32),
              np.zeros(2, np.int64), np.zeros(1, np.int32), np.zeros(1, np.float64), False)


def _bounds(tile: Tile):
    """TF-IDF's heavy-code bounds (Tile.add_heavy_bounds), when the tile has them."""
    if tile.kind != "cosine" or tile.heavy is None:
        return _NO_BOUNDS
    f64, i32 = np.float64, np.int32
    return (np.ascontiguousarray(tile.heavy, dtype=np.uint8), np.ascontiguousarray(tile.heavy_norm, dtype=f64),
            np.ascontiguousarray(tile.inv_norms, dtype=f64), np.ascontiguousarray(tile.by_heavy, dtype=i32),
            np.ascontiguousarray(tile.heavy_ptr, dtype=np.int64), np.ascontiguousarray(tile.heavy_idx, dtype=i32),
            np.ascontiguousarray(tile.heavy_w, dtype=f64), True)


def _runs(n: int, excluded):
    """(lo, hi) int32 per row: the rows it never pairs with (itself without same-user exclusion)."""
    if excluded is None or excluded[0] is None:
        own = np.arange(n, dtype=np.int32)
        return own, own + 1
    return np.ascontiguousarray(excluded[0], dtype=np.int32), np.ascontiguousarray(excluded[1], dtype=np.int32)


def _excluded(tile: Tile):
    return _runs(tile.n, (tile.ex_lo, tile.ex_hi))


def _nchunks(nrows: int) -> int:
    return max(1, min(nrows, numba.get_num_threads() * 8))


def _compact(off: np.ndarray, counts: np.ndarray, *arrays):
    """The first counts[r] entries of each row's slot [off[r], off[r+1]), concatenated."""
    keep = np.repeat(np.arange(len(counts)), counts) if counts.sum() else np.zeros(0, np.int64)
    pos = off[keep] + (np.arange(len(keep)) - np.repeat(np.cumsum(counts) - counts, counts))
    return (keep,) + tuple(a[pos] for a in arrays)


def select(tile: Tile, rows: np.ndarray, k_row: np.ndarray, min_score: float):
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cap = np.clip(np.asarray(k_row, dtype=np.int64), 0, max(tile.n - 1, 0))
    off = np.concatenate(([0], np.cumsum(cap))).astype(np.int64)
    out_col = np.empty(off[-1], np.int32)
    out_score = np.empty(off[-1], np.float32)
    counts = np.zeros(len(rows), np.int64)
    if len(rows):
        _mine_rows(*_args(tile, min_score), _bounds(tile), _excluded(tile), rows, off, np.float32(min_score), False,
                   _nchunks(len(rows)), out_col, out_score, counts)
    _, cols, scores = _compact(off, counts, out_col, out_score)
    return counts, cols, scores


def pairs(tile: Tile, rows: np.ndarray, min_score: float):
    """Threshold join: every (i, j > i) with s > 0 and s >= min_score, in row blocks whose worst-case
    output (n − 1 − i per row) stays under PAIRS_BLOCK_ENTRIES."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    args = _args(tile, min_score)
    cap = np.maximum(tile.n - 1 - rows, 0)
    parts = []
    start = 0
    while start < len(rows):
        csum = np.cumsum(cap[start:])
        stop = start + max(1, int(np.searchsorted(csum, PAIRS_BLOCK_ENTRIES, side="right")))
        sub = rows[start:stop]
        off = np.concatenate(([0], np.cumsum(cap[start:stop]))).astype(np.int64)
        out_col = np.empty(off[-1], np.int32)
        out_score = np.empty(off[-1], np.float32)
        counts = np.zeros(len(sub), np.int64)
        _mine_rows(*args, _bounds(tile), _excluded(tile), sub, off, np.float32(min_score), True, _nchunks(len(sub)),
                   out_col, out_score, counts)
        keep, cols, scores = _compact(off, counts, out_col, out_score)
        parts.append((sub[keep].astype(np.int32), cols, scores))
        start = stop
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return tuple(np.concatenate(p) for p in zip(*parts))


def histogram(tile: Tile, rows: np.ndarray, prefix: int) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros(HIST_BINS, np.int64)
    return _histogram(*_args(tile), _excluded(tile), rows, int(prefix), _nchunks(len(rows)))


def set_num_threads(n: int) -> None:
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
