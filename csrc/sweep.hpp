// Prefix sweep: exact Jaccard top-k for anchors whose histories are nested windows over their users'
// sequences (prefix anchors). One thread takes one family (a user's consecutive rows) at a time and slides
// its window along the rows: an item entering or leaving the window changes the intersection count of
// every column holding it by one, and the columns holding an item's occurrence as their latest one form a
// few contiguous row ranges, so a step costs O(item popularity), not O(Σ over the window). A pool holds
// every column scoring >= G; columns whose count rose are checked against G, the others cannot rise above
// it; when fewer than k pool members remain >= G, a scan refills the pool: of the columns sharing a code
// with the window when they are fewer than all, of every column otherwise.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "metrics.hpp"
#include "tiles.hpp"
#include "topk.hpp"

namespace simmine {

struct PrefixSweep {
    int64_t n;               // rows (= columns) of the tile
    const uint16_t* size;    // |set| of every row (sets of at most 65,534 codes: counts fit 16 bits)
    const int32_t* stream;   // local item code at every stream position
    const int64_t* ws;       // row r's window: stream positions [ws[r], we[r]), nondecreasing along a family
    const int64_t* we;
    const int64_t* family;   // per row: its family (user); a family's rows are consecutive
    const int64_t* code_ptr; // code x covers rows [range_lo[q], range_hi[q]) for q in [code_ptr[x], code_ptr[x+1])
    const int32_t* range_lo;
    const int32_t* range_hi;
    const int64_t* cover;    // per code: rows its ranges cover in all (what a step entering it touches)
    int64_t vocab;
    int32_t max_size;        // at most 65,534
    Excluded excluded;       // with same-user exclusion, a row's run is its family's rows
    int64_t pool_target;     // columns a refill puts in the pool, at least (more on ties)

    struct Scratch {
        std::vector<uint32_t> cs;           // per column: |set| << 16 | intersection count (one cache line)
        std::vector<int32_t> mult, pool, cmin, touched;
        std::vector<uint8_t> inpool;
        std::vector<float> scores, table;   // table[b * (max_size + 1) + c]: jaccard(c, a, b) for the current a
        std::vector<float> kth_scratch;
        std::vector<int64_t> hist;          // columns per (b, c) cell, for a refill
        std::vector<Cand> cands;
        int64_t cur_ws = 0, cur_we = 0, table_a = -1;
        int64_t prev_a = -1;  // the previous row's set size
        float g = 0.0f;       // the pool's floor G
        int64_t refills = 0;
        explicit Scratch(const PrefixSweep& s)
            : cs(s.n), mult(s.vocab, 0), cmin(s.max_size + 1, 0), inpool(s.n, 0) {
            for (int64_t j = 0; j < s.n; ++j) cs[j] = static_cast<uint32_t>(s.size[j]) << 16;
            if (s.tabled()) {
                table.assign(static_cast<size_t>(s.max_size + 1) * (s.max_size + 1), 0.0f);
                hist.assign(table.size(), 0);
            }
        }
    };

    // Sets this small have every score jaccard(c, a, b) in a table per a, and refills count cells, not sort.
    static constexpr int32_t kTableMax = 256;
    bool tabled() const { return max_size <= kTableMax; }

    // The score table of set size a (built again only when a changes).
    void set_table(int64_t a, Scratch& sc) const {
        if (!tabled() || sc.table_a == a) return;
        const int64_t w = max_size + 1;
        for (int64_t b = 0; b < w; ++b) {
            for (int64_t c = 0; c < w; ++c) sc.table[b * w + c] = c <= std::min(a, b) ? jaccard_from_counts(c, a, b) : 0.0f;
        }
        sc.table_a = a;
    }

    float score(int64_t j, int64_t a, const Scratch& sc) const {
        const uint32_t v = sc.cs[j];
        const int64_t c = v & 0xFFFFu, b = v >> 16;
        return tabled() ? sc.table[b * (max_size + 1) + c] : jaccard_from_counts(c, a, b);
    }

    // counts[j] += delta over every column holding code x (as its latest occurrence in its window).
    void apply(int32_t x, int delta, Scratch& sc) const {
        uint32_t* v = sc.cs.data();
        const uint32_t d = static_cast<uint32_t>(delta);  // a count never passes 0 or 65,535: no carry into |set|
        for (int64_t q = code_ptr[x]; q < code_ptr[x + 1]; ++q) {
            for (int64_t j = range_lo[q]; j < range_hi[q]; ++j) v[j] += d;
        }
    }

