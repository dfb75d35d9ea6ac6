// Scorers (one anchor row against every column of a bucket) and the OpenMP row-block drivers.
// Memory is O(columns) scratch per thread plus the block's output; no N×N buffer exists anywhere.
// A scorer reports pairs to a sink: sink.push(j, s) for s > 0, and may skip a pair whose upper bound on s
// is below sink.floor() (the current k-th best or the threshold), which changes no result.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "metrics.hpp"
#include "topk.hpp"

namespace simmine {

// The rows of a posting list that are >= j_min (lists are ascending): [first, last).
inline std::pair<const int32_t*, const int32_t*> postings_from(const int64_t* pptr, const int32_t* prow, int32_t code,
                                                               int64_t j_min) {
    const int32_t* first = prow + pptr[code];
    const int32_t* last = prow + pptr[code + 1];
    if (j_min > 0) first = std::lower_bound(first, last, static_cast<int32_t>(j_min));
    return {first, last};
}

// OpenMP's team size and this thread's number (1 and 0 when built without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The columns a row never pairs with: itself, or, with same-user exclusion (prefix anchors), the run
// [lo[i], hi[i]) of rows that belong to its user (a user's anchors are consecutive rows of a tile).
struct Excluded {
    const int32_t* lo = nullptr;
    const int32_t* hi = nullptr;
    bool operator()(int64_t i, int64_t j) const { return lo ? (j >= lo[i] && j < hi[i]) : j == i; }
};

// A pair whose score is provably below floor · (1 − 1e-6) is skipped before the exact float32 test.
constexpr double kBelow = 1.0 - 1e-6;

#if defined(__x86_64__) && defined(__GNUC__)
#define SIMMINE_CLONES __attribute__((target_clones("avx2", "popcnt", "default")))
#else
#define SIMMINE_CLONES
#endif

// acc[j] += popcount(bits_i & bits_j) over w words, for j in [j0, n): the dense (popular-item) part of
// an intersection count. Compiled for AVX2, POPCNT and baseline x86-64; the loader picks one at run time.
SIMMINE_CLONES
inline void add_dense_counts(const uint64_t* bits_i, const uint64_t* bits, int64_t w, int64_t j0, int64_t n,
                             int32_t* acc) {
    for (int64_t j = j0; j < n; ++j) {
        const uint64_t* bj = bits + j * w;
        int32_t c = 0;
        for (int64_t t = 0; t < w; ++t) c += __builtin_popcountll(bits_i[t] & bj[t]);
        acc[j] += c;
    }
}

// Edit distances of a (1 <= la <= 64; peq[c] = positions of symbol c in a) against L sequences at once,
// one per 64-bit lane: levenshtein_myers64's recurrence, each lane counting only up to its own length.
// Ph and Mh never share a bit, so the score moves by Ph − Mh at the top bit. Inlined into the clones below,
// which compile it for AVX-512 (8 lanes), AVX2 (4 lanes) or baseline x86-64; the caller picks by CPU.
// (Eight 32-bit lanes in AVX2 for la <= 32 measured slower: building the lanes' Eq vector costs more than
// it saves.)
typedef uint64_t u64x4 __attribute__((vector_size(32)));
typedef int64_t i64x4 __attribute__((vector_size(32)));
typedef uint64_t u64x8 __attribute__((vector_size(64)));
typedef int64_t i64x8 __attribute__((vector_size(64)));

template <class u64v, class i64v, int L>
__attribute__((always_inline)) inline void myers64_lanes(int64_t la, const uint64_t* peq, const int32_t* const* b,
                                                         const int64_t* lb, int64_t* dist) {
    const uint64_t full = la == 64 ? ~uint64_t(0) : (uint64_t(1) << la) - 1;
    u64v pv = u64v{} + full, mv = u64v{};
    i64v score = i64v{} + la, len;
    int64_t last = 0;
    for (int l = 0; l < L; ++l) {
        len[l] = lb[l];
        last = std::max(last, lb[l]);
    }
    const int shift = static_cast<int>(la - 1);
    for (int64_t t = 0; t < last; ++t) {
        u64v eq;
        for (int l = 0; l < L; ++l) eq[l] = t < lb[l] ? peq[b[l][t]] : 0;
        const u64v xv = eq | mv;
        const u64v xh = (((eq & pv) + pv) ^ pv) | eq;
        u64v ph = mv | ~(xh | pv);
        u64v mh = pv & xh;
        const i64v active = (i64v{} + t) < len;  // all ones in lanes still inside their sequence
        score += (reinterpret_cast<i64v>((ph >> shift) & 1) - reinterpret_cast<i64v>((mh >> shift) & 1)) & active;
        ph = (ph << 1) | 1;
        mh <<= 1;
        pv = mh | ~(xv | ph);
        mv = ph & xv;
    }
    for (int l = 0; l < L; ++l) dist[l] = score[l];
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx2", "default")))
#endif
inline void levenshtein_myers64_x4(int64_t la, const uint64_t* peq, const int32_t* const* b, const int64_t* lb,
                                   int64_t* dist) {
    myers64_lanes<u64x4, i64x4, 4>(la, peq, b, lb, dist);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
inline void levenshtein_myers64_x8(int64_t la, const uint64_t* peq, const int32_t* const* b, const int64_t* lb,
                                   int64_t* dist) {
    myers64_lanes<u64x8, i64x8, 8>(la, peq, b, lb, dist);
}
#endif

// Lanes per alignment batch: 8 where the CPU has AVX-512, else 4; set_edit_lanes(4) forces the narrow path
// (tests run both), set_edit_lanes(0) returns to the CPU's choice.
inline int& edit_lanes_override() {
    static int lanes = 0;
    return lanes;
}
inline void set_edit_lanes(int lanes) { edit_lanes_override() = lanes; }
#if defined(__x86_64__) && defined(__GNUC__)
inline int edit_lanes() {
    static const int cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") ? 8 : 4;
    const int forced = edit_lanes_override();
    return forced == 4 || (forced == 8 && cpu == 8) ? forced : cpu;
}
#else
inline int edit_lanes() { return 4; }
#endif

// Up to eight candidates waiting to be aligned together, all of one length class.
struct EditBatch {
    static constexpr int64_t kWidth = 8;     // lengths [8c, 8c + 8) share class c
    static constexpr int64_t kClasses = 16;  // the last class holds every length >= 120
    const int32_t* b[8];
    int64_t lb[8];
    int32_t col[8];
    int n = 0;
};

// One batch of edit_lanes() alignments (levenshtein_myers64_x4 or _x8).
inline void edit_batch(int lanes, int64_t la, const uint64_t* peq, const int32_t* const* b, const int64_t* lb,
                       int64_t* dist) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (lanes == 8) {
        levenshtein_myers64_x8(la, peq, b, lb, dist);
        return;
    }
#endif
    levenshtein_myers64_x4(la, peq, b, lb, dist);
}

// Sets of unique ascending codes (jaccard, ngram): intersection counts from an inverted index over the
// rarer codes plus bitmaps over the most popular codes (dense_words 64-bit words per row), because on
// Zipf logs a handful of popular items make nearly every pair intersect.
struct SetScorer {
    const int64_t* indptr;   // rows: [indptr[i], indptr[i+1]) into idx
    const int32_t* idx;      // ascending unique local codes
    const int64_t* pptr;     // postings of code v: [pptr[v], pptr[v+1]) into prow (empty for dense codes)
    const int32_t* prow;     // ascending rows holding v
    int64_t n;
    int64_t dense_words;     // 0: no bitmap part
    const uint64_t* bits;    // n × dense_words
    const uint8_t* dense_code;  // per code: 1 when counted by the bitmaps instead of the postings

    int64_t vocab;
    Excluded excluded;

    struct Scratch {
        std::vector<int32_t> acc, touched;
        std::vector<uint8_t> has;
        explicit Scratch(const SetScorer& s) : acc(s.n, 0), has(s.vocab, 0) {}
    };

    void listed_begin(int64_t i, Scratch& sc) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.has[idx[p]] = 1;
    }
    float listed_score(int64_t i, int64_t j, Scratch& sc) const {
        int64_t c = 0;
        for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p) c += sc.has[idx[p]];
        return jaccard_from_counts(c, indptr[i + 1] - indptr[i], indptr[j + 1] - indptr[j]);
    }
    void listed_end(int64_t i, Scratch& sc) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.has[idx[p]] = 0;
    }

    template <class Sink>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        const bool dense = dense_words > 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            if (dense && dense_code[idx[p]]) continue;
            const auto [first, last] = postings_from(pptr, prow, idx[p], j_min);
            for (const int32_t* q = first; q < last; ++q) {
                if (sc.acc[*q]++ == 0 && !dense) sc.touched.push_back(*q);
            }
        }
        const int64_t size_i = indptr[i + 1] - indptr[i];
        auto emit = [&](int64_t j) {
            const int32_t c = sc.acc[j];
            sc.acc[j] = 0;
            if (c == 0 || excluded(i, j)) return;
            const int64_t size_j = indptr[j + 1] - indptr[j];
            // c / union < floor, tested without a division; the margin keeps borderline pairs for the exact test
            if (static_cast<double>(c) < kBelow * sink.floor() * static_cast<double>(size_i + size_j - c)) return;
            const float s = jaccard_from_counts(c, size_i, size_j);
            if (s > 0.0f) sink.push(static_cast<int32_t>(j), s);
        };
        if (dense) {
            add_dense_counts(bits + i * dense_words, bits, dense_words, j_min, n, sc.acc.data());
            for (int64_t j = j_min; j < n; ++j) emit(j);
        } else {
            for (int32_t j : sc.touched) emit(j);
            sc.touched.clear();
        }
    }
};

