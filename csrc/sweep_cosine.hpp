// Prefix sweep for TF-IDF: exact cosine top-k for prefix anchors (nested windows over their users' sequences).
// As for Jaccard (sweep.hpp), one thread takes one family (a user's consecutive rows) at a time and slides
// its window along them. Each column keeps its dot product with the window in fixed point: code x weighs
// q(x) = idf(x)² in units of 2^-scale, an integer, so dot(j) = Σ tf_window(x) · tf_j(x) · q(x) is exact
// integer arithmetic and an item entering or leaving the window adds or subtracts q(x) over the row
// ranges that hold one of its occurrences. A column's ratio r(j) = dot(j) / ‖j‖ orders the columns as
// their cosines with the window do (the window's own norm is common to all), and does not move when the
// window's other items do. A pool holds every column with r >= G; columns whose dot rose are checked
// against G; a scan refills the pool when too few members remain. The fixed-point dot is within a known
// bound of the true one, so the pool only selects: candidates near the k-th are scored exactly (the
// tile's own weights, summed in ascending code order as every backend does), and the best k of those
// exact float32 scores are kept, ties by column.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "metrics.hpp"
#include "tiles.hpp"
#include "sweep.hpp"
#include "topk.hpp"

namespace simmine {

struct CosineSweep {
    int64_t n;                // rows (= columns) of the tile
    const int32_t* stream;    // local code at every stream position; -1: an item of weight 0 (in every history)
    const int64_t* ws;        // row r's window: stream positions [ws[r], we[r]), nondecreasing along a family
    const int64_t* we;
    const int64_t* family;    // per row: its family (user); a family's rows are consecutive
    const int64_t* code_ptr;  // code x's occurrences cover rows [range_lo[q], range_hi[q]), q in [code_ptr[x], code_ptr[x+1])
    const int32_t* range_lo;
    const int32_t* range_hi;
    const int64_t* cover;     // per code: rows its ranges cover in all
    int64_t vocab;
    CosineScorer exact;       // the tile's weighted sets: exact scores of the candidates
    Excluded excluded;        // with same-user exclusion, a row's run is its family's rows
    int64_t pool_target;      // columns a refill puts in the pool, at least (more on ties)
    std::vector<int64_t> q;   // per code: idf² · 2^scale, rounded, at least 1
    double unit = 0.0;        // 2^-scale
    std::vector<double> inv_norm;  // per column: 1 / ‖j‖ (0 for a zero row)
    double err_per_item = 0.0;     // |r̃(j) − r(j)| <= err_per_item · |window| for every column

    // Fixed-point weights from each code's idf (the scale leaves the largest dot product below 2^61).
    void prepare(const double* idf) {
        int64_t max_len = 1;
        for (int64_t r = 0; r < n; ++r) max_len = std::max<int64_t>(max_len, we[r] - ws[r]);
        double max_w = 0.0;
        for (int64_t x = 0; x < vocab; ++x) max_w = std::max(max_w, idf[x] * idf[x]);
        const double top = static_cast<double>(max_len) * static_cast<double>(max_len) * std::max(max_w, 1.0);
        const int scale = std::clamp(61 - static_cast<int>(std::ceil(std::log2(top))), 0, 52);
        unit = std::ldexp(1.0, -scale);
        q.resize(vocab);
        for (int64_t x = 0; x < vocab; ++x) {
            q[x] = std::max<int64_t>(1, std::llround(idf[x] * idf[x] / unit));
        }
        inv_norm.resize(n);
        double worst = 0.0;  // max over columns of |j| / ‖j‖: a product's rounding error is at most unit / 2
        for (int64_t j = 0; j < n; ++j) {
            inv_norm[j] = exact.norms[j] > 0.0 ? 1.0 / exact.norms[j] : 0.0;
            worst = std::max(worst, static_cast<double>(we[j] - ws[j]) * inv_norm[j]);
        }
        err_per_item = worst * unit;  // twice the bound: also covers the double arithmetic around it
    }

    struct Scratch {
        std::vector<int64_t> dot;   // per column: fixed-point dot with the window
        std::vector<uint8_t> mark;  // per column: 1 in the pool, 2 listed as touched (list_touched)
        std::vector<int32_t> pool, touched;
        std::vector<double> ratios;
        std::vector<double> table;  // the window's exact weights by code (CosineScorer::spread)
        std::vector<Cand> cands;
        int64_t cur_ws = 0, cur_we = 0;
        double g = 0.0;             // the pool's floor G, in units of r
        int64_t refills = 0;
        explicit Scratch(const CosineSweep& s) : dot(s.n, 0), mark(s.n, 0), table(s.vocab, 0.0) {}
    };

