// The only pybind11 file: checks dtypes and shapes, releases the GIL, calls the kernels of the headers. The
// module is bound by area: scoring tiles, approximate candidates, the log's rows, items, threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "embed.hpp"
#include "items.hpp"
#include "minhash.hpp"
#include "rows.hpp"
#include "sweep.hpp"
#include "sweep_cosine.hpp"
#include "text.hpp"
#include "tiles.hpp"

namespace py = pybind11;
using namespace simmine;

namespace {

template <class T>
const T* ptr_of(const py::array& a, const char* name, int64_t expect_len = -1) {
    if (!py::isinstance<py::array_t<T>>(a)) {  // dtype equivalence (an unpickled float64 is another object)
        throw py::type_error(std::string(name) + ": wrong dtype " + std::string(py::str(a.dtype())));
    }
    if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": not contiguous");
    if (expect_len >= 0 && a.size() != expect_len) {
        throw py::value_error(std::string(name) + ": expected " + std::to_string(expect_len) + " elements");
    }
    return static_cast<const T*>(a.data());
}

const int64_t* checked_rows(const py::array& rows, int64_t n) {
    const int64_t* r = ptr_of<int64_t>(rows, "rows");
    for (int64_t t = 0; t < rows.size(); ++t) {
        if (r[t] < 0 || r[t] >= n) throw py::index_error("rows: index out of range");
    }
    return r;
}

// A CSR of int32 codes in [0, vocab): (indptr, codes, rows), checked.
std::tuple<const int64_t*, const int32_t*, int64_t> checked_csr(const py::array& indptr_in, const py::array& codes_in,
                                                               int64_t vocab) {
    const int64_t rows = indptr_in.size() - 1;
    const int64_t* indptr = ptr_of<int64_t>(indptr_in, "indptr");
    const int32_t* codes = ptr_of<int32_t>(codes_in, "codes", rows >= 0 ? indptr[rows] : 0);
    for (int64_t p = 0; p < codes_in.size(); ++p) {
        if (codes[p] < 0 || codes[p] >= vocab) throw py::index_error("codes: code out of range");
    }
    return {indptr, codes, rows};
}

// A NumPy copy of a std::vector.
template <class T>
py::array_t<T> as_array(const std::vector<T>& v) {
    py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

// (counts, cols, scores) of a block's per-row results, rows in order.
py::tuple block_result(const BlockOutput& out, int64_t nrows) {
    int64_t total = 0;
    for (int64_t t = 0; t < nrows; ++t) total += out.count[t];
    py::array_t<int64_t> counts(nrows);
    py::array_t<int32_t> out_col(total);
    py::array_t<float> out_score(total);
    int64_t* cnt = counts.mutable_data();
    int32_t* oc = out_col.mutable_data();
    float* os = out_score.mutable_data();
    for (int64_t t = 0, w = 0; t < nrows; ++t) {
        const auto& cols = out.cols[out.thread_of[t]];
        const auto& scores = out.scores[out.thread_of[t]];
        std::copy(cols.begin() + out.start[t], cols.begin() + out.start[t] + out.count[t], oc + w);
        std::copy(scores.begin() + out.start[t], scores.begin() + out.start[t] + out.count[t], os + w);
        cnt[t] = out.count[t];
        w += out.count[t];
    }
    return py::make_tuple(counts, out_col, out_score);
}

template <class Scorer>
py::tuple run_select(const Scorer& scorer, const py::array& rows, const py::array& k_row, double min_score) {
    const int64_t nrows = rows.size();
    const int64_t* r = checked_rows(rows, scorer.n);
    const int64_t* k = ptr_of<int64_t>(k_row, "k_row", nrows);
    BlockOutput out;
    {
        py::gil_scoped_release release;
        select_block(scorer, r, nrows, k, static_cast<float>(min_score), out);
    }
    return block_result(out, nrows);
}

template <class Scorer>
py::array_t<int64_t> run_histogram(const Scorer& scorer, const py::array& rows, int64_t prefix) {
    const int64_t* r = checked_rows(rows, scorer.n);
    py::array_t<int64_t> hist(kHistBins);
    int64_t* h = hist.mutable_data();
    {
        py::gil_scoped_release release;
        histogram_block(scorer, r, rows.size(), prefix, h);
    }
    return hist;
}

py::tuple pair_result(const std::vector<std::vector<int32_t>>& pr, const std::vector<std::vector<int32_t>>& pc,
                      const std::vector<std::vector<float>>& ps);

template <class Scorer>
py::tuple run_pairs(const Scorer& scorer, const py::array& rows, double min_score) {
    const int64_t* r = checked_rows(rows, scorer.n);
    std::vector<std::vector<int32_t>> pr, pc;
    std::vector<std::vector<float>> ps;
    {
        py::gil_scoped_release release;
        pairs_block(scorer, r, rows.size(), static_cast<float>(min_score), nullptr, pr, pc, ps);
    }
    return pair_result(pr, pc, ps);
}

template <class Scorer>
py::tuple run_offers(const Scorer& scorer, const py::array& rows, const py::array& bar, double min_score) {
    const int64_t* r = checked_rows(rows, scorer.n);
    const float* b = ptr_of<float>(bar, "bar", scorer.n);
    std::vector<std::vector<int32_t>> pr, pc;
    std::vector<std::vector<float>> ps;
    {
        py::gil_scoped_release release;
        pairs_block(scorer, r, rows.size(), static_cast<float>(min_score), b, pr, pc, ps);
    }
    return pair_result(pr, pc, ps);
}

py::tuple pair_result(const std::vector<std::vector<int32_t>>& pr, const std::vector<std::vector<int32_t>>& pc,
                      const std::vector<std::vector<float>>& ps) {
    int64_t total = 0;
    for (const auto& v : pr) total += static_cast<int64_t>(v.size());
    py::array_t<int32_t> out_r(total), out_c(total);
    py::array_t<float> out_s(total);
    int64_t w = 0;
    for (size_t t = 0; t < pr.size(); ++t) {
        std::copy(pr[t].begin(), pr[t].end(), out_r.mutable_data() + w);
        std::copy(pc[t].begin(), pc[t].end(), out_c.mutable_data() + w);
        std::copy(ps[t].begin(), ps[t].end(), out_s.mutable_data() + w);
        w += static_cast<int64_t>(pr[t].size());
    }
    return py::make_tuple(out_r, out_c, out_s);
}

template <class Scorer>
py::array_t<float> run_listed(const Scorer& scorer, const py::array& row_ids, const py::array& ptr,
                              const py::array& cols) {
    const int64_t nrows = row_ids.size();
    const int64_t* r = checked_rows(row_ids, scorer.n);
    const int64_t* p = ptr_of<int64_t>(ptr, "ptr", nrows + 1);
    const int32_t* c = ptr_of<int32_t>(cols, "cols", p[nrows]);
    for (int64_t t = 0; t < cols.size(); ++t) {
        if (c[t] < 0 || c[t] >= scorer.n) throw py::index_error("cols: index out of range");
    }
    py::array_t<float> out(cols.size());
    float* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        score_listed(scorer, r, nrows, p, c, o);
    }
    return out;
}