// Threshold joins on sets (s >= t > 0): prefix filtering. With codes ranked rarest first, two sets with
// Jaccard >= t share a code inside both prefixes of length |A| − ⌈t·|A|⌉ + 1, so only prefix postings are
// probed; candidates pass a size filter (min/max >= t), then are counted exactly by looking their codes up
// in a table marking row i's codes (no data-dependent branches, unlike a sorted merge).
struct PrefixSetScorer {
    const int64_t* indptr;   // full sets, ascending codes (verification)
    const int32_t* idx;
    const int64_t* fptr;     // prefix of row i: [fptr[i], fptr[i+1]) into franks (rarity ranks)
    const int32_t* franks;
    const int64_t* pptr;     // prefix postings by rank
    const int32_t* prow;
    int64_t n;
    int64_t vocab;
    Excluded excluded;

    struct Scratch {
        std::vector<uint8_t> mark, has;
        std::vector<int32_t> touched;
        explicit Scratch(const PrefixSetScorer& s) : mark(s.n, 0), has(s.vocab, 0) {}
    };

    template <class Sink>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        for (int64_t p = fptr[i]; p < fptr[i + 1]; ++p) {
            const auto [first, last] = postings_from(pptr, prow, franks[p], j_min);
            for (const int32_t* q = first; q < last; ++q) {
                if (!sc.mark[*q]) { sc.mark[*q] = 1; sc.touched.push_back(*q); }
            }
        }
        const int64_t a = indptr[i + 1] - indptr[i];
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.has[idx[p]] = 1;
        for (int32_t j : sc.touched) {
            sc.mark[j] = 0;
            if (excluded(i, j)) continue;
            const int64_t b = indptr[j + 1] - indptr[j];
            if (jaccard_from_counts(std::min(a, b), a, b) < sink.floor()) continue;  // size filter
            int64_t c = 0;
            for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p) c += sc.has[idx[p]];
            const float s = jaccard_from_counts(c, a, b);
            if (s > 0.0f) sink.push(j, s);
        }
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.has[idx[p]] = 0;
        sc.touched.clear();
    }
};

