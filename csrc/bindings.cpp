// The only pybind11 file: checks dtypes and shapes, releases the GIL, calls the kernels in tiles.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tiles.hpp"

namespace py = pybind11;
using namespace simmine;

namespace {

template <class T>
const T* ptr_of(const py::array& a, const char* name, int64_t expect_len = -1) {
    if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>())) {
        throw py::type_error(std::string(name) + ": wrong dtype " + std::string(py::str(a.dtype())));
    }
    if (a.ndim() != 1) throw py::value_error(std::string(name) + ": expected a 1-D array");
    if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": not contiguous");
    if (expect_len >= 0 && a.shape(0) != expect_len) {
        throw py::value_error(std::string(name) + ": expected length " + std::to_string(expect_len));
    }
    return static_cast<const T*>(a.data());
}

template <class Scorer>
py::tuple run_select(const Scorer& scorer, const py::array& rows, const py::array& k_row, double min_score) {
    const int64_t nrows = rows.shape(0);
    const int64_t* r = ptr_of<int64_t>(rows, "rows");
    const int64_t* k = ptr_of<int64_t>(k_row, "k_row", nrows);
    for (int64_t t = 0; t < nrows; ++t) {
        if (r[t] < 0 || r[t] >= scorer.n) throw py::index_error("rows: index out of range");
    }
    std::vector<int64_t> off(nrows + 1, 0);
    for (int64_t t = 0; t < nrows; ++t) off[t + 1] = off[t] + std::max<int64_t>(0, std::min(k[t], scorer.n - 1));
    std::vector<int32_t> col(off[nrows]);
    std::vector<float> score(off[nrows]);
    py::array_t<int64_t> counts(nrows);
    int64_t* cnt = counts.mutable_data();
    {
        py::gil_scoped_release release;
        select_block(scorer, r, nrows, k, static_cast<float>(min_score), off.data(), col.data(), score.data(), cnt);
    }
    int64_t total = 0;
    for (int64_t t = 0; t < nrows; ++t) total += cnt[t];
    py::array_t<int32_t> out_col(total);
    py::array_t<float> out_score(total);
    int32_t* oc = out_col.mutable_data();
    float* os = out_score.mutable_data();
    for (int64_t t = 0, w = 0; t < nrows; ++t) {
        std::copy(col.begin() + off[t], col.begin() + off[t] + cnt[t], oc + w);
        std::copy(score.begin() + off[t], score.begin() + off[t] + cnt[t], os + w);
        w += cnt[t];
    }
    return py::make_tuple(counts, out_col, out_score);
}

template <class Scorer>
py::array_t<int64_t> run_histogram(const Scorer& scorer, const py::array& rows, int64_t prefix) {
    const int64_t nrows = rows.shape(0);
    const int64_t* r = ptr_of<int64_t>(rows, "rows");
    for (int64_t t = 0; t < nrows; ++t) {
        if (r[t] < 0 || r[t] >= scorer.n) throw py::index_error("rows: index out of range");
    }
    py::array_t<int64_t> hist(kHistBins);
    int64_t* h = hist.mutable_data();
    {
        py::gil_scoped_release release;
        histogram_block(scorer, r, nrows, prefix, h);
    }
    return hist;
}

SetScorer make_sets(const py::array& indptr, const py::array& idx, const py::array& pptr, const py::array& prow) {
    const int64_t n = indptr.shape(0) - 1;
    return SetScorer{ptr_of<int64_t>(indptr, "indptr"), ptr_of<int32_t>(idx, "indices"),
                     ptr_of<int64_t>(pptr, "post_ptr"), ptr_of<int32_t>(prow, "post_rows"), n};
}

CosineScorer make_cosine(const py::array& indptr, const py::array& idx, const py::array& w, const py::array& norms,
                         const py::array& pptr, const py::array& prow, const py::array& pw) {
    const int64_t n = indptr.shape(0) - 1;
    return CosineScorer{ptr_of<int64_t>(indptr, "indptr"), ptr_of<int32_t>(idx, "indices"),
                        ptr_of<double>(w, "weights", idx.shape(0)), ptr_of<double>(norms, "norms", n),
                        ptr_of<int64_t>(pptr, "post_ptr"), ptr_of<int32_t>(prow, "post_rows"),
                        ptr_of<double>(pw, "post_weights", prow.shape(0)), n};
}

EditScorer make_edit(const py::array& indptr, const py::array& idx, int64_t vocab) {
    const int64_t n = indptr.shape(0) - 1;
    return EditScorer{ptr_of<int64_t>(indptr, "indptr"), ptr_of<int32_t>(idx, "indices"), n, vocab};
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "simmine C++ core: exact per-anchor selection and score histograms (OpenMP).";

    m.def("select_sets", [](py::array indptr, py::array idx, py::array pptr, py::array prow, py::array rows,
                            py::array k_row, double min_score) {
        return run_select(make_sets(indptr, idx, pptr, prow), rows, k_row, min_score);
    });
    m.def("select_cosine", [](py::array indptr, py::array idx, py::array w, py::array norms, py::array pptr,
                              py::array prow, py::array pw, py::array rows, py::array k_row, double min_score) {
        return run_select(make_cosine(indptr, idx, w, norms, pptr, prow, pw), rows, k_row, min_score);
    });
    m.def("select_edit", [](py::array indptr, py::array idx, int64_t vocab, py::array rows, py::array k_row,
                            double min_score) {
        return run_select(make_edit(indptr, idx, vocab), rows, k_row, min_score);
    });
    m.def("histogram_sets", [](py::array indptr, py::array idx, py::array pptr, py::array prow, py::array rows,
                               int64_t prefix) {
        return run_histogram(make_sets(indptr, idx, pptr, prow), rows, prefix);
    });
    m.def("histogram_cosine", [](py::array indptr, py::array idx, py::array w, py::array norms, py::array pptr,
                                 py::array prow, py::array pw, py::array rows, int64_t prefix) {
        return run_histogram(make_cosine(indptr, idx, w, norms, pptr, prow, pw), rows, prefix);
    });
    m.def("histogram_edit", [](py::array indptr, py::array idx, int64_t vocab, py::array rows, int64_t prefix) {
        return run_histogram(make_edit(indptr, idx, vocab), rows, prefix);
    });
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