    bool skipped(int64_t i, int64_t j) const {  // never in the pool: the family's own run
        return excluded.lo != nullptr && j >= excluded.lo[i] && j < excluded.hi[i];
    }
    // r̃(j) = dot(j) / ‖j‖, the one expression every pool test uses.
    double ratio(int64_t j, const Scratch& sc) const { return static_cast<double>(sc.dot[j]) * unit * inv_norm[j]; }
    // Whether column j belongs in a pool with floor g: it shares a weighted item with the window and r̃ >= g.
    bool above(int64_t j, double g, const Scratch& sc) const { return sc.dot[j] > 0 && ratio(j, sc) >= g; }

    void join(int64_t j, Scratch& sc) const {
        sc.mark[j] = 1;
        sc.pool.push_back(static_cast<int32_t>(j));
    }

    // dot[j] += delta · q(x) over the columns holding an occurrence of x; with ``check`` (from row i),
    // columns that reach G join the pool.
    void apply(int64_t i, int32_t x, int64_t delta, bool check, Scratch& sc) const {
        const int64_t w = delta * q[x];
        int64_t* dot = sc.dot.data();
        for (int64_t r = code_ptr[x]; r < code_ptr[x + 1]; ++r) {
            for (int64_t j = range_lo[r]; j < range_hi[r]; ++j) {
                dot[j] += w;
                if (check && !sc.mark[j] && above(j, sc.g, sc) && !skipped(i, j)) join(j, sc);
            }
        }
    }

    // Moves the window to row i's (entering items first, so a column's last rise sees its highest dot).
    void slide(int64_t i, bool check, Scratch& sc) const {
        const int64_t s = ws[i], e = we[i];
        for (int64_t p = std::max(sc.cur_we, s); p < e; ++p) {
            if (stream[p] >= 0) apply(i, stream[p], 1, check, sc);
        }
        for (int64_t p = sc.cur_ws; p < std::min(s, sc.cur_we); ++p) {
            if (stream[p] >= 0) apply(i, stream[p], -1, false, sc);
        }
        sc.cur_ws = s;
        sc.cur_we = e;
    }

    void empty_pool(Scratch& sc) const {
        for (int32_t j : sc.pool) sc.mark[j] = 0;
        sc.pool.clear();
    }

    // Empties the window (dots back to zero, exactly) and the pool.
    void clear(Scratch& sc) const {
        for (int64_t p = sc.cur_ws; p < sc.cur_we; ++p) {
            if (stream[p] >= 0) apply(0, stream[p], -1, false, sc);
        }
        sc.cur_ws = sc.cur_we = 0;
        empty_pool(sc);
    }

    // The columns sharing a weighted item with the window, in sc.touched, when they are fewer than all n
    // (rare items, short windows); returns whether they are. The pool must be empty.
    bool list_touched(Scratch& sc) const {
        int64_t cost = 0;
        for (int64_t p = sc.cur_ws; p < sc.cur_we && cost < n; ++p) {
            if (stream[p] >= 0) cost += cover[stream[p]];
        }
        sc.touched.clear();
        if (cost >= n) return false;
        for (int64_t p = sc.cur_ws; p < sc.cur_we; ++p) {
            const int32_t x = stream[p];
            if (x < 0) continue;
            for (int64_t r = code_ptr[x]; r < code_ptr[x + 1]; ++r) {
                for (int64_t j = range_lo[r]; j < range_hi[r]; ++j) {
                    if (!sc.mark[j]) {
                        sc.mark[j] = 2;
                        sc.touched.push_back(static_cast<int32_t>(j));
                    }
                }
            }
        }
        for (int32_t j : sc.touched) sc.mark[j] = 0;
        return true;
    }