// Weighted vectors (tfidf). Exact dot products are sums over common codes in ascending code order, the
// order every backend uses, so they round identically. Two paths:
// - accumulate: inverted-index accumulation over all codes (histograms, small tiles);
// - bounded: popular ("heavy") codes carry little weight (low idf) but most of the postings. Only light
//   codes are accumulated. The heavy part of a dot product is summed over the other row's heavy codes in
//   ascending code order (a short list per row). A pair sharing light codes is verified
//   exactly only if its light part + heavy part can reach the sink's floor (first screened by the
//   Cauchy–Schwarz bound h_i·h_j, h = ‖heavy part‖ / ‖row‖). A pair sharing no light code has only its heavy
//   part, which then is the exact dot (the non-common codes add exact zeros); such pairs are visited in
//   descending h_j until h_i·h_j falls below the floor.
struct CosineScorer {
    const int64_t* indptr;
    const int32_t* idx;
    const double* w;          // weight of idx[p]
    const double* norms;      // per row
    const int64_t* pptr;
    const int32_t* prow;
    const double* pw;         // weight of row prow[q] for the posting's code
    int64_t n;
    int64_t vocab;
    const uint8_t* heavy;     // per code, or nullptr: no bounded path
    const double* heavy_norm; // per row: h
    const double* inv_norms;  // per row: 1 / norm (0 for a zero row)
    const int32_t* by_heavy;  // rows by descending h
    const int64_t* heavy_ptr; // row j's heavy codes: [heavy_ptr[j], heavy_ptr[j+1]) into heavy_idx, heavy_w
    const int32_t* heavy_idx; // ascending per row
    const double* heavy_w;
    Excluded excluded;

    struct Cand {
        double ub;
        int32_t col;
    };
    struct Scratch {
        std::vector<double> acc, table, lows;
        std::vector<uint8_t> mark;
        std::vector<int32_t> touched_rows;  // [0, touched) hold the rows met, one slot to spare
        int64_t touched = 0;
        std::vector<Cand> cands;
        explicit Scratch(const CosineScorer& s)
            : acc(s.n, 0.0), table(s.vocab, 0.0), mark(s.n, 0), touched_rows(static_cast<size_t>(s.n + 1)) {}
        struct Range {
            const int32_t* first;
            const int32_t* last;
            const int32_t* begin() const { return first; }
            const int32_t* end() const { return last; }
        };
        Range rows_met() const { return {touched_rows.data(), touched_rows.data() + touched}; }
    };
    // Top-k requests up to this k take their first floor from the light-code cosines (see bounded).
    static constexpr int64_t kLowFloorK = 64;

