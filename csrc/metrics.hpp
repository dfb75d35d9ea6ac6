// Per-pair similarity definitions shared by the C++ extension and the CUDA kernels.
// Every function is host+device (SIMMINE_HD) and computes in double, rounding to float32 once at the end,
// so all backends produce bit-identical scores from the same prepared inputs.
#pragma once
#if defined(__CUDACC_RTC__)  // NVRTC has no standard headers
typedef long long int64_t;
typedef unsigned long long uint64_t;
typedef int int32_t;
typedef unsigned int uint32_t;
#else
#include <cstdint>
#endif

#if defined(__CUDACC__)
#define SIMMINE_HD __host__ __device__ __forceinline__
#else
#define SIMMINE_HD inline
#endif

namespace simmine {

// Jaccard of two sets from their intersection size: |A∩B| / (|A| + |B| − |A∩B|); empty union → 0.
SIMMINE_HD float jaccard_from_counts(int64_t inter, int64_t size_a, int64_t size_b) {
    int64_t uni = size_a + size_b - inter;
    if (uni <= 0 || inter <= 0) return 0.0f;
    return static_cast<float>(static_cast<double>(inter) / static_cast<double>(uni));
}

// Cosine from a dot product and the two norms; a zero vector has similarity 0; clamped to [0, 1].
SIMMINE_HD float cosine_from_dot(double dot, double norm_a, double norm_b) {
    if (norm_a <= 0.0 || norm_b <= 0.0 || dot <= 0.0) return 0.0f;
    double s = dot / (norm_a * norm_b);
    if (s > 1.0) s = 1.0;
    return static_cast<float>(s);
}

// 1 − d / max(|A|, |B|) for an edit distance d.
SIMMINE_HD float levenshtein_from_distance(int64_t dist, int64_t len_a, int64_t len_b) {
    int64_t m = len_a > len_b ? len_a : len_b;
    if (m <= 0) return 0.0f;
    return static_cast<float>(1.0 - static_cast<double>(dist) / static_cast<double>(m));
}

// |A∩B| of two ascending arrays of unique codes (sorted merge).
SIMMINE_HD int64_t sorted_intersection_count(const int32_t* a, int64_t la, const int32_t* b, int64_t lb) {
    int64_t i = 0, j = 0, c = 0;
    while (i < la && j < lb) {
        if (a[i] < b[j]) ++i;
        else if (b[j] < a[i]) ++j;
        else { ++c; ++i; ++j; }
    }
    return c;
}

// Edit distance of a (length la ≤ 64) against b, bit-parallel (Myers 1999, Hyyrö's global variant).
// peq(c) returns the bitmask of positions of symbol c in a.
template <class Peq>
SIMMINE_HD int64_t levenshtein_myers64(int64_t la, const int32_t* b, int64_t lb, const Peq& peq) {
    if (la == 0) return lb;
    const uint64_t top = uint64_t(1) << (la - 1);
    uint64_t pv = (la == 64) ? ~uint64_t(0) : ((uint64_t(1) << la) - 1);
    uint64_t mv = 0;
    int64_t score = la;
    for (int64_t t = 0; t < lb; ++t) {
        const uint64_t eq = peq(b[t]);
        const uint64_t xv = eq | mv;
        const uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
        uint64_t ph = mv | ~(xh | pv);
        uint64_t mh = pv & xh;
        if (ph & top) ++score;
        else if (mh & top) --score;
        ph = (ph << 1) | 1;  // row 0 of the DP grows by one per column: global distance
        mh <<= 1;
        pv = mh | ~(xv | ph);
        mv = ph & xv;
    }
    return score;
}

// Edit distance by the two-row dynamic programme; row is caller scratch of length lb + 1.
SIMMINE_HD int64_t levenshtein_dp(const int32_t* a, int64_t la, const int32_t* b, int64_t lb, int64_t* row) {
    for (int64_t j = 0; j <= lb; ++j) row[j] = j;
    for (int64_t i = 1; i <= la; ++i) {
        int64_t diag = row[0];
        row[0] = i;
        for (int64_t j = 1; j <= lb; ++j) {
            int64_t up = row[j];
            int64_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

}  // namespace simmine
