"""The Numba backend's per-row scorers (the C++ core's twins): postings walks, Myers and the edit DP, the
prefix filter, popcount bitmaps, bounded TF-IDF, best-k heaps with the project's tie rule (score descending,
then column ascending), and each thread's scratch. The row drivers are in numba_.py."""
from __future__ import annotations

import numpy as np

KIND_SET, KIND_COSINE, KIND_EDIT, KIND_PREFIX = 0, 1, 2, 3
LOW_FLOOR_K = 64  # top-k requests up to this k take a first floor from light-code cosines
KBELOW = 1.0 - 1e-6  # bounds are compared with floor·KBELOW: rounding can only add verifications

try:
    import numba
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency, but may fail to import on exotic platforms
    numba = None

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
    def edit_dp(a, b, row):
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
                d = _myers64(la, b, peq) if la <= 64 else edit_dp(a, b, dprow)
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
    def row_candidates(kind, i, j_min, floor, indptr, idx, w, norms, pptr, prow, pw, prefix, dense, scratch):
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
    def take_best(cand_j, cand_s, m, k, out_col, out_score):
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
    def bounded_cosine(i, j_min, k, ranked, min_score, indptr, idx, w, norms, pptr, prow, pw, bounds, acc_f, mark,
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
        size = _verify_candidates(nc, k, ranked, min_score, push_floor, cand_j, cand_ub, table, indptr, idx, w, ni,
                                  norms, hs, hj)
        size = _heavy_only(size, j_min, k, min_score, push_floor, hi, bounds, table, mark, norms, ni, hs, hj, ex_lo,
                           ex_hi)
        for t in range(nt):
            mark[touched[t]] = 0
        for p in range(indptr[i], indptr[i + 1]):
            table[idx[p]] = 0.0
        return _heap_sort(hs, hj, size)

    @njit(cache=True, nogil=True, inline="always")
    def _verify_candidates(nc, k, ranked, min_score, push_floor, cand_j, cand_ub, table, indptr, idx, w, ni, norms,
                           hs, hj):
        """bounded_cosine's candidates verified exactly into the heap hs/hj (its size returned): for a top-k
        request the k best bounds first, to raise the floor before the rest is filtered."""
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
        return size

    @njit(cache=True, nogil=True, inline="always")
    def _heavy_only(size, j_min, k, min_score, push_floor, hi, bounds, table, mark, norms, ni, hs, hj, ex_lo, ex_hi):
        """bounded_cosine's pairs sharing no light code (unmarked), by descending h_j until h_i·h_j falls below
        the floor: their heavy part is their exact dot. Returns the heap's size."""
        heavy, heavy_norm, inv_norms, by_heavy, heavy_ptr, heavy_idx, heavy_w, _ = bounds
        for t in range(len(by_heavy)):
            floor = max(KBELOW * (hs[0] if size == k else min_score), push_floor)
            j = by_heavy[t]
            if hi * heavy_norm[j] < floor:
                break
            if j >= j_min and (j < ex_lo or j >= ex_hi) and mark[j] == 0 and norms[j] > 0:
                s = _cosine_from_dot(_table_dot(j, table, heavy_ptr, heavy_idx, heavy_w), ni, norms[j])
                if s > 0 and s >= min_score:
                    size = _heap_push(hs, hj, size, k, s, j)
        return size

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
    def thread_scratch(kind, n, vocab, max_len):
        """One thread's O(n) scratch: accumulators (or marks), touched list, Myers table (or the prefix
        filter's code table), DP row, candidates; for cosine, the row's weight table and upper bounds."""
        return (np.zeros(n, np.int32), np.zeros(n if kind == KIND_COSINE else 1, np.float64),
                np.empty(n, np.int32), np.zeros(vocab if kind in (KIND_EDIT, KIND_PREFIX) else 1, np.uint64),
                np.empty(max_len + 1, np.int64), np.empty(n, np.int32), np.empty(n, np.float32),
                np.zeros(vocab if kind == KIND_COSINE else 1, np.float64),
                np.empty(n if kind == KIND_COSINE else 1, np.float64))