    template <class Sink>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        if (norms[i] <= 0.0) return;
        if (heavy != nullptr && sink.selective(n)) bounded(i, j_min, sc, sink);
        else accumulate(i, j_min, sc, sink);
    }

    // acc[j] += wi · w_j(v) for the rows j >= j_min holding code v; a row met for the first time is listed in
    // sc's touched rows (room for all n and one more, so each row is stored unchecked and kept if new).
    void add_postings(int32_t v, double wi, int64_t j_min, Scratch& sc) const {
        const auto [first, last] = postings_from(pptr, prow, v, j_min);
        const double* weight = pw + (first - prow);
        double* acc = sc.acc.data();
        uint8_t* mark = sc.mark.data();
        int32_t* out = sc.touched_rows.data() + sc.touched;
        for (const int32_t* q = first; q < last; ++q, ++weight) {
            const int32_t j = *q;
            *out = j;
            out += mark[j] ^ 1;
            mark[j] = 1;
            acc[j] += wi * *weight;
        }
        sc.touched = out - sc.touched_rows.data();
    }

    template <class Sink>
    void accumulate(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            add_postings(idx[p], w[p], j_min, sc);
        }
        for (int32_t j : sc.rows_met()) {
            const double dot = sc.acc[j];
            sc.acc[j] = 0.0;
            sc.mark[j] = 0;
            if (excluded(i, j)) continue;
            const float s = cosine_from_dot(dot, norms[i], norms[j]);
            if (s > 0.0f) sink.push(j, s);
        }
        sc.touched = 0;
    }

    void listed_begin(int64_t i, Scratch& sc) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.table[idx[p]] = w[p];
    }
    float listed_score(int64_t i, int64_t j, Scratch& sc) const {
        return cosine_from_dot(dot_with(sc, j), norms[i], norms[j]);
    }
    void listed_end(int64_t i, Scratch& sc) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.table[idx[p]] = 0.0;
    }

    // Row i (spread in sc.table) against entries [lo, hi) of a CSR (codes, weights): products added in
    // ascending code order, non-common codes adding an exact 0.0, so the sum rounds as the accumulation does.
    static double table_dot(const Scratch& sc, const int32_t* codes, const double* weights, int64_t lo, int64_t hi) {
        double dot = 0.0;
        for (int64_t p = lo; p < hi; ++p) dot += sc.table[codes[p]] * weights[p];
        return dot;
    }
    // Exact dot of row i with row j.
    double dot_with(const Scratch& sc, int64_t j) const { return table_dot(sc, idx, w, indptr[j], indptr[j + 1]); }
    // Exact dot of row i with row j's heavy part (which is all of it when the two share no light code).
    double heavy_dot(const Scratch& sc, int64_t j) const {
        return table_dot(sc, heavy_idx, heavy_w, heavy_ptr[j], heavy_ptr[j + 1]);
    }

    template <class Sink>
    void bounded(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        const double ni = norms[i];
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const int32_t v = idx[p];
            sc.table[v] = w[p];
            if (!heavy[v]) add_postings(v, w[p], j_min, sc);
        }
        const double hi = heavy_norm[i] * (1.0 + 1e-9);
        auto verify = [&](int64_t j) {
            const float s = cosine_from_dot(dot_with(sc, j), ni, norms[j]);
            if (s > 0.0f) sink.push(static_cast<int32_t>(j), s);
        };
        const int64_t want = sink.wanted();
        const bool low_floor = want > 0 && want <= kLowFloorK;
        // Light codes alone give a lower bound of each cosine (heavy weights add >= 0): the k-th largest of
        // them bounds the k-th best score from below, so a pair whose upper bound is under it is never
        // pushed. A first pass finds that push_floor; a second keeps the pairs whose Cauchy–Schwarz bound
        // reaches it (with their light cosine) and, of those, the ones whose exact heavy part does.
        double push_floor = kBelow * sink.floor();
        const double inv_i = inv_norms[i];
        sc.lows.clear();
        sc.cands.clear();
        if (low_floor) {
            for (int32_t j : sc.rows_met()) {
                if (excluded(i, j) || inv_norms[j] <= 0.0) continue;  // a zero row scores 0
                const double low = sc.acc[j] * inv_i * inv_norms[j];
                if (static_cast<int64_t>(sc.lows.size()) < want) {
                    sc.lows.push_back(low);
                    std::push_heap(sc.lows.begin(), sc.lows.end(), std::greater<double>());
                } else if (low > sc.lows.front()) {
                    std::pop_heap(sc.lows.begin(), sc.lows.end(), std::greater<double>());
                    sc.lows.back() = low;
                    std::push_heap(sc.lows.begin(), sc.lows.end(), std::greater<double>());
                }
            }
            if (static_cast<int64_t>(sc.lows.size()) == want) {
                push_floor = std::max(push_floor, kBelow * sc.lows.front());
            }
        }
        for (int32_t j : sc.rows_met()) {
            const double low = sc.acc[j] * inv_i * inv_norms[j];
            sc.acc[j] = 0.0;
            if (excluded(i, j) || inv_norms[j] <= 0.0) continue;
            const double light = low * (1.0 + 1e-9);
            if (light + hi * heavy_norm[j] < push_floor) continue;
            const double ub = light + heavy_dot(sc, j) * inv_i * inv_norms[j] * (1.0 + 1e-9);
            if (ub >= push_floor) sc.cands.push_back(Cand{ub, j});
        }
        // a pair below push_floor never enters: the lowest score that still can
        auto floor = [&]() { return std::max(push_floor, kBelow * sink.floor()); };
        if (low_floor) {  // a few candidates: best bound first, stop where the bound falls under the floor
            std::sort(sc.cands.begin(), sc.cands.end(), [](const Cand& a, const Cand& b) { return a.ub > b.ub; });
            for (const Cand& c : sc.cands) {
                if (c.ub < floor()) break;
                verify(c.col);
            }
        } else {
            // the most promising first, to raise the floor before the rest is filtered
            const int64_t first = std::min<int64_t>(want, static_cast<int64_t>(sc.cands.size()));
            if (first > 0 && first < static_cast<int64_t>(sc.cands.size())) {
                std::nth_element(sc.cands.begin(), sc.cands.begin() + first - 1, sc.cands.end(),
                                 [](const Cand& a, const Cand& b) { return a.ub > b.ub; });
            }
            for (int64_t t = 0; t < static_cast<int64_t>(sc.cands.size()); ++t) {
                if (t < first || sc.cands[t].ub >= floor()) verify(sc.cands[t].col);
            }
        }
        for (int64_t t = 0; t < n; ++t) {  // pairs sharing no light code: exact heavy dot, h_i·h_j descending
            const int32_t j = by_heavy[t];
            if (hi * heavy_norm[j] < floor()) break;
            if (j >= j_min && !excluded(i, j) && !sc.mark[j] && norms[j] > 0.0) {
                const float s = cosine_from_dot(heavy_dot(sc, j), ni, norms[j]);
                if (s > 0.0f) sink.push(j, s);
            }
        }
        for (int32_t j : sc.rows_met()) sc.mark[j] = 0;
        sc.touched = 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.table[idx[p]] = 0.0;
    }
};

