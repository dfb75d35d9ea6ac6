// Item-embedding candidates from a bfloat16 screen (AMX tiles, or AVX-512 BF16 dot products where the CPU has
// no tiles): for each row, every column whose approximate score could still be among its k best once
// rescored exactly.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define SIMMINE_X86 1
#endif

#include "common.hpp"  // max_threads, OpenMP

namespace simmine {

// Whether this CPU and kernel run AMX-BF16 tiles (asks Linux for the tile state once).
inline bool amx_cpu() {
#ifdef SIMMINE_X86
    static const bool ok = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
        if (!((d >> 22) & 1u) || !((d >> 24) & 1u)) return false;  // AMX-BF16, AMX-TILE
        const long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
        return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
    }();
    return ok;
#else
    return false;
#endif
}
// Whether this CPU runs AVX-512 BF16 dot products (vdpbf16ps) on zmm registers the OS saves.
inline bool avx512_bf16_cpu() {
#ifdef SIMMINE_X86
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    return ok;
#else
    return false;
#endif
}

// The bfloat16 screens this CPU runs, fastest first.
inline std::vector<std::string> embed_screens() {
    std::vector<std::string> out;
    if (amx_cpu()) out.push_back("amx");
    if (avx512_bf16_cpu()) out.push_back("avx512-bf16");
    return out;
}
// "auto" (the fastest screen here), "" (none: the caller's float32 GEMM route) or one screen by name; tests
// set each in turn.
inline std::string& embed_screen_setting() {
    static std::string setting = "auto";
    return setting;
}
// The screen embed_candidates takes now, "" when none.
inline std::string embed_screen() {
    const std::string& s = embed_screen_setting();
    if (s != "auto") return s;
    const std::vector<std::string> all = embed_screens();
    return all.empty() ? std::string() : all.front();
}
// Sets the screen; a name this CPU does not run is an error (never a silent fallback).
inline bool set_embed_screen(const std::string& name) {
    const std::vector<std::string> all = embed_screens();
    if (name != "auto" && !name.empty() && std::find(all.begin(), all.end(), name) == all.end()) return false;
    embed_screen_setting() = name;
    return true;
}

// out[p] = Σ_t a_p[t]·b_p[t] in float64 for four pairs of rows: per pair eight running sums over t mod 8 (an
// order that vectorises without reassociation, so every CPU gets the same bits), added pairwise at the end.
template <class T>
__attribute__((always_inline)) inline void ordered_dots4(const T* const* a, const T* const* b, int64_t d, double* out) {
    double s[4][8] = {};
    int64_t t = 0;
    for (; t + 8 <= d; t += 8) {
        for (int p = 0; p < 4; ++p) {
            for (int q = 0; q < 8; ++q) s[p][q] += static_cast<double>(a[p][t + q]) * static_cast<double>(b[p][t + q]);
        }
    }
    for (int q = 0; t < d; ++t, ++q) {
        for (int p = 0; p < 4; ++p) s[p][q] += static_cast<double>(a[p][t]) * static_cast<double>(b[p][t]);
    }
    for (int p = 0; p < 4; ++p) out[p] = ((s[p][0] + s[p][1]) + (s[p][2] + s[p][3])) + ((s[p][4] + s[p][5]) + (s[p][6] + s[p][7]));
}

template <class T>
inline void pair_dots_block(const T* v, int64_t d, const int64_t* rows, const int64_t* cols, int64_t x, int64_t m,
                            double* dots) {
    const T* a[4];
    const T* b[4];
    for (int p = 0; p < 4; ++p) {
        const int64_t y = std::min(x + p, m - 1);
        a[p] = v + rows[y] * d;
        b[p] = v + cols[y] * d;
    }
    double out[4];
    ordered_dots4(a, b, d, out);
    for (int p = 0; p < 4 && x + p < m; ++p) dots[x + p] = out[p];
}
#ifdef SIMMINE_X86
template <class T>
__attribute__((target("avx512f"))) inline void pair_dots_block_avx512(const T* v, int64_t d, const int64_t* rows,
                                                                      const int64_t* cols, int64_t x, int64_t m,
                                                                      double* dots) {
    pair_dots_block(v, d, rows, cols, x, m, dots);
}
#endif