    // counts[j] += 1 over the columns holding code x, each column that now reaches the pool's floor (cmin,
    // for row i) joining the pool.
    void raise(int64_t i, int32_t x, Scratch& sc) const {
        uint32_t* cs = sc.cs.data();
        const int32_t* cmin = sc.cmin.data();
        for (int64_t q = code_ptr[x]; q < code_ptr[x + 1]; ++q) {
            for (int64_t j = range_lo[q]; j < range_hi[q]; ++j) {
                const uint32_t v = ++cs[j];
                if (static_cast<int32_t>(v & 0xFFFFu) >= cmin[v >> 16] && !sc.inpool[j] && !skipped(i, j)) {
                    sc.inpool[j] = 1;
                    sc.pool.push_back(static_cast<int32_t>(j));
                }
            }
        }
    }

    // Moves the window to row i's. With ``check``, columns whose count rose to the pool's floor join it.
    void slide(int64_t i, bool check, Scratch& sc) const {
        const int64_t s = ws[i], e = we[i];
        for (int64_t p = std::max(sc.cur_we, s); p < e; ++p) {  // add first: a code leaving and re-entering stays
            const int32_t x = stream[p];
            if (sc.mult[x]++ == 0) {
                if (check) raise(i, x, sc);
                else apply(x, 1, sc);
            }
        }
        for (int64_t p = sc.cur_ws; p < std::min(s, sc.cur_we); ++p) {  // all of the old window on a jump past it
            const int32_t x = stream[p];
            if (--sc.mult[x] == 0) apply(x, -1, sc);
        }
        sc.cur_ws = s;
        sc.cur_we = e;
    }

    // Empties the window (counts back to zero) and the pool.
    void clear(Scratch& sc) const {
        for (int64_t p = sc.cur_ws; p < sc.cur_we; ++p) {
            const int32_t x = stream[p];
            if (--sc.mult[x] == 0) apply(x, -1, sc);
        }
        sc.cur_ws = sc.cur_we = 0;
        for (int32_t j : sc.pool) sc.inpool[j] = 0;
        sc.pool.clear();
    }

    bool skipped(int64_t i, int64_t j) const {  // excluded from the pool itself: the family's own run
        return excluded.lo != nullptr && j >= excluded.lo[i] && j < excluded.hi[i];
    }

    // cmin[b]: the smallest count c with jaccard(c, a, b) >= g (max_size + 1 when none).
    void thresholds(int64_t a, float g, Scratch& sc) const {
        for (int32_t b = 0; b <= max_size; ++b) {
            const int64_t top = std::min<int64_t>(a, b);
            double guess = std::floor(static_cast<double>(g) * static_cast<double>(a + b) / (1.0 + g)) - 1.0;
            int64_t c = std::max<int64_t>(1, static_cast<int64_t>(guess));
            while (c > 1 && jaccard_from_counts(c - 1, a, b) >= g) --c;
            while (c <= top && jaccard_from_counts(c, a, b) < g) ++c;
            sc.cmin[b] = c <= top ? static_cast<int32_t>(c) : max_size + 1;
        }
    }

    // The columns sharing a code with row i's window, in sc.touched when that is fewer than all n columns
    // (short windows, rare items); returns whether it is.
    bool list_touched(Scratch& sc) const {
        int64_t cost = 0;
        for (int64_t p = sc.cur_ws; p < sc.cur_we && cost < n; ++p) {
            if (sc.mult[stream[p]] > 0) cost += cover[stream[p]];
        }
        sc.touched.clear();
        if (cost >= n) return false;
        for (int64_t p = sc.cur_ws; p < sc.cur_we; ++p) {
            const int32_t x = stream[p];
            if (sc.mult[x] <= 0) continue;
            sc.mult[x] = -sc.mult[x];  // visited: every code once
            for (int64_t q = code_ptr[x]; q < code_ptr[x + 1]; ++q) {
                for (int64_t j = range_lo[q]; j < range_hi[q]; ++j) {
                    if (!sc.inpool[j]) {
                        sc.inpool[j] = 2;  // marks the list; the pool's own marks are 1
                        sc.touched.push_back(static_cast<int32_t>(j));
                    }
                }
            }
        }
        for (int64_t p = sc.cur_ws; p < sc.cur_we; ++p) {
            if (sc.mult[stream[p]] < 0) sc.mult[stream[p]] = -sc.mult[stream[p]];
        }
        for (int32_t j : sc.touched) sc.inpool[j] = 0;
        return true;
    }

