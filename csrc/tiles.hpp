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

#include "common.hpp"
#include "metrics.hpp"
#include "myers.hpp"
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

    // Row i spread by code into ``table`` (its weights; zeros elsewhere), and the table zeroed again.
    void spread(int64_t i, double* table) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) table[idx[p]] = w[p];
    }
    void unspread(int64_t i, double* table) const {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) table[idx[p]] = 0.0;
    }
    // The cosine of row i (spread in ``table``) with row j.
    float spread_score(const double* table, int64_t i, int64_t j) const {
        return cosine_from_dot(table_dot(table, idx, w, indptr[j], indptr[j + 1]), norms[i], norms[j]);
    }

    void listed_begin(int64_t i, Scratch& sc) const { spread(i, sc.table.data()); }
    float listed_score(int64_t i, int64_t j, Scratch& sc) const { return spread_score(sc.table.data(), i, j); }
    void listed_end(int64_t i, Scratch& sc) const { unspread(i, sc.table.data()); }

    // Row i (spread in a table) against entries [lo, hi) of a CSR (codes, weights): products added in
    // ascending code order, non-common codes adding an exact 0.0, so the sum rounds as the accumulation does.
    static double table_dot(const double* table, const int32_t* codes, const double* weights, int64_t lo, int64_t hi) {
        double dot = 0.0;
        for (int64_t p = lo; p < hi; ++p) dot += table[codes[p]] * weights[p];
        return dot;
    }
    // Exact dot of row i with row j.
    double dot_with(const Scratch& sc, int64_t j) const {
        return table_dot(sc.table.data(), idx, w, indptr[j], indptr[j + 1]);
    }
    // Exact dot of row i with row j's heavy part (which is all of it when the two share no light code).
    double heavy_dot(const Scratch& sc, int64_t j) const {
        return table_dot(sc.table.data(), heavy_idx, heavy_w, heavy_ptr[j], heavy_ptr[j + 1]);
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

// Pair sink: every (row, j, s) with s >= min_score and, given bar, s >= bar[j], appended to the calling thread's
// buffers; floor_ is the least score it can keep, what the scorer may prune below.
struct PairSink {
    float floor_;
    float min_score;
    const float* bar;
    int32_t row;
    std::vector<int32_t>* rows;
    std::vector<int32_t>* cols;
    std::vector<float>* scores;
    float floor() const { return floor_; }
    bool selective(int64_t) const { return floor_ >= 0.1f; }
    int64_t wanted() const { return 0; }
    void push(int32_t j, float s) {
        if (s < min_score || (bar != nullptr && s < bar[j])) return;
        rows->push_back(row);
        cols->push_back(j);
        scores->push_back(s);
    }
};

// (rows[r], j) not excluded with s > 0 and s >= min_score. Without bar: j > rows[r], each unordered pair once (a
// threshold join). With bar: every j on either side with s >= bar[j] too (an update's offers: the entries a row
// may add to the lists of the others).
template <class Scorer>
void pairs_block(const Scorer& scorer, const int64_t* rows, int64_t nrows, float min_score, const float* bar,
                 std::vector<std::vector<int32_t>>& out_rows, std::vector<std::vector<int32_t>>& out_cols,
                 std::vector<std::vector<float>>& out_scores) {
    const int nthreads = max_threads();
    out_rows.assign(nthreads, {});
    out_cols.assign(nthreads, {});
    out_scores.assign(nthreads, {});
    float floor_ = min_score;
    if (bar != nullptr) {
        float least = std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < scorer.n; ++j) least = std::min(least, bar[j]);
        floor_ = std::max(min_score, std::max(least, 0.0f));
    }
#pragma omp parallel
    {
        const int tid = thread_id();
        typename Scorer::Scratch scratch(scorer);
        PairSink sink{floor_, min_score, bar, 0, &out_rows[tid], &out_cols[tid], &out_scores[tid]};
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < nrows; ++r) {
            sink.row = static_cast<int32_t>(rows[r]);
            scorer.score_row(rows[r], bar != nullptr ? 0 : rows[r] + 1, scratch, sink);
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

constexpr int64_t kHistBins = 65536;  // a score histogram's bins: 16 bits of the float32 pattern

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