// Item sequences (levenshtein). Multiset overlaps from an inverted index bound the similarity from above
// (d >= max(|A|,|B|) − LCS >= max − overlap): pairs with no common item score 0 and are never aligned, and
// pairs whose bound is below the sink's floor are skipped. Bit-parallel when row i has at most 64 items.
struct EditScorer {
    const int64_t* indptr;   // sequences, local codes in order
    const int32_t* idx;
    const int64_t* mptr;     // multiset of row i: [mptr[i], mptr[i+1]) codes in mcode, counts in mcnt
    const int32_t* mcode;
    const int32_t* mcnt;
    const int64_t* pptr;     // postings of code v: rows in prow, counts in pcnt
    const int32_t* prow;
    const int32_t* pcnt;
    int64_t n;
    int64_t vocab;
    Excluded excluded;

    struct Cand {
        int32_t overlap;  // multiset |A∩B|: s <= overlap / max(|A|,|B|), since d >= max(|A|,|B|) − overlap
        int32_t col;
    };
    struct Scratch {
        std::vector<uint64_t> peq;
        std::vector<int64_t> row;
        std::vector<int32_t> acc, touched;
        std::vector<Cand> cands;
        std::vector<EditBatch> batches;
        explicit Scratch(const EditScorer& s) : peq(s.vocab, 0), acc(s.n, 0), batches(EditBatch::kClasses) {}
    };

    // Edit distance when |A| > 64 (sc.peq unused by A): the distance is symmetric, so a B of at most 64
    // items is the bit-parallel pattern over A; two long sequences take the dynamic programme.
    int64_t long_distance(const int32_t* a, int64_t la, const int32_t* b, int64_t lb, Scratch& sc) const {
        if (lb <= 64) {
            for (int64_t p = 0; p < lb; ++p) sc.peq[b[p]] |= uint64_t(1) << p;
            const uint64_t* peq = sc.peq.data();
            const int64_t d = levenshtein_myers64(lb, a, la, [peq](int32_t c) { return peq[c]; });
            for (int64_t p = 0; p < lb; ++p) sc.peq[b[p]] = 0;
            return d;
        }
        if (static_cast<int64_t>(sc.row.size()) < lb + 1) sc.row.resize(lb + 1);
        return levenshtein_dp(a, la, b, lb, sc.row.data());
    }