// dots[x] = row rows[x] · row cols[x] of v (float32 or float64 [n, d]) by ordered_dots4: the same bits with
// or without AVX-512.
template <class T>
inline void pair_dots(const T* v, int64_t d, const int64_t* rows, const int64_t* cols, int64_t m, double* dots) {
#ifdef SIMMINE_X86
    static const bool wide = __builtin_cpu_supports("avx512f");
#else
    const bool wide = false;
#endif
#pragma omp parallel for schedule(static)
    for (int64_t x = 0; x < m; x += 4) {
#ifdef SIMMINE_X86
        if (wide) {
            pair_dots_block_avx512(v, d, rows, cols, x, m, dots);
            continue;
        }
#endif
        pair_dots_block(v, d, rows, cols, x, m, dots);
    }
}

// bfloat16 of a finite float32, rounded to nearest even.
inline uint16_t to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Per row of x (float32 [n, d]): the norm of its bfloat16 rounding t and of the residual x − t (exact in
// float32), summed in float64.
inline void bf16_norms(const float* x, int64_t n, int64_t d, double* rounded, double* residual) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        double st = 0.0, sr = 0.0;
        for (int64_t i = 0; i < d; ++i) {
            const uint32_t bits = static_cast<uint32_t>(to_bf16(x[r * d + i])) << 16;
            float t;
            std::memcpy(&t, &bits, 4);
            const double rest = static_cast<double>(x[r * d + i]) - static_cast<double>(t);
            st += static_cast<double>(t) * static_cast<double>(t);
            sr += rest * rest;
        }
        rounded[r] = std::sqrt(st);
        residual[r] = std::sqrt(sr);
    }
}

// One row's screen: every column seen at or above the row's floor, the k-th largest score seen so far minus
// the row's window. The floor only rises, so the columns within the window of the final k-th are all listed;
// a last trim removes the others. Scores and columns are kept apart, with 32 free slots past `size`, so a
// block's hits are stored unbranched.
struct ScreenRow {
    // 64 listed + 32 free to start (160 measured no faster on 20k rows; the AVX-512 screen holds one per item
    // and thread, so this is most of its memory)
    std::vector<float> score = std::vector<float>(96);
    std::vector<int32_t> col = std::vector<int32_t>(96);
    std::vector<float> best;  // the k largest scores seen, ascending
    int64_t size = 0;
    float floor = -std::numeric_limits<float>::infinity();
    bool overflow = false;  // more than `most` within the window: the caller rescores the whole row

    // After entries [from, size) were stored: update the k largest and the floor; trim the list when it is
    // full, and keep 32 free slots.
    void settle(int64_t from, int64_t k, double window, int64_t most) {
        bool raised = false;
        for (int64_t t = from; t < size; ++t) {
            const float v = score[t];
            const int64_t m = static_cast<int64_t>(best.size());
            if (m < k) {  // ascending: best[0] is the k-th largest once full
                best.insert(std::upper_bound(best.begin(), best.end(), v), v);
                raised = m + 1 == k;
            } else if (v > best[0]) {
                int64_t j = 0;
                while (j + 1 < m && best[j + 1] < v) {
                    best[j] = best[j + 1];
                    ++j;
                }
                best[j] = v;
                raised = true;
            }
        }
        if (raised) {  // rounded down: the float floor never passes k-th − window
            floor = std::nextafter(static_cast<float>(static_cast<double>(best[0]) - window),
                                   -std::numeric_limits<float>::infinity());
        }
        const int64_t cap = static_cast<int64_t>(score.size()) - 32;
        if (size < cap && size <= most) return;
        trim();
        if (size > most) {  // near-duplicates: stop listing (no finite score passes +inf)
            overflow = true;
            size = 0;
            floor = std::numeric_limits<float>::infinity();
        } else if (size > cap / 2) {
            score.resize(2 * cap + 32);
            col.resize(2 * cap + 32);
        }
    }
    void trim() {
        int64_t kept = 0;
        for (int64_t t = 0; t < size; ++t) {
            if (score[t] >= floor) {
                score[kept] = score[t];
                col[kept++] = col[t];
            }
        }
        size = kept;
    }
};