    // The pool_target-th best score of row i's columns (at least the floor, and positive), over the
    // columns listed in sc.touched, or all of them.
    float pool_floor(int64_t i, int64_t a, float floor, bool listed, Scratch& sc) const {
        float g = floor > 0.0f ? floor : std::numeric_limits<float>::denorm_min();
        const uint32_t* cs = sc.cs.data();
        sc.scores.clear();
        if (tabled()) {  // count columns per (b, c) cell, then walk the cells by score
            const int64_t w = max_size + 1;
            std::fill(sc.hist.begin(), sc.hist.end(), 0);
            auto count = [&](int64_t j) {
                const uint32_t v = cs[j];
                if ((v & 0xFFFFu) != 0 && !skipped(i, j)) ++sc.hist[static_cast<int64_t>(v >> 16) * w + (v & 0xFFFFu)];
            };
            if (listed) {
                for (int32_t j : sc.touched) count(j);
            } else {
                for (int64_t j = 0; j < n; ++j) count(j);
            }
            sc.cands.clear();
            for (int64_t cell = 0; cell < static_cast<int64_t>(sc.hist.size()); ++cell) {
                if (sc.hist[cell] && sc.table[cell] >= floor && sc.table[cell] > 0.0f) {
                    sc.cands.push_back(Cand{sc.table[cell], static_cast<int32_t>(cell)});
                }
            }
            std::sort(sc.cands.begin(), sc.cands.end(), [](const Cand& x, const Cand& y) { return x.score > y.score; });
            int64_t seen = 0;
            for (const Cand& cell : sc.cands) {
                seen += sc.hist[cell.col];
                if (seen >= pool_target) return std::max(g, cell.score);
            }
            return g;
        }
        auto offer = [&](int64_t j) {
            if ((cs[j] & 0xFFFFu) == 0 || skipped(i, j)) return;
            const float s = jaccard_from_counts(cs[j] & 0xFFFFu, a, cs[j] >> 16);
            if (s >= floor && s > 0.0f) sc.scores.push_back(s);
        };
        if (listed) {
            for (int32_t j : sc.touched) offer(j);
        } else {
            for (int64_t j = 0; j < n; ++j) offer(j);
        }
        if (static_cast<int64_t>(sc.scores.size()) > pool_target) {
            std::nth_element(sc.scores.begin(), sc.scores.begin() + pool_target - 1, sc.scores.end(),
                             std::greater<float>());
            g = std::max(g, sc.scores[pool_target - 1]);
        }
        return g;
    }

    // Refills the pool: every column scoring >= G, G the pool_target-th best score of row i's columns.
    float refill(int64_t i, int64_t a, float floor, Scratch& sc) const {
        ++sc.refills;
        for (int32_t j : sc.pool) sc.inpool[j] = 0;
        sc.pool.clear();
        const bool listed = list_touched(sc);
        const float g = pool_floor(i, a, floor, listed, sc);
        const uint32_t* cs = sc.cs.data();
        thresholds(a, g, sc);
        auto admit = [&](int64_t j) {
            const int32_t c = static_cast<int32_t>(cs[j] & 0xFFFFu);
            if (c > 0 && c >= sc.cmin[cs[j] >> 16] && !skipped(i, j)) {
                sc.inpool[j] = 1;
                sc.pool.push_back(static_cast<int32_t>(j));
            }
        };
        if (listed) {
            for (int32_t j : sc.touched) admit(j);
        } else {
            for (int64_t j = 0; j < n; ++j) admit(j);
        }
        return g;
    }

