// Per-anchor selection: keep the best k candidates in the order score descending, then column ascending.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace simmine {

struct Cand {
    float score;
    int32_t col;
};

// Strict total order "better first": higher score, then lower column index (= lower seq_id).
inline bool better(const Cand& a, const Cand& b) {
    return a.score > b.score || (a.score == b.score && a.col < b.col);
}

// The one best-k: sorts the best min(k, size) candidates of [first, last) to the front, better first, and
// returns how many. Every selection of the core ends here, so every list has the same order and tie rule.
template <class It>
int64_t keep_best(It first, It last, int64_t k) {
    const int64_t m = std::min<int64_t>(std::max<int64_t>(k, 0), last - first);
    if (m <= 0) return 0;
    if (m < last - first) std::nth_element(first, first + m - 1, last, better);
    std::sort(first, first + m, better);
    return m;
}

// Bounded best-k buffer: candidates no better than the current k-th best are dropped on arrival, and the
// buffer is cut back to k whenever it doubles, so a row costs O(candidates + k log k), not a sort of all.
class BestK {
  public:
    void reset(int64_t k, float min_score) {
        k_ = k;
        min_score_ = min_score;
        full_ = false;
        buf_.clear();
    }
    // Lowest score that can still enter (scorers use it to skip pairs whose upper bound is below).
    float floor() const { return full_ ? worst_.score : min_score_; }
    // Few wanted among many columns: worth bounding pairs instead of scoring them all.
    bool selective(int64_t columns) const { return k_ * 64 <= columns || min_score_ >= 0.1f; }
    int64_t wanted() const { return k_; }
    void push(int32_t col, float score) {
        if (score < min_score_ || k_ <= 0) return;
        const Cand c{score, col};
        if (full_ && !better(c, worst_)) return;
        buf_.push_back(c);
        if (static_cast<int64_t>(buf_.size()) >= 2 * k_ + 64) shrink();
    }
    // Writes the best min(k, seen) sorted; returns how many.
    int64_t take(int32_t* out_col, float* out_score) {
        const int64_t m = keep_best(buf_.begin(), buf_.end(), k_);
        for (int64_t t = 0; t < m; ++t) {
            out_col[t] = buf_[t].col;
            out_score[t] = buf_[t].score;
        }
        return m;
    }

  private:
    void shrink() {
        std::nth_element(buf_.begin(), buf_.begin() + k_ - 1, buf_.end(), better);
        buf_.resize(k_);
        worst_ = buf_[k_ - 1];  // the k-th best: every kept candidate is at least as good
        full_ = true;
    }
    int64_t k_ = 0;
    float min_score_ = 0.0f;
    bool full_ = false;
    Cand worst_{0.0f, 0};
    std::vector<Cand> buf_;
};

// Scored unordered pairs (a[t], b[t], s[t]) → per-anchor lists both ways: candidates with s > 0 and
// s >= floor, counted into start (n + 1 offsets into cand), each anchor's best k[x] sorted to the front of
// its range (score descending, seq_id ascending); off (n + 1) gets the kept lists' offsets.
inline void assemble_lists(int64_t n, int64_t m, const int64_t* a, const int64_t* b, const float* s, const int64_t* k,
                           float floor, std::vector<int64_t>& start, std::vector<Cand>& cand, int64_t* off) {
    start.assign(static_cast<size_t>(n) + 1, 0);
    for (int64_t t = 0; t < m; ++t) {
        if (s[t] > 0.0f && s[t] >= floor) { ++start[a[t] + 1]; ++start[b[t] + 1]; }
    }
    for (int64_t x = 0; x < n; ++x) start[x + 1] += start[x];
    cand.resize(start[n]);
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t t = 0; t < m; ++t) {
        if (s[t] > 0.0f && s[t] >= floor) {
            cand[fill[a[t]]++] = Cand{s[t], static_cast<int32_t>(b[t])};
            cand[fill[b[t]]++] = Cand{s[t], static_cast<int32_t>(a[t])};
        }
    }
    std::vector<int64_t> kept(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 256)
    for (int64_t x = 0; x < n; ++x) kept[x] = keep_best(cand.begin() + start[x], cand.begin() + start[x + 1], k[x]);
    off[0] = 0;
    for (int64_t x = 0; x < n; ++x) off[x + 1] = off[x] + kept[x];
}

// Per row of a float32 [r, n] block: the columns of its kk largest finite scores, best first (score
// descending, column ascending), -1 past the finite ones -> o[r * kk].
inline void dense_row_topk(const float* s, int64_t r, int64_t n, int64_t kk, int64_t* o) {
#pragma omp parallel
    {
        BestK best;
        std::vector<int32_t> cols(kk);
        std::vector<float> vals(kk);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < r; ++i) {
            best.reset(kk, -std::numeric_limits<float>::infinity());
            const float* row = s + i * n;
            for (int64_t j = 0; j < n; ++j) {
                if (row[j] >= best.floor() && row[j] > -std::numeric_limits<float>::infinity()) {
                    best.push(static_cast<int32_t>(j), row[j]);
                }
            }
            const int64_t m = best.take(cols.data(), vals.data());
            for (int64_t t = 0; t < kk; ++t) o[i * kk + t] = t < m ? cols[t] : -1;
        }
    }
}

}  // namespace simmine