#ifdef SIMMINE_X86
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// Each row of a finished 32 × 32 block of scores (rows r0.., columns cb..): its columns at or above the row's
// floor, itself and padding excluded, stored unbranched.
__attribute__((target("avx512f")))
inline void scan_block(const float (*tile)[32], int64_t r0, int64_t cb, int64_t n, int64_t k, int64_t most,
                       const double* window, std::vector<ScreenRow>& screen) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i cols_lo = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(cb)), iota);
    const __m512i cols_hi = _mm512_add_epi32(cols_lo, _mm512_set1_epi32(16));
    const uint32_t inside = cb + 32 <= n ? ~0u : (n > cb ? (1u << (n - cb)) - 1 : 0u);
    for (int64_t i = 0; i < 32 && r0 + i < n; ++i) {
        ScreenRow& row = screen[r0 + i];
        const __m512 lim = _mm512_set1_ps(row.floor);
        const __m512 lo = _mm512_load_ps(tile[i]), hi = _mm512_load_ps(tile[i] + 16);
        uint32_t hit = (_mm512_cmp_ps_mask(lo, lim, _CMP_GE_OQ) |
                        (uint32_t(_mm512_cmp_ps_mask(hi, lim, _CMP_GE_OQ)) << 16)) & inside;
        const int64_t self = r0 + i - cb;
        if (self >= 0 && self < 32) hit &= ~(1u << self);
        if (!hit) continue;
        float* sc = row.score.data() + row.size;
        int32_t* cl = row.col.data() + row.size;
        const __mmask16 h0 = static_cast<__mmask16>(hit), h1 = static_cast<__mmask16>(hit >> 16);
        const int first = __builtin_popcount(h0);
        // compress in registers, then plain stores into the free slots (a compressing store to memory is slow)
        _mm512_storeu_ps(sc, _mm512_maskz_compress_ps(h0, lo));
        _mm512_storeu_si512(cl, _mm512_maskz_compress_epi32(h0, cols_lo));
        _mm512_storeu_ps(sc + first, _mm512_maskz_compress_ps(h1, hi));
        _mm512_storeu_si512(cl + first, _mm512_maskz_compress_epi32(h1, cols_hi));
        const int64_t from = row.size;
        row.size += __builtin_popcount(hit);
        row.settle(from, k, window[r0 + i], most);
    }
}

// screen[r] for rows [0, n) of x (float32 [n, d]): each column c != r with bf16 score s(r, c) >= the k-th
// largest s(r, ·) over c != r minus window[r] (every column when fewer than k others).
// Tiles: C = 32 rows × 32 columns in tmm0..3, A = two 16-row × 32-dim slices (tmm4, 5), B = two 16-column
// panels in pairs of dims (tmm6, 7). Columns in chunks that stay in L2, each thread owning whole row blocks.
__attribute__((target("amx-tile,amx-bf16,avx512f")))
inline void embed_screen_amx(const float* x, int64_t n, int64_t d, const double* window, int64_t k, int64_t most,
                             std::vector<ScreenRow>& screen) {
    const int64_t dp = (d + 31) / 32 * 32, np = (n + 31) / 32 * 32, pairs = dp / 2;
    std::vector<uint16_t> a(static_cast<size_t>(np * dp), 0);  // per 16 rows: [dp / 32][16][32] tile slices
    std::vector<uint32_t> b(static_cast<size_t>(np * pairs));  // per 16 columns: [pairs][16] dim pairs
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < np / 16; ++blk) {
        uint16_t* slices = a.data() + blk * 16 * dp;
        uint32_t* panel = b.data() + blk * pairs * 16;
        for (int64_t i = 0; i < 16 && blk * 16 + i < n; ++i) {
            const float* row = x + (blk * 16 + i) * d;
            for (int64_t t = 0; t < d; ++t) slices[(t / 32) * 512 + i * 32 + t % 32] = to_bf16(row[t]);
        }
        for (int64_t p = 0; p < pairs; ++p) {
            const uint32_t* pair = reinterpret_cast<const uint32_t*>(slices + (2 * p / 32) * 512 + (2 * p) % 32);
            for (int64_t c = 0; c < 16; ++c) panel[p * 16 + c] = pair[c * 16];
        }
    }
    const int64_t blocks = np / 32, chunk = 256, group = 16;  // 512 KB of B, 512 rows' lists
