// Scorers (one anchor row against every column of a bucket) and the OpenMP row-block drivers.
// Memory is O(columns) scratch per thread plus the block's output; no N×N buffer exists anywhere.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "metrics.hpp"
#include "topk.hpp"

namespace simmine {

// Sets of unique ascending codes (jaccard, ngram): inverted-index accumulation of intersection counts.
struct SetScorer {
    const int64_t* indptr;   // rows: [indptr[i], indptr[i+1]) into idx
    const int32_t* idx;      // ascending unique local codes
    const int64_t* pptr;     // postings of code v: [pptr[v], pptr[v+1]) into prow
    const int32_t* prow;     // ascending rows holding v
    int64_t n;

    struct Scratch {
        std::vector<int32_t> acc, touched;
        explicit Scratch(const SetScorer& s) : acc(s.n, 0) {}
    };

    // Calls emit(j, s) for every column j >= j_min, j != i, with s > 0.
    template <class Emit>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Emit&& emit) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const int32_t v = idx[p];
            const int32_t* first = prow + pptr[v];
            const int32_t* last = prow + pptr[v + 1];
            if (j_min > 0) first = std::lower_bound(first, last, static_cast<int32_t>(j_min));
            for (const int32_t* q = first; q < last; ++q) {
                if (sc.acc[*q]++ == 0) sc.touched.push_back(*q);
            }
        }
        const int64_t size_i = indptr[i + 1] - indptr[i];
        for (int32_t j : sc.touched) {
            const int32_t c = sc.acc[j];
            sc.acc[j] = 0;
            if (j == i) continue;
            const float s = jaccard_from_counts(c, size_i, indptr[j + 1] - indptr[j]);
            if (s > 0.0f) emit(j, s);
        }
        sc.touched.clear();
    }
};

// Weighted vectors (tfidf): inverted-index accumulation of dot products in ascending code order of row i,
// which is the order every backend uses, so sums round identically.
struct CosineScorer {
    const int64_t* indptr;
    const int32_t* idx;
    const double* w;         // weight of idx[p]
    const double* norms;     // per row
    const int64_t* pptr;
    const int32_t* prow;
    const double* pw;        // weight of row prow[q] for the posting's code
    int64_t n;

    struct Scratch {
        std::vector<double> acc;
        std::vector<uint8_t> mark;
        std::vector<int32_t> touched;
        explicit Scratch(const CosineScorer& s) : acc(s.n, 0.0), mark(s.n, 0) {}
    };

    template <class Emit>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Emit&& emit) const {
        if (norms[i] <= 0.0) return;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const int32_t v = idx[p];
            const double wi = w[p];
            int64_t q = pptr[v];
            const int64_t q_end = pptr[v + 1];
            if (j_min > 0) q = std::lower_bound(prow + q, prow + q_end, static_cast<int32_t>(j_min)) - prow;
            for (; q < q_end; ++q) {
                const int32_t j = prow[q];
                if (!sc.mark[j]) { sc.mark[j] = 1; sc.touched.push_back(j); }
                sc.acc[j] += wi * pw[q];
            }
        }
        for (int32_t j : sc.touched) {
            const double dot = sc.acc[j];
            sc.acc[j] = 0.0;
            sc.mark[j] = 0;
            if (j == i) continue;
            const float s = cosine_from_dot(dot, norms[i], norms[j]);
            if (s > 0.0f) emit(j, s);
        }
        sc.touched.clear();
    }
};

// Item sequences (levenshtein): every column is scored; bit-parallel when row i has at most 64 items.
struct EditScorer {
    const int64_t* indptr;
    const int32_t* idx;      // local codes in sequence order
    int64_t n;
    int64_t vocab;           // local codes are < vocab

    struct Scratch {
        std::vector<uint64_t> peq;
        std::vector<int64_t> row;
        explicit Scratch(const EditScorer& s) : peq(s.vocab, 0) {}
    };

    template <class Emit>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Emit&& emit) const {
        const int32_t* a = idx + indptr[i];
        const int64_t la = indptr[i + 1] - indptr[i];
        const bool bitparallel = la <= 64;
        if (bitparallel) {
            for (int64_t p = 0; p < la; ++p) sc.peq[a[p]] |= uint64_t(1) << p;
        }
        const uint64_t* peq = sc.peq.data();
        auto lookup = [peq](int32_t c) { return peq[c]; };
        for (int64_t j = j_min; j < n; ++j) {
            if (j == i) continue;
            const int32_t* b = idx + indptr[j];
            const int64_t lb = indptr[j + 1] - indptr[j];
            int64_t d;
            if (bitparallel) {
                d = levenshtein_myers64(la, b, lb, lookup);
            } else {
                if (static_cast<int64_t>(sc.row.size()) < lb + 1) sc.row.resize(lb + 1);
                d = levenshtein_dp(a, la, b, lb, sc.row.data());
            }
            const float s = levenshtein_from_distance(d, la, lb);
            if (s > 0.0f) emit(static_cast<int32_t>(j), s);
        }
        if (bitparallel) {
            for (int64_t p = 0; p < la; ++p) sc.peq[a[p]] = 0;
        }
    }
};

// For each rows[r]: candidates j != i with s > 0 and s >= min_score, best k_row[r] of them written at
// out_off[r] (capacity min(k_row[r], n - 1)); out_count[r] receives how many.
template <class Scorer>
void select_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, const int64_t* k_row, float min_score,
                  const int64_t* out_off, int32_t* out_col, float* out_score, int64_t* out_count) {
#pragma omp parallel
    {
        typename Scorer::Scratch scratch(scorer);
        std::vector<Cand> cands;
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) {
            cands.clear();
            scorer.score_row(rows[r], 0, scratch, [&](int32_t j, float s) {
                if (s >= min_score) cands.push_back(Cand{s, j});
            });
            out_count[r] = take_best(cands, out_off[r + 1] - out_off[r], out_col + out_off[r], out_score + out_off[r]);
        }
    }
}

constexpr int64_t kHistBins = 65536;

// Histogram of the float32 bit patterns of s over pairs (rows[r], j), j > rows[r], s > 0:
// by the high 16 bits when prefix < 0, else by the low 16 bits among scores whose high bits equal prefix.
template <class Scorer>
void histogram_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, int64_t prefix, int64_t* hist) {
    std::fill(hist, hist + kHistBins, 0);
#pragma omp parallel
    {
        typename Scorer::Scratch scratch(scorer);
        std::vector<int64_t> local(kHistBins, 0);
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) {
            scorer.score_row(rows[r], rows[r] + 1, scratch, [&](int32_t, float s) {
                uint32_t bits;
                std::memcpy(&bits, &s, sizeof bits);
                if (prefix < 0) ++local[bits >> 16];
                else if (static_cast<int64_t>(bits >> 16) == prefix) ++local[bits & 0xFFFFu];
            });
        }
#pragma omp critical
        for (int64_t b = 0; b < kHistBins; ++b) hist[b] += local[b];
    }
}

}  // namespace simmine
