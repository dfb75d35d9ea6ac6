// Item–item similarity over user sets (simmine items --metric, and the ItemCF graphs): each item's best k
// other items by c_ij = |U_i ∩ U_j| (or Σ w_u over U_i ∩ U_j), counted through the users' item lists.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "metrics.hpp"
#include "tiles.hpp"
#include "topk.hpp"

namespace simmine {

// Unique items per user and users per item, both ascending; with counts, how often each user's item appears
// in its sequence. Any CSR of codes fits: rows as users, codes as items (metrics' per-row unique codes too).
struct UserItemSets {
    std::vector<int64_t> user_ptr, item_ptr, counts;
    std::vector<int32_t> user_items, item_users;
};

// N_i into out[i]: how many users' sequences hold item i at least once.
inline void users_per_item(const int64_t* indptr, const int32_t* codes, int64_t users, int64_t vocab, int64_t* out) {
    std::fill(out, out + vocab, 0);
    std::vector<int32_t> last(static_cast<std::size_t>(vocab), -1);  // the last user counted for each item
    for (int64_t u = 0; u < users; ++u) {
        for (int64_t p = indptr[u]; p < indptr[u + 1]; ++p) {
            if (last[codes[p]] != u) { last[codes[p]] = static_cast<int32_t>(u); ++out[codes[p]]; }
        }
    }
}

// The UserItemSets of a log's sequences (codes in [0, vocab), repeats allowed): counting passes, no sort.
inline UserItemSets user_item_sets(const int64_t* indptr, const int32_t* codes, int64_t users, int64_t vocab,
                                   bool with_counts = false) {
    UserItemSets s;
    s.item_ptr.assign(static_cast<std::size_t>(vocab) + 1, 0);
    users_per_item(indptr, codes, users, vocab, s.item_ptr.data() + 1);
    std::vector<int32_t> last(static_cast<std::size_t>(vocab), -1);
    for (int64_t v = 0; v < vocab; ++v) s.item_ptr[v + 1] += s.item_ptr[v];
    s.item_users.resize(static_cast<std::size_t>(s.item_ptr[vocab]));
    std::vector<int64_t> item_counts(with_counts ? s.item_users.size() : 0, 0);  // per item_users entry
    std::vector<int64_t> next(s.item_ptr.begin(), s.item_ptr.end() - 1);
    for (int64_t u = 0; u < users; ++u) {  // users ascending, so each item's users are ascending
        for (int64_t p = indptr[u]; p < indptr[u + 1]; ++p) {
            const int32_t v = codes[p];
            if (last[v] != u) { last[v] = static_cast<int32_t>(u); s.item_users[next[v]++] = u; }
            if (with_counts) ++item_counts[next[v] - 1];
        }
    }
    s.user_ptr.assign(static_cast<std::size_t>(users) + 1, 0);  // the transpose back: items ascending per user
    for (int32_t u : s.item_users) ++s.user_ptr[u + 1];
    for (int64_t u = 0; u < users; ++u) s.user_ptr[u + 1] += s.user_ptr[u];
    s.user_items.resize(s.item_users.size());
    s.counts.resize(item_counts.size());
    std::vector<int64_t> unext(s.user_ptr.begin(), s.user_ptr.end() - 1);
    for (int64_t v = 0; v < vocab; ++v) {
        for (int64_t p = s.item_ptr[v]; p < s.item_ptr[v + 1]; ++p) {
            const int64_t to = unext[s.item_users[p]]++;
            s.user_items[to] = static_cast<int32_t>(v);
            if (with_counts) s.counts[to] = item_counts[p];
        }
    }
    return s;
}

// Best k items j != i of each item i by Jaccard (cosine = false) or cosine of 0/1 vectors (ItemCF) of
// their user sets, scored from exact counts by metrics.hpp's formulas; ties by lower item code. Every
// (item, user, item) triple is one increment: Σ_u |S_u|² in all, no bound needed to be exact. Code is the
// type of the users' item lists: uint16_t when every item code fits (the increments read half the bytes
// and run about 1.6x faster), else int32_t. With user_weight (cosine only, weights > 0: ItemCF-IUF) the
// co-count is Σ w_u over the shared users, summed in double in ascending user order, over √N_i · √N_j.
template <class Code>
struct ItemCoCounts {
    const int64_t* item_ptr;    // users of item i: [item_ptr[i], item_ptr[i+1]) into item_users
    const int32_t* item_users;
    const int64_t* user_ptr;    // items of user u: [user_ptr[u], user_ptr[u+1]) into user_items
    const Code* user_items;
    int64_t n;                  // items
    bool cosine;
    const double* user_weight = nullptr;  // per user, or nullptr: every shared user counts 1

    // Rows lo..hi-1 into out_col/out_score at row offset (i − lo) · k; count[i − lo] = entries written.
    void select(int64_t lo, int64_t hi, int64_t k, int32_t* out_col, float* out_score, int64_t* count) const {
        if (user_weight) {
            select_as<double>(lo, hi, k, out_col, out_score, count);
        } else {
            select_as<int32_t>(lo, hi, k, out_col, out_score, count);
        }
    }