    // Refills the pool for row i: G the pool_target-th best r̃ of the columns (or ``cap`` when lower), every
    // column with r̃ >= G a member. O(columns sharing an item with the window) when they are fewer than all.
    void refill(int64_t i, double cap, Scratch& sc) const {
        ++sc.refills;
        empty_pool(sc);
        const bool listed = list_touched(sc);
        auto each = [&](auto&& f) {
            if (listed) {
                for (int32_t j : sc.touched) f(j);
            } else {
                for (int64_t j = 0; j < n; ++j) f(j);
            }
        };
        sc.ratios.clear();
        each([&](int64_t j) {
            if (sc.dot[j] > 0 && !skipped(i, j)) sc.ratios.push_back(ratio(j, sc));
        });
        double g = 0.0;
        if (static_cast<int64_t>(sc.ratios.size()) > pool_target) {
            std::nth_element(sc.ratios.begin(), sc.ratios.begin() + pool_target - 1, sc.ratios.end(),
                             std::greater<double>());
            g = sc.ratios[pool_target - 1];
        }
        sc.g = std::max(0.0, std::min(g, cap));
        each([&](int64_t j) {
            if (above(j, sc.g, sc) && !skipped(i, j)) join(j, sc);
        });
    }

    // While the window grows, every dot rises and the pool with it: past this many times its target, G rises.
    static constexpr int64_t kPoolGrowth = 4;

    // The pool_target-th best of sc.ratios, whose k-th best is in place (nth_element).
    double pool_floor(int64_t k, Scratch& sc) const {
        std::nth_element(sc.ratios.begin() + k, sc.ratios.begin() + pool_target - 1, sc.ratios.end(),
                         std::greater<double>());
        return sc.ratios[pool_target - 1];
    }

    // Members below g leave the pool (those below G, or below a G raised to g).
    void keep_above(double g, Scratch& sc) const {
        sc.g = std::max(sc.g, g);
        size_t kept = 0;
        for (int32_t j : sc.pool) {
            if (above(j, sc.g, sc)) sc.pool[kept++] = j;
            else sc.mark[j] = 0;
        }
        sc.pool.resize(kept);
    }

    // Row i's best k into sc.cands from the pool, or false when the pool cannot prove them: fewer than k
    // members provably ahead of every column outside. Sets *cap to a floor that would.
    bool take_best(int64_t i, int64_t k, float min_score, Scratch& sc, double* cap) const {
        const double norm_i = exact.norms[i];
        sc.cands.clear();
        if (k <= 0 || norm_i <= 0.0) return true;  // nothing to choose, or a zero vector: similarity 0 with all
        const double err = err_per_item * static_cast<double>(we[i] - ws[i]);
        keep_above(sc.g, sc);
        sc.ratios.clear();
        for (int32_t j : sc.pool) {
            if (!excluded(i, j)) sc.ratios.push_back(ratio(j, sc));
        }
        // Every column outside has r < G + err. The pool proves the best k when G + err stays below the
        // k-th best member's r − err (float32 ties allowed for), or below what min_score lets in.
        const double floor_r = static_cast<double>(min_score) * norm_i * kBelow;
        const int64_t m = static_cast<int64_t>(sc.ratios.size());
        double cut = 0.0;  // members below it cannot be among the best k
        bool proven = sc.g <= 0.0 || sc.g + err <= floor_r;
        if (m >= k) {
            std::nth_element(sc.ratios.begin(), sc.ratios.begin() + k - 1, sc.ratios.end(), std::greater<double>());
            cut = (sc.ratios[k - 1] - err) * kBelow - err;
            proven = proven || sc.g <= cut;
            if (proven && m > kPoolGrowth * pool_target) keep_above(std::min(cut, pool_floor(k, sc)), sc);
        }
        *cap = std::max(cut, floor_r - err);
        if (!proven) return false;
        cut = std::max(cut, floor_r - err);
        exact.spread(i, sc.table.data());
        for (int32_t j : sc.pool) {
            if (excluded(i, j) || ratio(j, sc) < cut) continue;
            const float s = exact.spread_score(sc.table.data(), i, j);
            if (s > 0.0f && s >= min_score) sc.cands.push_back(Cand{s, j});
        }
        exact.unspread(i, sc.table.data());
        return true;
    }

    // Row i's candidates in sc.cands; the window moves from the previous row's unless the family starts here.
    void row(int64_t i, int64_t k, bool family_start, float min_score, Scratch& sc) const {
        slide(i, !family_start, sc);  // columns whose dot rose to G join the pool on the way
        const double open = std::numeric_limits<double>::infinity();
        double cap = open;
        if (family_start) refill(i, open, sc);
        // a refill at the pool's own target, then one capped where take_best says, then all columns
        for (int attempt = family_start; !take_best(i, k, min_score, sc, &cap); ++attempt) {
            refill(i, attempt == 0 ? open : (attempt == 1 ? cap : 0.0), sc);
        }
    }
};

}  // namespace simmine
