// What every scorer and driver shares: OpenMP's team, the rows a row never pairs with, the margin of the
// division-free bounds, and the CPU-dispatched clones.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace simmine {

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

}  // namespace simmine