// Scored unordered pairs → per-anchor lists both ways (topk.hpp: assemble_lists).
py::tuple assemble_pairs(int64_t n, const py::array& pi, const py::array& pj, const py::array& ps,
                         const py::array& k_per_anchor, double min_score) {
    const int64_t m = pi.size();
    const int64_t* a = ptr_of<int64_t>(pi, "i");
    const int64_t* b = ptr_of<int64_t>(pj, "j", m);
    const float* s = ptr_of<float>(ps, "s", m);
    const int64_t* k = ptr_of<int64_t>(k_per_anchor, "k_per_anchor", n);
    for (int64_t t = 0; t < m; ++t) {
        if (a[t] < 0 || a[t] >= n || b[t] < 0 || b[t] >= n) throw py::index_error("pair index out of range");
    }
    std::vector<int64_t> start;
    std::vector<Cand> cand;
    py::array_t<int64_t> offsets(n + 1);
    int64_t* off = offsets.mutable_data();
    {
        py::gil_scoped_release release;
        assemble_lists(n, m, a, b, s, k, static_cast<float>(min_score), start, cand, off);
    }
    py::array_t<uint32_t> nbr(off[n]);
    py::array_t<float> score(off[n]);
    uint32_t* on = nbr.mutable_data();
    float* os = score.mutable_data();
    for (int64_t x = 0; x < n; ++x) {
        for (int64_t t = 0; t < off[x + 1] - off[x]; ++t) {
            on[off[x] + t] = static_cast<uint32_t>(cand[start[x] + t].col);
            os[off[x] + t] = cand[start[x] + t].score;
        }
    }
    return py::make_tuple(offsets, nbr, score);
}

// Scorers from a typed tile (simmine/tiles.py: one class per kind, whose fields are the arrays read here).
int64_t rows_of(const py::object& t) { return py::cast<py::array>(t.attr("indptr")).size() - 1; }
py::array arr(const py::object& t, const char* key) { return py::cast<py::array>(t.attr(key)); }
int64_t vocab_of(const py::object& t) { return std::max<int64_t>(py::cast<int64_t>(t.attr("vocab")), 1); }

// Same-user exclusion runs (ex_lo, ex_hi per row), or none: each row excludes only itself.
Excluded excluded_of(const py::object& t) {
    if (t.attr("ex_lo").is_none()) return Excluded{};
    const int64_t n = rows_of(t);
    const int32_t* lo = ptr_of<int32_t>(arr(t, "ex_lo"), "ex_lo", n);
    const int32_t* hi = ptr_of<int32_t>(arr(t, "ex_hi"), "ex_hi", n);
    for (int64_t i = 0; i < n; ++i) {
        if (lo[i] < 0 || lo[i] > i || hi[i] <= i || hi[i] > n) throw py::value_error("ex_lo/ex_hi: no run around row");
    }
    return Excluded{lo, hi};
}

SetScorer make_sets(const py::object& t) {
    const int64_t n = rows_of(t);
    const int64_t words = py::cast<int64_t>(t.attr("dense_words"));
    return SetScorer{ptr_of<int64_t>(arr(t, "indptr"), "indptr"), ptr_of<int32_t>(arr(t, "indices"), "indices"),
                     ptr_of<int64_t>(arr(t, "post_ptr"), "post_ptr"), ptr_of<int32_t>(arr(t, "post_rows"), "post_rows"),
                     n, words, ptr_of<uint64_t>(arr(t, "dense_bits"), "dense_bits", words * n),
                     ptr_of<uint8_t>(arr(t, "dense_code"), "dense_code"),
                     vocab_of(t), excluded_of(t)};
}

