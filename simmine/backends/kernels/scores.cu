// simmine CUDA kernels, compiled at run time by CuPy/NVRTC (and by nvcc in the compile check).
// Each kernel fills a tile of exact scores: one thread scores one (row, column) pair with the same per-pair
// definitions as the C++ core (metrics.hpp, host+device), so CPU and GPU round identically.
#include "metrics.hpp"

using simmine::cosine_from_dot;
using simmine::jaccard_from_counts;
using simmine::levenshtein_dp;
using simmine::levenshtein_from_distance;
using simmine::sorted_intersection_count;

// Contract: thread (r, j) writes tile[r * ncols + j] = jaccard(set rows[r], set j), 0 for j == rows[r].
extern "C" __global__ void set_tile(const int64_t* indptr, const int* idx, const int64_t* rows, int64_t nrows,
                                    int64_t ncols, float* tile) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    const int64_t i = rows[r];
    float s = 0.0f;
    if (j != i) {
        const int64_t la = indptr[i + 1] - indptr[i], lb = indptr[j + 1] - indptr[j];
        const int64_t c = sorted_intersection_count(idx + indptr[i], la, idx + indptr[j], lb);
        s = jaccard_from_counts(c, la, lb);
    }
    tile[r * ncols + j] = s;
}

// Contract: thread (r, j) writes the TF-IDF cosine of rows[r] and j; the dot product adds common codes in
// ascending code order, as every backend does.
extern "C" __global__ void cosine_tile(const int64_t* indptr, const int* idx, const double* w, const double* norms,
                                       const int64_t* rows, int64_t nrows, int64_t ncols, float* tile) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    const int64_t i = rows[r];
    float s = 0.0f;
    if (j != i) {
        int64_t p = indptr[i], q = indptr[j];
        const int64_t pe = indptr[i + 1], qe = indptr[j + 1];
        double dot = 0.0;
        while (p < pe && q < qe) {
            if (idx[p] < idx[q]) ++p;
            else if (idx[q] < idx[p]) ++q;
            else { dot += w[p] * w[q]; ++p; ++q; }
        }
        s = cosine_from_dot(dot, norms[i], norms[j]);
    }
    tile[r * ncols + j] = s;
}

// Contract: thread (r, j) writes 1 − d/max(|A|,|B|) for the item sequences rows[r] and j; bit-parallel
// (Myers/Hyyrö) when rows[r] has at most 64 items, else the two-row DP in a per-thread scratch row of
// max_len + 1 entries taken from `scratch` (ncols * nrows * (max_len + 1) entries).
struct PeqRow {
    const int* a;
    int64_t la;
    __device__ uint64_t operator()(int c) const {
        uint64_t m = 0;
        for (int64_t p = 0; p < la; ++p) m |= (uint64_t)(a[p] == c) << p;
        return m;
    }
};

extern "C" __global__ void edit_tile(const int64_t* indptr, const int* idx, const int64_t* rows, int64_t nrows,
                                     int64_t ncols, int64_t max_len, int64_t* scratch, float* tile) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    const int64_t i = rows[r];
    float s = 0.0f;
    if (j != i) {
        const int* a = idx + indptr[i];
        const int* b = idx + indptr[j];
        const int64_t la = indptr[i + 1] - indptr[i], lb = indptr[j + 1] - indptr[j];
        int64_t d;
        if (la <= 64) {
            d = simmine::levenshtein_myers64(la, b, lb, PeqRow{a, la});
        } else {
            d = levenshtein_dp(a, la, b, lb, scratch + (r * ncols + j) * (max_len + 1));
        }
        s = levenshtein_from_distance(d, la, lb);
    }
    tile[r * ncols + j] = s;
}

// Contract: thread (i, p) writes sig[i * num_perm + p] = min over codes v of row i of the low 32 bits of
// splitmix64(v ^ seeds[p]) (0xFFFFFFFF for an empty row), the C++ core's MinHash.
extern "C" __global__ void minhash_sig(const int64_t* indptr, const int64_t* codes, const uint64_t* seeds,
                                       int64_t n, int64_t num_perm, uint32_t* sig) {
    const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t i = blockIdx.y;
    if (p >= num_perm || i >= n) return;
    uint32_t best = 0xFFFFFFFFu;
    for (int64_t q = indptr[i]; q < indptr[i + 1]; ++q) {
        uint64_t x = ((uint64_t)codes[q] ^ seeds[p]) + 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
        const uint32_t h = (uint32_t)x;
        if (h < best) best = h;
    }
    sig[i * num_perm + p] = best;
}
