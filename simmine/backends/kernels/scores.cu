// simmine CUDA kernels, compiled at run time by CuPy/NVRTC (and by nvcc in the compile check).
// Scores use the C++ core's per-pair definitions (metrics.hpp, host+device), so CPU and GPU round identically.
#include "metrics.hpp"

using simmine::cosine_from_dot;
using simmine::jaccard_from_counts;
using simmine::levenshtein_dp;
using simmine::levenshtein_from_distance;
using simmine::sorted_intersection_count;

// Contract: block i sets X[i * ld + idx[p]] = 1 for every code of row i (X zeroed by the caller).
extern "C" __global__ void scatter_ones(const int64_t* indptr, const int* idx, int64_t n, int64_t ld,
                                        signed char* X) {
    const int64_t i = blockIdx.x;
    if (i >= n) return;
    for (int64_t p = indptr[i] + threadIdx.x; p < indptr[i + 1]; p += blockDim.x) X[i * ld + idx[p]] = 1;
}

// Contract: block i sets W[i * ld + idx[p]] = bf16(w[p] / norms[i]) for every code of row i (W zeroed; a
// zero-norm row stays zero). bf16 is round-to-nearest-even of the float32 value.
extern "C" __global__ void scatter_unit_bf16(const int64_t* indptr, const int* idx, const double* w,
                                             const double* norms, int64_t n, int64_t ld, unsigned short* W) {
    const int64_t i = blockIdx.x;
    if (i >= n || norms[i] <= 0.0) return;
    for (int64_t p = indptr[i] + threadIdx.x; p < indptr[i + 1]; p += blockDim.x) {
        const float v = (float)(w[p] / norms[i]);
        unsigned int bits = __float_as_uint(v);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        W[i * ld + idx[p]] = (unsigned short)(bits >> 16);
    }
}

// Contract: thread (r, j) writes tile[r * ncols + j] = jaccard from the GEMM intersection count
// counts[r * ld + j], 0 for j == rows[r].
extern "C" __global__ void jaccard_from_gemm(const int* counts, int64_t ld, const int64_t* rows,
                                             const int64_t* len, int64_t nrows, int64_t ncols, float* tile) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    const int64_t i = rows[r];
    tile[r * ncols + j] = (j == i) ? 0.0f : jaccard_from_counts(counts[r * ld + j], len[i], len[j]);
}

// Contract: thread (r, j) writes keys[r * ncols + j] = bits(s) << 32 | (0xFFFFFFFF − j), s = tile[r, j] when
// it is >= min_score else 0: the largest key is the best score, then the lowest column.
extern "C" __global__ void select_keys(const float* tile, int64_t nrows, int64_t ncols, float min_score,
                                       long long* keys) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    float s = tile[r * ncols + j];
    if (!(s >= min_score)) s = 0.0f;
    keys[r * ncols + j] = ((long long)__float_as_uint(s) << 32) | (long long)(0xFFFFFFFFu - (unsigned int)j);
}

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

// Exact TF-IDF cosine of rows i and j: the dot product adds common codes in ascending code order, as every
// backend does.
__device__ float cosine_pair(const int64_t* indptr, const int* idx, const double* w, const double* norms,
                             int64_t i, int64_t j) {
    int64_t p = indptr[i], q = indptr[j];
    const int64_t pe = indptr[i + 1], qe = indptr[j + 1];
    double dot = 0.0;
    while (p < pe && q < qe) {
        if (idx[p] < idx[q]) ++p;
        else if (idx[q] < idx[p]) ++q;
        else { dot += w[p] * w[q]; ++p; ++q; }
    }
    return cosine_from_dot(dot, norms[i], norms[j]);
}

// Contract: thread (r, j) writes the exact TF-IDF cosine of rows[r] and j, 0 for j == rows[r].
extern "C" __global__ void cosine_tile(const int64_t* indptr, const int* idx, const double* w, const double* norms,
                                       const int64_t* rows, int64_t nrows, int64_t ncols, float* tile) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (j >= ncols || r >= nrows) return;
    const int64_t i = rows[r];
    tile[r * ncols + j] = (j == i) ? 0.0f : cosine_pair(indptr, idx, w, norms, i, j);
}