PrefixSetScorer make_prefix(const py::object& t) {
    const int64_t n = rows_of(t);
    return PrefixSetScorer{ptr_of<int64_t>(arr(t, "indptr"), "indptr"), ptr_of<int32_t>(arr(t, "indices"), "indices"),
                           ptr_of<int64_t>(arr(t, "prefix_ptr"), "prefix_ptr", n + 1),
                           ptr_of<int32_t>(arr(t, "prefix_ranks"), "prefix_ranks"),
                           ptr_of<int64_t>(arr(t, "prefix_post_ptr"), "prefix_post_ptr"),
                           ptr_of<int32_t>(arr(t, "prefix_post_rows"), "prefix_post_rows"), n,
                           vocab_of(t), excluded_of(t)};
}

CosineScorer make_cosine(const py::object& t) {
    const int64_t n = rows_of(t);
    const py::array idx = arr(t, "indices"), prow = arr(t, "post_rows");
    return CosineScorer{ptr_of<int64_t>(arr(t, "indptr"), "indptr"), ptr_of<int32_t>(idx, "indices"),
                        ptr_of<double>(arr(t, "weights"), "weights", idx.size()),
                        ptr_of<double>(arr(t, "norms"), "norms", n), ptr_of<int64_t>(arr(t, "post_ptr"), "post_ptr"),
                        ptr_of<int32_t>(prow, "post_rows"),
                        ptr_of<double>(arr(t, "post_weights"), "post_weights", prow.size()), n,
                        vocab_of(t),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<uint8_t>(arr(t, "heavy"), "heavy"),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<double>(arr(t, "heavy_norm"), "heavy_norm", n),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<double>(arr(t, "inv_norms"), "inv_norms", n),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<int32_t>(arr(t, "by_heavy"), "by_heavy", n),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<int64_t>(arr(t, "heavy_ptr"), "heavy_ptr", n + 1),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<int32_t>(arr(t, "heavy_idx"), "heavy_idx"),
                        t.attr("heavy").is_none() ? nullptr : ptr_of<double>(arr(t, "heavy_w"), "heavy_w"),
                        excluded_of(t)};
}

EditScorer make_edit(const py::object& t) {
    const int64_t n = rows_of(t);
    const py::array prow = arr(t, "post_rows"), mcode = arr(t, "ms_codes");
    return EditScorer{ptr_of<int64_t>(arr(t, "indptr"), "indptr"), ptr_of<int32_t>(arr(t, "indices"), "indices"),
                      ptr_of<int64_t>(arr(t, "ms_ptr"), "ms_ptr", n + 1), ptr_of<int32_t>(mcode, "ms_codes"),
                      ptr_of<int32_t>(arr(t, "ms_counts"), "ms_counts", mcode.size()),
                      ptr_of<int64_t>(arr(t, "post_ptr"), "post_ptr"), ptr_of<int32_t>(prow, "post_rows"),
                      ptr_of<int32_t>(arr(t, "post_counts"), "post_counts", prow.size()), n,
                      vocab_of(t), excluded_of(t)};
}

// The windows, families and ranges of a tile's Sweep (simmine/tiles.py), checked against its n rows.
struct SweepArrays {
    const int32_t* stream;
    const int64_t *ws, *we, *family, *code_ptr, *cover;
    const int32_t *range_lo, *range_hi;
};
SweepArrays sweep_arrays(const py::object& w, int64_t n, int64_t vocab, bool gaps) {
    const py::array stream = arr(w, "stream");
    SweepArrays a{ptr_of<int32_t>(stream, "stream"), ptr_of<int64_t>(arr(w, "ws"), "ws", n),
                  ptr_of<int64_t>(arr(w, "we"), "we", n), ptr_of<int64_t>(arr(w, "family"), "family", n),
                  ptr_of<int64_t>(arr(w, "code_ptr"), "code_ptr", vocab + 1),
                  ptr_of<int64_t>(arr(w, "cover"), "cover", vocab), nullptr, nullptr};
    a.range_lo = ptr_of<int32_t>(arr(w, "range_lo"), "range_lo", a.code_ptr[vocab]);
    a.range_hi = ptr_of<int32_t>(arr(w, "range_hi"), "range_hi", a.code_ptr[vocab]);
    for (int64_t i = 0; i < n; ++i) {
        if (a.ws[i] < 0 || a.we[i] < a.ws[i] || a.we[i] > stream.size()) throw py::value_error("sweep: bad window");
    }
    for (int64_t q = 0; q < a.code_ptr[vocab]; ++q) {
        if (a.range_lo[q] < 0 || a.range_hi[q] > n || a.range_lo[q] > a.range_hi[q]) {
            throw py::value_error("sweep: bad range");
        }
    }
    for (int64_t p = 0; p < stream.size(); ++p) {
        if (a.stream[p] < -1 || a.stream[p] >= vocab) throw py::value_error("sweep: bad stream code");
    }
    if (!gaps) {
        for (int64_t i = 0; i < n; ++i) {  // every position of a window holds a code of the tile
            for (int64_t p = a.ws[i]; p < a.we[i]; ++p) {
                if (a.stream[p] < 0) throw py::value_error("sweep: a window holds a code outside the tile");
            }
        }
    }
    return a;
}