    void listed_begin(int64_t i, Scratch& sc) const {
        if (indptr[i + 1] - indptr[i] <= 64) {
            for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.peq[idx[p]] |= uint64_t(1) << (p - indptr[i]);
        }
    }
    float listed_score(int64_t i, int64_t j, Scratch& sc) const {
        const int32_t* a = idx + indptr[i];
        const int64_t la = indptr[i + 1] - indptr[i];
        const int32_t* b = idx + indptr[j];
        const int64_t lb = indptr[j + 1] - indptr[j];
        int64_t d;
        if (la <= 64) {
            const uint64_t* peq = sc.peq.data();
            d = levenshtein_myers64(la, b, lb, [peq](int32_t c) { return peq[c]; });
        } else {
            d = long_distance(a, la, b, lb, sc);
        }
        return levenshtein_from_distance(d, la, lb);
    }
    void listed_end(int64_t i, Scratch& sc) const {
        if (indptr[i + 1] - indptr[i] <= 64) {
            for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) sc.peq[idx[p]] = 0;
        }
    }

    template <class Sink>
    void score_row(int64_t i, int64_t j_min, Scratch& sc, Sink& sink) const {
        for (int64_t p = mptr[i]; p < mptr[i + 1]; ++p) {
            const int32_t ci = mcnt[p];
            const auto [first, last] = postings_from(pptr, prow, mcode[p], j_min);
            const int32_t* count = pcnt + (first - prow);
            for (const int32_t* q = first; q < last; ++q, ++count) {
                if (sc.acc[*q] == 0) sc.touched.push_back(*q);
                sc.acc[*q] += std::min(ci, *count);
            }
        }
        const int32_t* a = idx + indptr[i];
        const int64_t la = indptr[i + 1] - indptr[i];
        const bool bitparallel = la <= 64;
        if (bitparallel) {
            for (int64_t p = 0; p < la; ++p) sc.peq[a[p]] |= uint64_t(1) << p;
        }
        const uint64_t* peq = sc.peq.data();
        auto lookup = [peq](int32_t c) { return peq[c]; };
        sc.cands.clear();
        for (int32_t j : sc.touched) {
            const int32_t overlap = sc.acc[j];
            sc.acc[j] = 0;
            if (excluded(i, j)) continue;
            sc.cands.push_back(Cand{overlap, j});
        }
        sc.touched.clear();
        auto push = [&](int32_t j, int64_t d, int64_t lb) {
            const float s = levenshtein_from_distance(d, la, lb);
            if (s > 0.0f) sink.push(j, s);
        };
        // Bit-parallel pairs go four or eight at a time (edit_lanes), batched with candidates of similar
        // length: a batch runs as long as its longest sequence, so mixing lengths idles the shorter lanes.
        const int lanes = edit_lanes();
        EditBatch* batches = sc.batches.data();
        auto flush = [&](EditBatch& bt) {
            for (int l = bt.n; l < lanes; ++l) {  // padding lanes: empty sequences
                bt.b[l] = idx;
                bt.lb[l] = 0;
            }
            int64_t d[8];
            edit_batch(lanes, la, peq, bt.b, bt.lb, d);
            for (int l = 0; l < bt.n; ++l) push(bt.col[l], d[l], bt.lb[l]);
            bt.n = 0;
        };
        for (const Cand& c : sc.cands) {
            const int32_t* b = idx + indptr[c.col];
            const int64_t lb = indptr[c.col + 1] - indptr[c.col];
            // overlap / max below the floor, tested without a division; the margin keeps borderline pairs
            const int64_t m = std::max(la, lb);
            if (m == 0 || static_cast<double>(c.overlap) < kBelow * sink.floor() * static_cast<double>(m)) continue;
            if (bitparallel && la > 0) {
                EditBatch& bt = batches[std::min<int64_t>(lb / EditBatch::kWidth, EditBatch::kClasses - 1)];
                bt.b[bt.n] = b;
                bt.lb[bt.n] = lb;
                bt.col[bt.n] = c.col;
                if (++bt.n == lanes) flush(bt);
                continue;
            }
            const int64_t d = bitparallel ? levenshtein_myers64(la, b, lb, lookup) : long_distance(a, la, b, lb, sc);
            push(c.col, d, lb);
        }
        for (int cls = 0; cls < EditBatch::kClasses; ++cls) {
            if (batches[cls].n) flush(batches[cls]);
        }
        if (bitparallel) {
            for (int64_t p = 0; p < la; ++p) sc.peq[a[p]] = 0;
        }
    }
};

// Output of select_block: per row, where its kept candidates lie in one thread's buffers.
struct BlockOutput {
    std::vector<std::vector<int32_t>> cols;   // per thread
    std::vector<std::vector<float>> scores;   // per thread
    std::vector<int32_t> thread_of;           // per row
    std::vector<int64_t> start, count;        // per row, inside its thread's buffers

    // Empty buffers for nthreads threads and nrows rows.
    void reset(int nthreads, int64_t nrows) {
        cols.assign(nthreads, {});
        scores.assign(nthreads, {});
        thread_of.assign(nrows, 0);
        start.assign(nrows, 0);
        count.assign(nrows, 0);
    }
};