#pragma omp parallel
    {
        TileConfig cfg;
        for (int t = 0; t < 8; ++t) {
            cfg.colsb[t] = 64;
            cfg.rows[t] = 16;
        }
        _tile_loadconfig(&cfg);
        alignas(64) float tiles[2][32][32];
        int64_t pending_r0 = -1, pending_cb = 0;  // the block in tiles[1 - cur], scanned one block late
        int cur = 0;
        int threads = 1, me = 0;
#ifdef _OPENMP
        threads = omp_get_num_threads();
        me = omp_get_thread_num();
#endif
        const int64_t lo = blocks * me / threads, hi = blocks * (me + 1) / threads;
        for (int64_t g0 = lo; g0 < hi; g0 += group) {
            for (int64_t c0 = 0; c0 < np; c0 += chunk) {
                const int64_t c1 = std::min(np, c0 + chunk);
                for (int64_t rb = g0; rb < std::min(hi, g0 + group); ++rb) {
                    const int64_t r0 = rb * 32;
                    const uint16_t* a0 = a.data() + r0 * dp;  // rows r0 .. r0 + 15, then r0 + 16 .. r0 + 31
                    const uint16_t* a1 = a0 + 16 * dp;
                    for (int64_t cb = c0; cb < c1; cb += 32) {
                        const uint32_t* b0 = b.data() + (cb / 16) * pairs * 16;
                        const uint32_t* b1 = b0 + pairs * 16;
                        _tile_zero(0);
                        _tile_zero(1);
                        _tile_zero(2);
                        _tile_zero(3);
                        for (int64_t t = 0; t < dp; t += 32) {
                            _tile_loadd(4, a0 + t * 16, 64);
                            _tile_loadd(6, b0 + t / 2 * 16, 64);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_loadd(7, b1 + t / 2 * 16, 64);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_loadd(5, a1 + t * 16, 64);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                        // the previous block is scanned while the tiles compute this one: no load waits on
                        // a tile store just issued
                        if (pending_r0 >= 0) scan_block(tiles[1 - cur], pending_r0, pending_cb, n, k, most, window, screen);
                        _tile_stored(0, &tiles[cur][0][0], 128);
                        _tile_stored(1, &tiles[cur][0][16], 128);
                        _tile_stored(2, &tiles[cur][16][0], 128);
                        _tile_stored(3, &tiles[cur][16][16], 128);
                        asm volatile("" ::: "memory");  // the tile stores wrote `tiles`
                        pending_r0 = r0;
                        pending_cb = cb;
                        cur = 1 - cur;
                    }
                }
            }
        }
        if (pending_r0 >= 0) scan_block(tiles[1 - cur], pending_r0, pending_cb, n, k, most, window, screen);
        _tile_release();
    }
}

// 32 rows of `a` (per 8 rows, [pairs][8] bfloat16 dim pairs) against the 32 columns of panels b0, b1 (16
// columns each, [pairs][16] dim pairs): tile[i][j] = float32 sum of the exact bfloat16 products, two dims per
// vdpbf16ps in ascending order, eight rows at a time in sixteen accumulators.
__attribute__((target("avx512f,avx512bf16")))
inline void bf16_tile(const uint32_t* a, int64_t pairs, const uint32_t* b0, const uint32_t* b1, float (*tile)[32]) {
    for (int64_t i0 = 0; i0 < 32; i0 += 8) {
        __m512 acc[8][2];
        for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        const uint32_t* rows = a + i0 * pairs;
        for (int64_t p = 0; p < pairs; ++p) {
            const __m512bh lo = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b0 + p * 16));
            const __m512bh hi = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b1 + p * 16));
            for (int i = 0; i < 8; ++i) {
                const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(rows[p * 8 + i])));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, lo);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, hi);
            }
        }
        for (int i = 0; i < 8; ++i) {
            _mm512_store_ps(tile[i0 + i], acc[i][0]);
            _mm512_store_ps(tile[i0 + i] + 16, acc[i][1]);
        }
    }
}