// The TF-IDF prefix sweep of a cosine tile with nested windows, from each local code's idf.
CosineSweep make_cosine_sweep(const py::object& t, const py::object& w, int64_t pool_target) {
    const int64_t n = rows_of(t);
    const int64_t vocab = vocab_of(t);
    const SweepArrays a = sweep_arrays(w, n, vocab, true);
    const double* idf = ptr_of<double>(arr(t, "code_idf"), "code_idf", vocab);
    CosineSweep sweep{n, a.stream, a.ws, a.we, a.family, a.code_ptr, a.range_lo, a.range_hi, a.cover, vocab,
                      make_cosine(t), excluded_of(t), pool_target};
    sweep.prepare(idf);
    return sweep;
}

// The prefix sweep of a set tile with nested windows (simmine/tiles.py: Sweep), with each row's set size.
PrefixSweep make_sweep(const py::object& t, const py::object& w, const py::array& sizes, int64_t pool_target) {
    const int64_t n = rows_of(t);
    const int64_t vocab = vocab_of(t);
    const SweepArrays a = sweep_arrays(w, n, vocab, false);
    const uint16_t* size = ptr_of<uint16_t>(sizes, "size", n);
    int32_t max_size = 0;
    for (int64_t i = 0; i < n; ++i) max_size = std::max<int32_t>(max_size, size[i]);
    if (max_size >= 65535) throw py::value_error("sweep: sets of at most 65,534 codes");
    return PrefixSweep{n, size, a.stream, a.ws, a.we, a.family, a.code_ptr, a.range_lo, a.range_hi, a.cover, vocab,
                       max_size, excluded_of(t), pool_target};
}

// A prefix sweep over rows (ascending, families consecutive) -> (counts, cols, scores, refills).
template <class Sweep>
py::tuple run_sweep(const Sweep& sweep, const py::array& rows, const py::array& k_row, double min_score) {
    const int64_t nrows = rows.size();
    const int64_t* r = checked_rows(rows, sweep.n);
    const int64_t* k = ptr_of<int64_t>(k_row, "k_row", nrows);
    BlockOutput out;
    int64_t refills = 0;
    {
        py::gil_scoped_release release;
        sweep_block(sweep, r, nrows, k, static_cast<float>(min_score), out, &refills);
    }
    py::tuple res = block_result(out, nrows);
    return py::make_tuple(res[0], res[1], res[2], refills);
}

// Scoring one bucket's tile (tiles.hpp, sweep.hpp) and assembling per-anchor lists (topk.hpp).
void bind_scoring(py::module_& m) {
    m.def("select", [](const py::object& t, py::array rows, py::array k_row, double min_score) {
        const std::string kind = py::cast<std::string>(t.attr("kind"));
        if (kind == "set") return run_select(make_sets(t), rows, k_row, min_score);
        if (kind == "prefix") return run_select(make_prefix(t), rows, k_row, min_score);
        if (kind == "cosine") return run_select(make_cosine(t), rows, k_row, min_score);
        if (kind == "edit") return run_select(make_edit(t), rows, k_row, min_score);
        throw py::value_error("unknown scorer kind " + kind);
    }, "Per row: columns with s > 0 and s >= min_score, best k_row first -> (counts, cols, scores)");
    m.def("sweep_select", [](const py::object& t, const py::object& w, py::array sizes, int64_t pool_target,
                             py::array rows, py::array k_row, double min_score) {
        return run_sweep(make_sweep(t, w, sizes, pool_target), rows, k_row, min_score);
    }, "Prefix sweep (Jaccard over nested windows): per row, the best k_row -> (counts, cols, scores, refills)");
    m.def("cosine_sweep_select", [](const py::object& t, const py::object& w, int64_t pool_target, py::array rows,
                                    py::array k_row, double min_score) {
        return run_sweep(make_cosine_sweep(t, w, pool_target), rows, k_row, min_score);
    }, "Prefix sweep (TF-IDF over nested windows): per row, the best k_row -> (counts, cols, scores, refills)");
    m.def("pairs", [](const py::object& t, py::array rows, double min_score) {
        const std::string kind = py::cast<std::string>(t.attr("kind"));
        if (kind == "set") return run_pairs(make_sets(t), rows, min_score);
        if (kind == "prefix") return run_pairs(make_prefix(t), rows, min_score);
        if (kind == "cosine") return run_pairs(make_cosine(t), rows, min_score);
        if (kind == "edit") return run_pairs(make_edit(t), rows, min_score);
        throw py::value_error("unknown scorer kind " + kind);
    }, "Threshold join: (rows, cols, scores) of pairs (i, j > i) with s > 0 and s >= min_score, unordered");
    m.def("offers", [](const py::object& t, py::array rows, py::array bar, double min_score) {
        const std::string kind = py::cast<std::string>(t.attr("kind"));
        if (kind == "set") return run_offers(make_sets(t), rows, bar, min_score);
        if (kind == "edit") return run_offers(make_edit(t), rows, bar, min_score);
        throw py::value_error("no offers for scorer kind " + kind);
    }, "Per row i: (rows, cols, scores) of every j with s > 0, s >= min_score and s >= bar[j] (an update's offers)");
    m.def("score_pairs", [](const py::object& t, py::array row_ids, py::array ptr, py::array cols) {
        const std::string kind = py::cast<std::string>(t.attr("kind"));
        if (kind == "set") return run_listed(make_sets(t), row_ids, ptr, cols);
        if (kind == "cosine") return run_listed(make_cosine(t), row_ids, ptr, cols);
        if (kind == "edit") return run_listed(make_edit(t), row_ids, ptr, cols);
        throw py::value_error("unknown scorer kind " + kind);
    }, "Exact scores of listed pairs: row_ids[r] against cols[ptr[r]:ptr[r+1]]");
    m.def("histogram", [](const py::object& t, py::array rows, int64_t prefix) {
        const std::string kind = py::cast<std::string>(t.attr("kind"));
        if (kind == "set") return run_histogram(make_sets(t), rows, prefix);
        if (kind == "cosine") return run_histogram(make_cosine(t), rows, prefix);
        if (kind == "edit") return run_histogram(make_edit(t), rows, prefix);
        throw py::value_error("unknown scorer kind " + kind);
    }, "Counts of float32 score bit patterns over pairs (i, j > i), s > 0");
    m.def("assemble_pairs", &assemble_pairs, "Per-anchor lists from scored unordered pairs (both ways)");
    m.def("set_edit_lanes", [](int lanes) {
        if (lanes != 0 && lanes != 4 && lanes != 8) throw py::value_error("lanes: 0 (the CPU's choice), 4 or 8");
        set_edit_lanes(lanes);
        return edit_lanes();
    }, "Alignments per Levenshtein batch: 0 = the CPU's choice (8 with AVX-512, else 4); returns the lanes used",
          py::arg("lanes"));
}

