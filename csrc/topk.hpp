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

// Strict weak order "better first": higher score, then lower column index (= lower seq_id).
inline bool better(const Cand& a, const Cand& b) {
    return a.score > b.score || (a.score == b.score && a.col < b.col);
}

// Moves the best min(k, cands.size()) candidates, sorted, into out_col/out_score; returns how many.
inline int64_t take_best(std::vector<Cand>& cands, int64_t k, int32_t* out_col, float* out_score) {
    const int64_t m = std::min<int64_t>(k, static_cast<int64_t>(cands.size()));
    if (m <= 0) return 0;
    if (m < static_cast<int64_t>(cands.size())) {
        std::nth_element(cands.begin(), cands.begin() + m, cands.end(), better);
    }
    std::sort(cands.begin(), cands.begin() + m, better);
    for (int64_t t = 0; t < m; ++t) {
        out_col[t] = cands[t].col;
        out_score[t] = cands[t].score;
    }
    return m;
}

}  // namespace simmine