    template <class Acc>
    void select_as(int64_t lo, int64_t hi, int64_t k, int32_t* out_col, float* out_score, int64_t* count) const {
        std::vector<double> norms(static_cast<std::size_t>(n));
        std::vector<float> inv_norms(static_cast<std::size_t>(n)), sizes(static_cast<std::size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
            sizes[j] = static_cast<float>(item_ptr[j + 1] - item_ptr[j]);
            norms[j] = std::sqrt(static_cast<double>(item_ptr[j + 1] - item_ptr[j]));
            inv_norms[j] = norms[j] > 0.0 ? static_cast<float>(1.0 / norms[j]) : 0.0f;
        }
#pragma omp parallel
        {
            std::vector<Acc> acc(static_cast<std::size_t>(n), 0);
            std::vector<int32_t> touched;
            std::vector<float> estimate(static_cast<std::size_t>(n));
            BestK best;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = lo; i < hi; ++i) {
                int64_t work = 0;
                for (int64_t p = item_ptr[i]; p < item_ptr[i + 1]; ++p) {
                    work += user_ptr[item_users[p] + 1] - user_ptr[item_users[p]];
                }
                const bool scan = work * 8 >= n;  // dense row: scan every column instead of a touched list
                for (int64_t p = item_ptr[i]; p < item_ptr[i + 1]; ++p) {
                    const int32_t u = item_users[p];
                    const Code* first = user_items + user_ptr[u];
                    const Code* last = user_items + user_ptr[u + 1];
                    const Acc add = user_weight ? static_cast<Acc>(user_weight[u]) : Acc(1);
                    if (scan) {
                        for (const Code* q = first; q < last; ++q) acc[*q] += add;
                    } else {
                        for (const Code* q = first; q < last; ++q) {
                            if (acc[*q] == 0) touched.push_back(*q);
                            acc[*q] += add;
                        }
                    }
                }
                acc[i] = 0;  // never its own neighbour
                best.reset(k, 0.0f);
                const int64_t ni = item_ptr[i + 1] - item_ptr[i];
                auto exact = [&](int64_t j, Acc c) {
                    const int64_t nj = item_ptr[j + 1] - item_ptr[j];
                    return cosine ? cosine_from_dot(static_cast<double>(c), norms[i], norms[j])
                                  : jaccard_from_counts(static_cast<int64_t>(c), ni, nj);
                };
                if (scan) {  // a branch-free pass of float estimates, then exact scores where one can enter
                    if (cosine) {  // c / ‖j‖, to compare with floor · ‖i‖
                        for (int64_t j = 0; j < n; ++j) estimate[j] = static_cast<float>(acc[j]) * inv_norms[j];
                    } else {
                        const float fi = static_cast<float>(ni);
                        for (int64_t j = 0; j < n; ++j) {
                            const float c = static_cast<float>(acc[j]);
                            estimate[j] = c / (fi + sizes[j] - c);
                        }
                    }
                    float bar = 0.0f;  // estimates at or below it cannot reach the k-th best (margin 1e-5)
                    for (int64_t j = 0; j < n; ++j) {
                        if (estimate[j] <= bar) continue;
                        best.push(static_cast<int32_t>(j), exact(j, acc[j]));
                        bar = best.floor() * (cosine ? static_cast<float>(norms[i]) : 1.0f) * (1.0f - 1e-5f);
                    }
                    std::fill(acc.begin(), acc.end(), 0);
                } else {
                    for (int32_t j : touched) {
                        const Acc c = acc[j];
                        acc[j] = 0;
                        if (c == 0) continue;
                        const float s = exact(j, c);
                        if (s > 0.0f) best.push(j, s);
                    }
                }
                touched.clear();
                count[i - lo] = best.take(out_col + (i - lo) * k, out_score + (i - lo) * k);
            }
        }
    }
};

// Each item's best k items as CSR lists (offsets [n + 1], cols, scores), from any co-count selector ``cc``
// (ItemCoCounts with 16- or 32-bit item codes), in blocks of items whose k-wide buffers stay near 4M entries.
template <class CoCounts>
void item_topk_lists(const CoCounts& cc, int64_t n, int64_t k, std::vector<int64_t>& offsets, std::vector<int32_t>& cols,
                     std::vector<float>& scores) {
    offsets.assign(static_cast<std::size_t>(n) + 1, 0);
    const int64_t block = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(k, 1));
    std::vector<int32_t> bcol(static_cast<std::size_t>(std::min(block, n) * k));
    std::vector<float> bscore(bcol.size());
    std::vector<int64_t> bcount(static_cast<std::size_t>(std::min(block, n)));
    for (int64_t lo = 0; lo < n; lo += block) {
        const int64_t hi = std::min(n, lo + block);
        cc.select(lo, hi, k, bcol.data(), bscore.data(), bcount.data());
        for (int64_t i = lo; i < hi; ++i) {
            const int64_t m = bcount[i - lo];
            cols.insert(cols.end(), bcol.begin() + (i - lo) * k, bcol.begin() + (i - lo) * k + m);
            scores.insert(scores.end(), bscore.begin() + (i - lo) * k, bscore.begin() + (i - lo) * k + m);
            offsets[i + 1] = offsets[i] + m;
        }
    }
}

}  // namespace simmine