// The columns' side of a finished block (rows r0.., columns cb.., cb > r0, so no column is its own row):
// each column's rows at or above the column's floor. Row masks against the 32 columns' floors at once; only
// the few columns with a hit are visited.
__attribute__((target("avx512f")))
inline void scan_block_columns(const float (*tile)[32], int64_t r0, int64_t cb, int64_t n, int64_t k, int64_t most,
                               const double* window, std::vector<ScreenRow>& screen) {
    alignas(64) float floors[32];
    for (int64_t j = 0; j < 32; ++j) {
        floors[j] = cb + j < n ? screen[cb + j].floor : std::numeric_limits<float>::infinity();
    }
    const __m512 lim_lo = _mm512_load_ps(floors), lim_hi = _mm512_load_ps(floors + 16);
    alignas(64) uint32_t hits[32];
    uint32_t any = 0;
    for (int64_t i = 0; i < 32; ++i) {
        hits[i] = r0 + i < n ? (_mm512_cmp_ps_mask(_mm512_load_ps(tile[i]), lim_lo, _CMP_GE_OQ) |
                                (uint32_t(_mm512_cmp_ps_mask(_mm512_load_ps(tile[i] + 16), lim_hi, _CMP_GE_OQ)) << 16))
                             : 0u;
        any |= hits[i];
    }
    if (!any) return;
    const __m512i hits_lo = _mm512_load_si512(hits), hits_hi = _mm512_load_si512(hits + 16);
    while (any) {
        const int j = __builtin_ctz(any);
        any &= any - 1;
        const __m512i bit = _mm512_set1_epi32(static_cast<int>(1u << j));  // column j's rows, as one mask
        uint32_t rows = _mm512_test_epi32_mask(hits_lo, bit) | (uint32_t(_mm512_test_epi32_mask(hits_hi, bit)) << 16);
        ScreenRow& row = screen[cb + j];
        const int64_t from = row.size;
        while (rows) {
            const int i = __builtin_ctz(rows);
            rows &= rows - 1;
            row.score[row.size] = tile[i][j];
            row.col[row.size++] = static_cast<int32_t>(r0 + i);
        }
        row.settle(from, k, window[cb + j], most);
    }
}

// screens[t][r], per thread t, for rows [0, n) of x (float32 [n, d]): together, each column c != r with bf16
// score s(r, c) >= the k-th largest s(r, ·) over c != r minus window[r] (see merge_screens).
// Each 32 × 32 block above the diagonal is computed once and scanned for its rows and for its columns; a
// thread takes groups of four row blocks (256 KB of rows in L2) through every column block right of them,
// largest groups first.
__attribute__((target("avx512f,avx512bf16")))
inline void embed_screen_avx512(const float* x, int64_t n, int64_t d, const double* window, int64_t k, int64_t most,
                                std::vector<std::vector<ScreenRow>>& screens) {
    const int64_t pairs = (d + 1) / 2, np = (n + 31) / 32 * 32, blocks = np / 32, group = 4;
    std::vector<uint32_t> a(static_cast<size_t>(np * pairs), 0);  // per 8 rows: [pairs][8] dim pairs
    std::vector<uint32_t> b(static_cast<size_t>(np * pairs), 0);  // per 16 columns: [pairs][16] dim pairs
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t p = 0; p < pairs; ++p) {  // the low half holds the even dim
            const uint32_t odd = 2 * p + 1 < d ? uint32_t(to_bf16(x[r * d + 2 * p + 1])) : 0u;
            const uint32_t pair = to_bf16(x[r * d + 2 * p]) | (odd << 16);
            a[(r / 8) * pairs * 8 + p * 8 + r % 8] = pair;
            b[(r / 16) * pairs * 16 + p * 16 + r % 16] = pair;
        }
    }
    screens.assign(static_cast<size_t>(max_threads()), {});