// Contract: thread (r, c) writes out[r * width + c] = exact cosine of rows[r] and cols[r * width + c]
// (0 for a negative column or the row itself).
extern "C" __global__ void cosine_listed(const int64_t* indptr, const int* idx, const double* w,
                                         const double* norms, const int64_t* rows, const long long* cols,
                                         int64_t nrows, int64_t width, float* out) {
    const int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.y;
    if (c >= width || r >= nrows) return;
    const int64_t i = rows[r], j = cols[r * width + c];
    out[r * width + c] = (j < 0 || j == i) ? 0.0f : cosine_pair(indptr, idx, w, norms, i, j);
}

// Peq of a pattern held by the thread: bitmask of positions of symbol c, by a scan of the pattern.
struct PeqScan {
    const int* a;
    int64_t la;
    __device__ uint64_t operator()(int c) const {
        uint64_t m = 0;
        for (int64_t p = 0; p < la; ++p) m |= (uint64_t)(a[p] == c) << p;
        return m;
    }
};

// Peq of the block's shared pattern: binary search over its sorted distinct symbols.
struct PeqShared {
    const int* sym;
    const unsigned long long* mask;
    int nsym;
    __device__ uint64_t operator()(int c) const {
        int lo = 0, hi = nsym;
        while (lo < hi) {
            const int mid = (lo + hi) >> 1;
            if (sym[mid] < c) lo = mid + 1; else hi = mid;
        }
        return (lo < nsym && sym[lo] == c) ? mask[lo] : 0ull;
    }
};

// Contract: thread (r, j) writes 1 − d/max(|A|,|B|) for the item sequences rows[r] and j, 0 for j == rows[r].
// Bit-parallel (Myers/Hyyrö) with rows[r] as the pattern when it has at most 64 items (its symbol masks
// built once per block in shared memory), else with j as the pattern when j has at most 64 items, else the
// two-row DP in the thread's scratch row (r * ncols + j) * (max_len + 1) of `scratch`.
extern "C" __global__ void edit_tile(const int64_t* indptr, const int* idx, const int64_t* rows, int64_t nrows,
                                     int64_t ncols, int64_t max_len, int64_t* scratch, float* tile) {
    __shared__ int sym[64];
    __shared__ unsigned long long mask[64];
    __shared__ int nsym;
    const int64_t r = blockIdx.y;
    const int64_t i = rows[r];
    const int* a = idx + indptr[i];
    const int64_t la = indptr[i + 1] - indptr[i];
    if (threadIdx.x == 0) {  // sorted distinct symbols of the pattern and their position masks
        int m = 0;
        for (int64_t p = 0; p < la && la <= 64; ++p) {
            int pos = 0;
            while (pos < m && sym[pos] < a[p]) ++pos;
            if (pos < m && sym[pos] == a[p]) { mask[pos] |= 1ull << p; continue; }
            for (int q = m; q > pos; --q) { sym[q] = sym[q - 1]; mask[q] = mask[q - 1]; }
            sym[pos] = a[p];
            mask[pos] = 1ull << p;
            ++m;
        }
        nsym = m;
    }
    __syncthreads();
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j >= ncols || r >= nrows) return;
    float s = 0.0f;
    if (j != i) {
        const int* b = idx + indptr[j];
        const int64_t lb = indptr[j + 1] - indptr[j];
        int64_t d;
        if (la <= 64) d = simmine::levenshtein_myers64(la, b, lb, PeqShared{sym, mask, nsym});
        else if (lb <= 64) d = simmine::levenshtein_myers64(lb, a, la, PeqScan{b, lb});
        else d = levenshtein_dp(a, la, b, lb, scratch + (r * ncols + j) * (max_len + 1));
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