// MinHash signatures and LSH band candidates (minhash.hpp).
void bind_approximate(py::module_& m) {
    m.def("minhash", [](py::array indptr, py::array codes, int64_t num_perm, uint64_t seed) {
        const int64_t n = indptr.size() - 1;
        const int64_t* ip = ptr_of<int64_t>(indptr, "indptr");
        const int64_t* cd = ptr_of<int64_t>(codes, "codes", ip[n]);
        py::array_t<uint32_t> sig({n, num_perm});
        uint32_t* out = sig.mutable_data();
        {
            py::gil_scoped_release release;
            minhash_block(ip, cd, n, num_perm, seed, out);
        }
        return sig;
    }, "MinHash signatures [n, num_perm] (uint32) of the code sets of a CSR");
    m.def("band_candidates", [](py::array run_of, py::array run_ptr, py::array run_members, int64_t m,
                                py::array anchors, py::array max_candidates, py::object ex_lo, py::object ex_hi) {
        const int64_t na = anchors.size();
        const int64_t bands = m > 0 ? run_of.size() / m : 0;
        if (bands * m != run_of.size()) throw py::value_error("run_of: expected m * bands elements");
        if (bands > 65535) throw py::value_error("band_candidates: at most 65535 bands");
        const int32_t* ro = ptr_of<int32_t>(run_of, "run_of");
        const int64_t* rp = ptr_of<int64_t>(run_ptr, "run_ptr");
        const int32_t* rm = ptr_of<int32_t>(run_members, "run_members", rp[run_ptr.size() - 1]);
        const int64_t* an = ptr_of<int64_t>(anchors, "anchors");
        const int64_t* mc = ptr_of<int64_t>(max_candidates, "max_candidates", na);
        for (int64_t x = 0; x < na; ++x) {
            if (an[x] < 0 || an[x] >= m) throw py::index_error("anchor out of range");
        }
        Excluded excluded{};
        if (!ex_lo.is_none()) {
            excluded = Excluded{ptr_of<int32_t>(py::cast<py::array>(ex_lo), "ex_lo", m),
                                ptr_of<int32_t>(py::cast<py::array>(ex_hi), "ex_hi", m)};
            for (int64_t x = 0; x < na; ++x) {
                const int64_t a = an[x];
                if (excluded.lo[a] < 0 || excluded.lo[a] > a || excluded.hi[a] <= a || excluded.hi[a] > m) {
                    throw py::value_error("ex_lo/ex_hi: no run around an anchor");
                }
            }
        }
        std::vector<std::vector<int32_t>> nbr, shared;
        {
            py::gil_scoped_release release;
            band_candidates_block(ro, bands, rp, rm, m, an, na, mc, excluded, nbr, shared);
        }
        py::array_t<int64_t> ptr(na + 1);
        int64_t* p = ptr.mutable_data();
        p[0] = 0;
        for (int64_t x = 0; x < na; ++x) p[x + 1] = p[x] + static_cast<int64_t>(nbr[x].size());
        py::array_t<int32_t> cols(p[na]), counts(p[na]);
        int32_t* c = cols.mutable_data();
        int32_t* k = counts.mutable_data();
        for (int64_t x = 0; x < na; ++x) {
            std::copy(nbr[x].begin(), nbr[x].end(), c + p[x]);
            std::copy(shared[x].begin(), shared[x].end(), k + p[x]);
        }
        return py::make_tuple(ptr, cols, counts);
    }, "LSH band collisions of anchors: (ptr, rows, runs shared), the best max_candidates[x] (ties kept)",
       py::arg("run_of"), py::arg("run_ptr"), py::arg("run_members"), py::arg("m"), py::arg("anchors"),
       py::arg("max_candidates"), py::arg("ex_lo") = py::none(), py::arg("ex_hi") = py::none());
}