    // The pool cut to its members >= g, and in sc.cands the candidates for row i's best k (those at least as
    // good as its k-th, ties included). Returns false when fewer than k members reach g and g is above the
    // floor: the pool must be refilled.
    bool take_best(int64_t i, int64_t a, int64_t k, float g, float floor, Scratch& sc) const {
        size_t kept = 0;
        sc.scores.clear();
        int64_t eligible = 0;
        for (int32_t j : sc.pool) {
            const float s = score(j, a, sc);
            if (s < g) {
                sc.inpool[j] = 0;
                continue;
            }
            sc.pool[kept++] = j;
            const bool ok = !excluded(i, j);
            sc.scores.push_back(ok ? s : -1.0f);
            eligible += ok;
        }
        sc.pool.resize(kept);
        const bool complete = g <= floor || g <= std::numeric_limits<float>::denorm_min();
        if (eligible < k && !complete) return false;
        float kth = 0.0f;  // the k-th best score: members below it cannot be among the best k
        if (k > 0 && eligible > k) {
            sc.kth_scratch.assign(sc.scores.begin(), sc.scores.end());
            std::nth_element(sc.kth_scratch.begin(), sc.kth_scratch.begin() + k - 1, sc.kth_scratch.end(),
                             std::greater<float>());
            kth = sc.kth_scratch[k - 1];
        }
        sc.cands.clear();
        if (k > 0) {
            for (size_t t = 0; t < kept; ++t) {
                if (sc.scores[t] >= kth && sc.scores[t] > 0.0f) sc.cands.push_back(Cand{sc.scores[t], sc.pool[t]});
            }
        }
        return true;
    }

    // Row i's candidates in sc.cands. The window moves from the previous row's unless the family starts
    // here; a smaller set than the previous row's can raise untouched scores, so it refills too.
    void row(int64_t i, int64_t k, bool family_start, float floor, Scratch& sc) const {
        const int64_t a = size[i];
        const bool fresh = family_start || a < sc.prev_a;
        set_table(a, sc);
        if (!fresh && a != sc.prev_a) thresholds(a, sc.g, sc);
        slide(i, !fresh, sc);  // columns whose count rose to g join the pool on the way
        if (fresh || !take_best(i, a, k, sc.g, floor, sc)) {
            sc.g = refill(i, a, floor, sc);
            take_best(i, a, k, sc.g, floor, sc);
        }
        sc.prev_a = a;
    }
};

// Rows of one block (ascending, families consecutive): per row, columns not excluded with s > 0 and
// s >= min_score, the best k_row[r]. Threads take whole families. A sweep offers Scratch, row(i, k,
// family_start, min_score, scratch) leaving row i's candidates in scratch.cands, clear(scratch), and
// scratch.refills.
template <class Sweep>
inline void sweep_block(const Sweep& sw, const int64_t* rows, int64_t nrows, const int64_t* k_row, float min_score,
                        BlockOutput& out, int64_t* refills) {
    const int nthreads = max_threads();
    out.reset(nthreads, nrows);
    std::vector<int64_t> runs{0};  // [runs[f], runs[f+1]): rows of one family
    for (int64_t r = 1; r < nrows; ++r) {
        if (sw.family[rows[r]] != sw.family[rows[r - 1]]) runs.push_back(r);
    }
    runs.push_back(nrows);
    const int64_t nruns = static_cast<int64_t>(runs.size()) - 1;
    int64_t total_refills = 0;
#pragma omp parallel reduction(+ : total_refills)
    {
        const int tid = thread_id();
        typename Sweep::Scratch sc(sw);
        std::vector<int32_t>& cols = out.cols[tid];
        std::vector<float>& scores = out.scores[tid];
#pragma omp for schedule(dynamic, 1)
        for (int64_t f = 0; f < nruns; ++f) {
            for (int64_t r = runs[f]; r < runs[f + 1]; ++r) {
                const int64_t i = rows[r];
                const int64_t k = std::max<int64_t>(0, std::min<int64_t>(k_row[r], sw.n - 1));
                sw.row(i, k, r == runs[f], min_score, sc);
                const int64_t m = keep_best(sc.cands.begin(), sc.cands.end(), k);
                const int64_t at = static_cast<int64_t>(cols.size());
                for (int64_t t = 0; t < m; ++t) {
                    cols.push_back(sc.cands[t].col);
                    scores.push_back(sc.cands[t].score);
                }
                out.thread_of[r] = tid;
                out.start[r] = at;
                out.count[r] = m;
            }
            sw.clear(sc);
        }
        total_refills += sc.refills;
    }
    if (refills) *refills += total_refills;
}

}  // namespace simmine
