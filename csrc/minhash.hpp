// MinHash signatures of a set CSR and LSH band collisions of anchors (--method minhash).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.hpp"

namespace simmine {

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

}  // namespace simmine