// The log's rows and CSRs: orders, the lines reader, unique codes and counts (rows.hpp, text.hpp, items.hpp).
void bind_rows(py::module_& m) {
    // Stable counting sort of codes in [0, vocab): the entries of each code in their original order
    // (a CSR's transpose: rows ascending within each code).
    m.def("code_order", [](py::array codes_in, int64_t vocab) {
        const int32_t* codes = ptr_of<int32_t>(codes_in, "codes");
        const int64_t n = codes_in.size();
        py::array_t<int64_t> order(n);
        int64_t* out = order.mutable_data();
        {
            py::gil_scoped_release release;
            counting_order(codes, n, vocab, out);
        }
        return order;
    }, "Stable counting-sort order of int32 codes in [0, vocab)", py::arg("codes"), py::arg("vocab"));
    m.def("first_appearance", [](py::array ids_in, int64_t lo, int64_t span) {
        const int64_t n = ids_in.size();
        const int64_t* ids = ptr_of<int64_t>(ids_in, "ids");
        for (int64_t p = 0; p < n; ++p) {
            if (ids[p] < lo || ids[p] - lo >= span) throw py::index_error("ids: value outside [lo, lo + span)");
        }
        py::array_t<int64_t> codes(n), first(n);
        int64_t distinct;
        {
            py::gil_scoped_release release;
            distinct = first_appearance(ids, n, lo, span, codes.mutable_data(), first.mutable_data());
        }
        return py::make_tuple(codes, first[py::slice(0, distinct, 1)]);
    }, "Integer ids -> (codes in order of first appearance, the first row of each code)");
    m.def("user_time_order", [](py::array users_in, py::object times_in, int64_t n_users) -> py::object {
        const int64_t n = users_in.size();
        const int64_t* users = ptr_of<int64_t>(users_in, "users");
        for (int64_t p = 0; p < n; ++p) {
            if (users[p] < 0 || users[p] >= n_users) throw py::index_error("users: code out of range");
        }
        auto run = [&](auto* times) -> py::object {
            bool identity;
            {
                py::gil_scoped_release release;
                identity = in_user_time_order(users, times, n);
            }
            if (identity) return py::none();
            py::array_t<int64_t> order(n);
            int64_t* out = order.mutable_data();
            {
                py::gil_scoped_release release;
                user_time_order(users, times, n, n_users, out);
            }
            return std::move(order);
        };
        if (times_in.is_none()) return run(static_cast<const int64_t*>(nullptr));
        py::array times = times_in.cast<py::array>();
        if (times.size() != n) throw py::value_error("times: expected one per row");
        if (py::isinstance<py::array_t<double>>(times)) return run(ptr_of<double>(times, "times"));
        return run(ptr_of<int64_t>(times, "times"));
    }, "Rows by user code, then time, ties in file order (lexsort((times, users))); None when already so",
          py::arg("users"), py::arg("times"), py::arg("n_users"));
    m.def("lines_tokens", [](py::array data, bool text) {
        const uint8_t* d = ptr_of<uint8_t>(data, "data");
        const int64_t n = data.size();
        LinesCount c;
        {
            py::gil_scoped_release release;
            c = count_lines(d, n);
        }
        text = text || !c.maybe_int;
        if (c.lines > INT32_MAX) throw py::value_error("lines: more than 2^31 lines");
        const int64_t ni = text ? 0 : c.tokens, nt = text ? c.tokens : 0, nu = text ? c.lines : 0;
        py::array_t<int64_t> item_value(ni), item_user_value(ni), item_start(nt), user_start(nu);
        py::array_t<int32_t> item_len(nt), item_user(nt), user_len(nu);
        LinesColumns cols{text, item_value.mutable_data(), item_user_value.mutable_data(), item_start.mutable_data(),
                          item_len.mutable_data(), item_user.mutable_data(), user_start.mutable_data(),
                          user_len.mutable_data()};
        {
            py::gil_scoped_release release;
            fill_lines(d, n, c, cols);
        }
        py::dict out;  // columns sized by upper bounds: the first users / items entries are filled
        out["users"] = c.users;
        out["items"] = c.items;
        out["text"] = text;
        out["integers"] = !text && c.canonical;
        out["first_short_line"] = c.first_short_line;
        out["item_value"] = item_value;
        out["item_user_value"] = item_user_value;
        out["item_start"] = item_start;
        out["item_len"] = item_len;
        out["item_user"] = item_user;
        out["user_start"] = user_start;
        out["user_len"] = user_len;
        return out;
    }, "One user per line: integer columns (item and user values) or text columns (byte ranges), docs/input.md");
    m.def("user_item_sets", [](py::array indptr_in, py::array codes_in, int64_t vocab) {
        const auto [indptr, codes, users] = checked_csr(indptr_in, codes_in, vocab);
        UserItemSets s;
        {
            py::gil_scoped_release release;
            s = user_item_sets(indptr, codes, users, vocab);
        }
        return py::make_tuple(as_array(s.user_ptr), as_array(s.user_items), as_array(s.item_ptr),
                              as_array(s.item_users));
    }, "Unique items per user and users per item, both ascending: (user_ptr, user_items, item_ptr, item_users)",
          py::arg("indptr"), py::arg("codes"), py::arg("vocab"));
    m.def("unique_per_row", [](py::array indptr_in, py::array codes_in, int64_t vocab) {
        const auto [indptr, codes, rows] = checked_csr(indptr_in, codes_in, vocab);
        UserItemSets s;
        {
            py::gil_scoped_release release;
            s = user_item_sets(indptr, codes, rows, vocab, true);
        }
        return py::make_tuple(as_array(s.user_ptr), as_array(s.user_items), as_array(s.counts));
    }, "Each row's codes ascending without repeats and their counts: (indptr, codes, counts)", py::arg("indptr"),
          py::arg("codes"), py::arg("vocab"));
    m.def("users_per_item", [](py::array indptr_in, py::array codes_in, int64_t vocab) {
        const auto [indptr, codes, users] = checked_csr(indptr_in, codes_in, vocab);
        py::array_t<int64_t> out(vocab);
        int64_t* o = out.mutable_data();
        {
            py::gil_scoped_release release;
            users_per_item(indptr, codes, users, vocab, o);
        }
        return out;
    }, "N_i: how many rows hold each code at least once", py::arg("indptr"), py::arg("codes"), py::arg("vocab"));
}