// For each rows[r]: candidates j not excluded (docs/input.md) with s > 0 and s >= min_score, the best k_row[r] of them, appended to
// the calling thread's buffers (no per-row capacity is reserved, so threshold joins cost what they keep).
template <class Scorer>
void select_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, const int64_t* k_row, float min_score,
                  BlockOutput& out) {
    const int nthreads = max_threads();
    out.reset(nthreads, nrows);
#pragma omp parallel
    {
        const int tid = thread_id();
        typename Scorer::Scratch scratch(scorer);
        BestK best;
        std::vector<int32_t>& cols = out.cols[tid];
        std::vector<float>& scores = out.scores[tid];
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) {
            const int64_t k = std::max<int64_t>(0, std::min<int64_t>(k_row[r], scorer.n - 1));
            best.reset(k, min_score);
            scorer.score_row(rows[r], 0, scratch, best);
            const int64_t at = static_cast<int64_t>(cols.size());
            cols.resize(at + k);
            scores.resize(at + k);
            const int64_t m = best.take(cols.data() + at, scores.data() + at);
            cols.resize(at + m);
            scores.resize(at + m);
            out.thread_of[r] = tid;
            out.start[r] = at;
            out.count[r] = m;
        }
    }
}

// Pair sink: every (i, j, s) with s >= min_score, appended to the calling thread's buffers.
struct PairSink {
    float min_score;
    int32_t row;
    std::vector<int32_t>* rows;
    std::vector<int32_t>* cols;
    std::vector<float>* scores;
    float floor() const { return min_score; }
    bool selective(int64_t) const { return min_score >= 0.1f; }
    int64_t wanted() const { return 0; }
    void push(int32_t j, float s) {
        if (s < min_score) return;
        rows->push_back(row);
        cols->push_back(j);
        scores->push_back(s);
    }
};

// Threshold join, each unordered pair scored once: (rows[r], j) for j > rows[r], s > 0, s >= min_score.
template <class Scorer>
void pairs_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, float min_score,
                 std::vector<std::vector<int32_t>>& out_rows, std::vector<std::vector<int32_t>>& out_cols,
                 std::vector<std::vector<float>>& out_scores) {
    const int nthreads = max_threads();
    out_rows.assign(nthreads, {});
    out_cols.assign(nthreads, {});
    out_scores.assign(nthreads, {});
#pragma omp parallel
    {
        const int tid = thread_id();
        typename Scorer::Scratch scratch(scorer);
        PairSink sink{min_score, 0, &out_rows[tid], &out_cols[tid], &out_scores[tid]};
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) {
            sink.row = static_cast<int32_t>(rows[r]);
            scorer.score_row(rows[r], rows[r] + 1, scratch, sink);
        }
    }
}

// Listed pairs: scores[t] = s(rows_i[t], cols[t]) for pairs grouped by row (CSR ptr over distinct rows).
// Each scorer spreads row i once (score_listed_begin), scores its columns, then clears (…_end).
template <class Scorer>
void score_listed(const Scorer& scorer, const int64_t* row_ids, int64_t nrows, const int64_t* ptr,
                  const int32_t* cols, float* scores) {
#pragma omp parallel
    {
        typename Scorer::Scratch scratch(scorer);
#pragma omp for schedule(dynamic, 8)
        for (int64_t r = 0; r < nrows; ++r) {
            scorer.listed_begin(row_ids[r], scratch);
            for (int64_t t = ptr[r]; t < ptr[r + 1]; ++t) scores[t] = scorer.listed_score(row_ids[r], cols[t], scratch);
            scorer.listed_end(row_ids[r], scratch);
        }
    }
}

// MinHash signature of every row of a set CSR: sig[i, p] = min over codes v of row i of h_p(v), with
// h_p = splitmix64(v ⊕ seed_p) truncated to 32 bits; rows without codes get 0xFFFFFFFF everywhere.
inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

inline void minhash_block(const int64_t* indptr, const int64_t* codes, int64_t n, int64_t num_perm, uint64_t seed,
                          uint32_t* sig) {
    std::vector<uint64_t> seeds(num_perm);
    for (int64_t p = 0; p < num_perm; ++p) seeds[p] = splitmix64(seed * 0x100000001B3ull + static_cast<uint64_t>(p));
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
        uint32_t* out = sig + i * num_perm;
        for (int64_t p = 0; p < num_perm; ++p) out[p] = 0xFFFFFFFFu;
        for (int64_t q = indptr[i]; q < indptr[i + 1]; ++q) {
            const uint64_t v = static_cast<uint64_t>(codes[q]);
            for (int64_t p = 0; p < num_perm; ++p) {
                const uint32_t h = static_cast<uint32_t>(splitmix64(v ^ seeds[p]));
                if (h < out[p]) out[p] = h;
            }
        }
    }
}