#pragma omp parallel
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        std::vector<ScreenRow>& screen = screens[me];
        screen.resize(static_cast<size_t>(n));
        alignas(64) float tile[32][32];
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < (blocks + group - 1) / group; ++g) {
            const int64_t rb0 = g * group, rb1 = std::min(blocks, rb0 + group);
            for (int64_t cb = rb0; cb < blocks; ++cb) {
                const uint32_t* b0 = b.data() + 2 * cb * pairs * 16;
                for (int64_t rb = rb0; rb < std::min(rb1, cb + 1); ++rb) {
                    bf16_tile(a.data() + rb * 32 * pairs, pairs, b0, b0 + pairs * 16, tile);
                    scan_block(tile, rb * 32, cb * 32, n, k, most, window, screen);
                    if (cb != rb) scan_block_columns(tile, rb * 32, cb * 32, n, k, most, window, screen);
                }
            }
        }
    }
}
#endif

// The CSR of every row's screened columns, ascending, from one screen per thread: a row keeps the columns at or
// above the k-th largest of all its screens' scores minus window[r] (each screen's floor is at or below that,
// so none is missing). A row with more than about `most` columns within its window lists none and is flagged
// in `overflow`.
inline void merge_screens(std::vector<std::vector<ScreenRow>>& screens, int64_t n, int64_t k, const double* window,
                          int64_t most, std::vector<int64_t>& ptr, std::vector<int32_t>& cols,
                          std::vector<uint8_t>& overflow) {
    overflow.assign(static_cast<size_t>(n), 0);
    std::vector<float> floor(static_cast<size_t>(n), -std::numeric_limits<float>::infinity());
    ptr.assign(static_cast<size_t>(n + 1), 0);
#pragma omp parallel
    {
        std::vector<float> best;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; ++r) {
            best.clear();
            for (auto& screen : screens) {
                overflow[r] |= screen[r].overflow;
                best.insert(best.end(), screen[r].best.begin(), screen[r].best.end());
            }
            if (static_cast<int64_t>(best.size()) >= k) {  // rounded down, as ScreenRow::settle rounds
                std::nth_element(best.begin(), best.begin() + (k - 1), best.end(), std::greater<float>());
                floor[r] = std::nextafter(static_cast<float>(static_cast<double>(best[k - 1]) - window[r]),
                                          -std::numeric_limits<float>::infinity());
            }
            int64_t count = 0;
            for (auto& screen : screens) {
                const ScreenRow& row = screen[r];
                for (int64_t t = 0; t < row.size; ++t) count += row.score[t] >= floor[r];
            }
            if (count > most) overflow[r] = 1;
            ptr[r + 1] = overflow[r] ? 0 : count;
        }
    }
    for (int64_t r = 0; r < n; ++r) ptr[r + 1] += ptr[r];
    cols.resize(static_cast<size_t>(ptr[n]));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        if (overflow[r]) continue;
        int64_t at = ptr[r];
        for (auto& screen : screens) {
            const ScreenRow& row = screen[r];
            for (int64_t t = 0; t < row.size; ++t) {
                if (row.score[t] >= floor[r]) cols[at++] = row.col[t];
            }
        }
        std::sort(cols.begin() + ptr[r], cols.begin() + ptr[r + 1]);
    }
}

// The CSR of every row's screened columns by the screen embed_screen() names (see merge_screens).
inline void embed_candidates(const float* x, int64_t n, int64_t d, const double* window, int64_t k, int64_t most,
                             std::vector<int64_t>& ptr, std::vector<int32_t>& cols, std::vector<uint8_t>& overflow) {
    std::vector<std::vector<ScreenRow>> screens;
    const std::string route = embed_screen();
#ifdef SIMMINE_X86
    if (route == "amx") {
        screens.resize(1, std::vector<ScreenRow>(static_cast<size_t>(n)));
        embed_screen_amx(x, n, d, window, k, most, screens[0]);
    } else if (route == "avx512-bf16") {
        embed_screen_avx512(x, n, d, window, k, most, screens);
    }
#endif
    merge_screens(screens, n, k, window, most, ptr, cols, overflow);
}

}  // namespace simmine