// Item neighbours: co-counts over user sets (items.hpp), dense top-k and the embedding screens (embed.hpp).
void bind_items(py::module_& m) {
    m.def("item_topk", [](py::array item_ptr, py::array item_users, py::array user_ptr, py::array user_items,
                          int64_t k, bool cosine, py::object user_weight_in) {
        const int64_t n = item_ptr.size() - 1, users = user_ptr.size() - 1;
        const int64_t* iptr = ptr_of<int64_t>(item_ptr, "item_ptr");
        const int64_t* uptr = ptr_of<int64_t>(user_ptr, "user_ptr");
        const int32_t* iu = ptr_of<int32_t>(item_users, "item_users", iptr[n]);
        const int32_t* ui = ptr_of<int32_t>(user_items, "user_items", uptr[users]);
        for (int64_t p = 0; p < item_users.size(); ++p) {
            if (iu[p] < 0 || iu[p] >= users) throw py::index_error("item_users: out of range");
        }
        for (int64_t p = 0; p < user_items.size(); ++p) {
            if (ui[p] < 0 || ui[p] >= n) throw py::index_error("user_items: out of range");
        }
        const double* user_weight = nullptr;
        if (!user_weight_in.is_none()) {
            if (!cosine) throw py::value_error("user_weight: cosine only");
            user_weight = ptr_of<double>(user_weight_in.cast<py::array>(), "user_weight", users);
            for (int64_t u = 0; u < users; ++u) {
                if (!(user_weight[u] > 0.0) || !std::isfinite(user_weight[u])) {
                    throw py::value_error("user_weight: weights must be positive and finite");
                }
            }
        }
        k = std::max<int64_t>(0, std::min<int64_t>(k, std::max<int64_t>(n - 1, 0)));
        std::vector<int64_t> offsets;
        std::vector<int32_t> cols;
        std::vector<float> scores;
        {
            py::gil_scoped_release release;
            if (n <= 65536) {
                std::vector<uint16_t> narrow(ui, ui + uptr[users]);
                item_topk_lists(ItemCoCounts<uint16_t>{iptr, iu, uptr, narrow.data(), n, cosine, user_weight}, n, k,
                                offsets, cols, scores);
            } else {
                item_topk_lists(ItemCoCounts<int32_t>{iptr, iu, uptr, ui, n, cosine, user_weight}, n, k, offsets,
                                cols, scores);
            }
        }
        py::array_t<int64_t> o(n + 1);
        std::copy(offsets.begin(), offsets.end(), o.mutable_data());
        py::array_t<int32_t> c(static_cast<py::ssize_t>(cols.size()));
        std::copy(cols.begin(), cols.end(), c.mutable_data());
        py::array_t<float> sc(static_cast<py::ssize_t>(scores.size()));
        std::copy(scores.begin(), scores.end(), sc.mutable_data());
        return py::make_tuple(o, c, sc);
    }, "Each item's best k other items by Jaccard or cosine (ItemCF) of user sets: (offsets, cols, scores)",
          py::arg("item_ptr"), py::arg("item_users"), py::arg("user_ptr"), py::arg("user_items"), py::arg("k"),
          py::arg("cosine"), py::arg("user_weight") = py::none());
    m.def("dense_topk", [](py::array scores, int64_t k) {
        // Per row of a C-contiguous float32 [R, n] block: the columns of its k largest finite scores, best
        // first (score descending, column ascending) -> int64 [R, min(k, n)].
        if (scores.ndim() != 2) throw py::value_error("scores: expected a 2-D array");
        const int64_t r = scores.shape(0), n = scores.shape(1);
        const float* s = ptr_of<float>(scores, "scores", r * n);
        const int64_t kk = std::max<int64_t>(0, std::min(k, n));
        py::array_t<int64_t> out({r, kk});
        int64_t* o = out.mutable_data();
        {
            py::gil_scoped_release release;
            dense_row_topk(s, r, n, kk, o);
        }
        return out;
    }, "Per row of a float32 block, the columns of its k best scores (-1 past the finite ones)");
    m.def("pair_dots", [](py::array vectors, py::array rows, py::array cols) {
        // dots[x] = Σ_t vectors[rows[x], t] · vectors[cols[x], t] in float64 (float32 or float64 vectors), in
        // one fixed order (embed.hpp's ordered_dots4): the exact re-scoring of screened candidates, without
        // gathering their rows.
        if (vectors.ndim() != 2 || rows.ndim() != 1 || cols.ndim() != 1 || rows.size() != cols.size()) {
            throw py::value_error("pair_dots: expected 2-D vectors and equally long 1-D rows and cols");
        }
        const int64_t n = vectors.shape(0), d = vectors.shape(1), m = rows.size();
        const int64_t* rw = ptr_of<int64_t>(rows, "rows", m);
        const int64_t* cl = ptr_of<int64_t>(cols, "cols", m);
        for (int64_t x = 0; x < m; ++x) {
            if (rw[x] < 0 || rw[x] >= n || cl[x] < 0 || cl[x] >= n) throw py::value_error("pair_dots: index out of range");
        }
        py::array_t<double> out(m);
        double* o = out.mutable_data();
        auto run = [&](auto* v) {
            py::gil_scoped_release release;
            pair_dots(v, d, rw, cl, m, o);
        };
        if (py::isinstance<py::array_t<float>>(vectors)) {
            run(ptr_of<float>(vectors, "vectors", n * d));
        } else {
            run(ptr_of<double>(vectors, "vectors", n * d));
        }
        return out;
    }, "Float64 dots of pairs of rows in one fixed summation order", py::arg("vectors"), py::arg("rows"),
       py::arg("cols"));
    m.def("embed_candidates", [](py::array x, py::array window, int64_t k, int64_t most) {
        // bfloat16 screen of float32 [n, d] rows (embed.hpp, the route embed_screen() names) -> (ptr int64
        // [n + 1], cols int64, overflow bool [n]: rows to rescore against every column).
        if (x.ndim() != 2) throw py::value_error("embed_candidates: expected a 2-D float32 array");
        const int64_t n = x.shape(0), d = x.shape(1);
        const float* xs = ptr_of<float>(x, "x", n * d);
        const double* w = ptr_of<double>(window, "window", n);
        if (embed_screen().empty()) throw py::value_error("embed_candidates: no bfloat16 screen runs here");
        if (k < 1) throw py::value_error("embed_candidates: k must be >= 1");
        std::vector<int64_t> ptr;
        std::vector<int32_t> cols;
        std::vector<uint8_t> overflow;
        {
            py::gil_scoped_release release;
            embed_candidates(xs, n, d, w, k, most, ptr, cols, overflow);
        }
        py::array_t<int64_t> p(static_cast<int64_t>(ptr.size()));
        std::copy(ptr.begin(), ptr.end(), p.mutable_data());
        py::array_t<int64_t> c(static_cast<int64_t>(cols.size()));
        std::copy(cols.begin(), cols.end(), c.mutable_data());
        py::array_t<bool> o(n);
        std::copy(overflow.begin(), overflow.end(), o.mutable_data());
        return py::make_tuple(p, c, o);
    }, "Each row's columns whose bfloat16 score is within window[r] of its k-th (CSR)", py::arg("x"),
       py::arg("window"), py::arg("k"), py::arg("most") = 8192);
    m.def("bf16_norms", [](py::array x) {
        // Per row of float32 [n, d]: (‖bf16(x)‖, ‖x − bf16(x)‖) in float64, for the screen's error bound.
        if (x.ndim() != 2) throw py::value_error("bf16_norms: expected a 2-D float32 array");
        const int64_t n = x.shape(0), d = x.shape(1);
        const float* xs = ptr_of<float>(x, "x", n * d);
        py::array_t<double> rounded(n), residual(n);
        {
            py::gil_scoped_release release;
            bf16_norms(xs, n, d, rounded.mutable_data(), residual.mutable_data());
        }
        return py::make_tuple(rounded, residual);
    }, "Norms of each row's bfloat16 rounding and of its residual", py::arg("x"));
    m.def("embed_screens", []() { return embed_screens(); }, "The bfloat16 screens this CPU runs, fastest first");
    m.def("embed_screen", []() { return embed_screen(); }, "The screen embed_candidates takes now ('' when none)");
    m.def("set_embed_screen", [](const std::string& name) {
        if (!set_embed_screen(name)) throw py::value_error("set_embed_screen: this CPU does not run '" + name + "'");
        return embed_screen();
    }, "'auto' (the fastest here), '' (none) or a name from embed_screens(); returns the screen taken",
          py::arg("name"));
}

// OpenMP's team size.
void bind_threads(py::module_& m) {
    m.def("set_num_threads", [](int n) {
#ifdef _OPENMP
        if (n > 0) omp_set_num_threads(n);
#endif
    });
    m.def("get_num_threads", []() {
#ifdef _OPENMP
        return omp_get_max_threads();
#else
        return 1;
#endif
    });
    m.attr("has_openmp") =
#ifdef _OPENMP
        true;
#else
        false;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "simmine C++ core: exact per-anchor selection and score histograms (OpenMP).";
    bind_scoring(m);
    bind_approximate(m);
    bind_rows(m);
    bind_items(m);
    bind_threads(m);
}