// LSH band collisions of listed anchors (rows of one bucket): each anchor's rows (not excluded) that share at
// least one band run with it, ascending, with the number of runs shared; when max_candidates[x] > 0, only rows sharing
// at least as many runs as the max_candidates[x]-th most (ties kept). run_of[a * bands + t] is anchor a's
// run in band t (-1 when alone); run r holds run_members[run_ptr[r]:run_ptr[r + 1]].
inline void band_candidates_block(const int32_t* run_of, int64_t bands, const int64_t* run_ptr,
                                  const int32_t* run_members, int64_t m, const int64_t* anchors, int64_t na,
                                  const int64_t* max_candidates, Excluded excluded,
                                  std::vector<std::vector<int32_t>>& nbr, std::vector<std::vector<int32_t>>& shared) {
    nbr.assign(na, {});
    shared.assign(na, {});
#pragma omp parallel
    {
        std::vector<uint16_t> count(m, 0);  // bands shared (bands <= 65535, checked by the binding)
        std::vector<int32_t> touched(m + 1);
        std::vector<int64_t> kept;  // row << 16 | bands shared
        std::vector<int64_t> hist(bands + 1);
#pragma omp for schedule(dynamic, 8)
        for (int64_t x = 0; x < na; ++x) {
            const int64_t a = anchors[x];
            int64_t nt = 0;
            bool in_a_run = false;
            const int32_t* my_runs = run_of + a * bands;
            for (int64_t t = 0; t < bands; ++t) {
                // runs lie all over memory: fetch a run's bounds 16 bands ahead and its members 8 ahead
                if (t + 16 < bands && my_runs[t + 16] >= 0) __builtin_prefetch(run_ptr + my_runs[t + 16]);
                if (t + 8 < bands && my_runs[t + 8] >= 0) __builtin_prefetch(run_members + run_ptr[my_runs[t + 8]]);
                const int32_t r = my_runs[t];
                if (r < 0) continue;
                in_a_run = true;
                const int32_t* q = run_members + run_ptr[r];
                const int32_t* end = run_members + run_ptr[r + 1];
                for (; q < end; ++q) {  // branch-free: a row is listed on its first count
                    const int32_t j = *q;
                    touched[nt] = j;
                    nt += (count[j]++ == 0);
                }
            }
            count[a] = 0;  // the anchor is in each of its runs: listed, but never kept
            if (excluded.lo) {  // nor are its own user's other anchors
                for (int64_t j = excluded.lo[a]; j < excluded.hi[a]; ++j) count[j] = 0;
            }
            uint16_t floor = 1;
            const int64_t others = nt - (in_a_run ? 1 : 0);
            if (max_candidates[x] > 0 && others > max_candidates[x]) {
                std::fill(hist.begin(), hist.end(), 0);
                for (int64_t y = 0; y < nt; ++y) ++hist[count[touched[y]]];
                int64_t seen = 0;
                for (int64_t c = bands; c >= 1; --c) {
                    seen += hist[c];
                    if (seen >= max_candidates[x]) { floor = static_cast<uint16_t>(c); break; }
                }
            }
            kept.clear();
            for (int64_t y = 0; y < nt; ++y) {  // keep and reset in one pass
                const int32_t j = touched[y];
                if (count[j] >= floor) kept.push_back((static_cast<int64_t>(j) << 16) | count[j]);
                count[j] = 0;
            }
            std::sort(kept.begin(), kept.end());
            for (int64_t v : kept) {
                nbr[x].push_back(static_cast<int32_t>(v >> 16));
                shared[x].push_back(static_cast<int32_t>(v & 0xFFFF));
            }
        }
    }
}

constexpr int64_t kHistBins = 65536;

// Histogram sink: counts float32 bit patterns by the high 16 bits (prefix < 0) or, among scores whose
// high bits equal prefix, by the low 16 bits.
struct HistSink {
    int64_t prefix;
    int64_t* hist;
    float floor() const { return std::numeric_limits<float>::denorm_min(); }
    bool selective(int64_t) const { return false; }  // every positive pair is needed
    int64_t wanted() const { return 0; }
    void push(int32_t, float s) {
        uint32_t bits;
        std::memcpy(&bits, &s, sizeof bits);
        if (prefix < 0) ++hist[bits >> 16];
        else if (static_cast<int64_t>(bits >> 16) == prefix) ++hist[bits & 0xFFFFu];
    }
};

// Histogram over pairs (rows[r], j), j > rows[r], s > 0 (see HistSink).
template <class Scorer>
void histogram_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, int64_t prefix, int64_t* hist) {
    std::fill(hist, hist + kHistBins, 0);
#pragma omp parallel
    {
        typename Scorer::Scratch scratch(scorer);
        std::vector<int64_t> local(kHistBins, 0);
        HistSink sink{prefix, local.data()};
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) scorer.score_row(rows[r], rows[r] + 1, scratch, sink);
#pragma omp critical
        for (int64_t b = 0; b < kHistBins; ++b) hist[b] += local[b];
    }
}

}  // namespace simmine
