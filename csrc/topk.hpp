// Per-anchor selection: keep the best k candidates in the order score descending, then column ascending.
#pragma once
#include <algorithm>
#include <cstdint>
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
        const int64_t m = std::min<int64_t>(k_, static_cast<int64_t>(buf_.size()));
        if (m <= 0) return 0;
        if (m < static_cast<int64_t>(buf_.size())) std::nth_element(buf_.begin(), buf_.begin() + m - 1, buf_.end(), better);
        std::sort(buf_.begin(), buf_.begin() + m, better);
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

}  // namespace simmine
