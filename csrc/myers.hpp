// Bit-parallel edit distance (Myers, 1999) of one pattern of at most 64 items against several sequences at
// once, one per SIMD lane, and the batches the Levenshtein scorer fills.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common.hpp"

namespace simmine {

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

}  // namespace simmine
