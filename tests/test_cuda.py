"""CUDA backend: kernels compile for sm_80/sm_90 with nvcc (no GPU needed); host side; GPU parity when a GPU
is usable (skipped otherwise)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import simmine
from simmine.backends import cuda, get_backend, reference
from simmine.metrics import prepare_features, resolve_metric

HAS_GPU = "cuda" in simmine.available_backends()
NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvcc(tmp_path, arch):
    src = os.path.join(os.path.dirname(cuda.__file__), "kernels", "scores.cu")
    r = subprocess.run([NVCC, "-std=c++17", f"-arch={arch}", f"-I{cuda.include_dir()}", "-c", src, "-o",
                        str(tmp_path / "scores.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "scores.o").stat().st_size > 0


def test_kernel_source_and_header_are_found():
    assert "extern \"C\" __global__ void set_tile" in cuda.kernel_source()
    assert os.path.isfile(os.path.join(cuda.include_dir(), "metrics.hpp"))


def test_replace_rows_swaps_whole_row_lists_in_row_order():
    """The host-side merge that puts recomputed TF-IDF rows back among the certified ones (runs without a GPU)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        r = int(rng.integers(1, 30))
        counts = rng.integers(0, 5, r)
        cols, scores = rng.integers(0, 100, counts.sum()).astype(np.int32), rng.random(counts.sum())
        rows = np.flatnonzero(rng.random(r) < 0.4)
        new_counts = rng.integers(0, 5, len(rows))
        new_cols, new_scores = rng.integers(0, 100, new_counts.sum()).astype(np.int32), rng.random(new_counts.sum())
        per_row = np.split(np.stack([cols, scores]), np.cumsum(counts)[:-1], axis=1)
        new_per_row = np.split(np.stack([new_cols, new_scores]), np.cumsum(new_counts)[:-1], axis=1)
        for t, i in enumerate(rows.tolist()):
            per_row[i] = new_per_row[t]
        want = np.concatenate(per_row, axis=1)
        got_counts, got_cols, got_scores = cuda._replace_rows((counts, cols, scores), rows,
                                                              (new_counts, new_cols, new_scores))
        assert got_counts.tolist() == [p.shape[1] for p in per_row]
        np.testing.assert_array_equal(got_cols, want[0].astype(np.int32))
        np.testing.assert_array_equal(got_scores, want[1])


@pytest.mark.skipif(HAS_GPU, reason="a GPU is usable here")
def test_cuda_by_name_without_gpu_is_an_error(tmp_path):
    with pytest.raises(simmine.InputError, match="backend 'cuda' is not available"):
        get_backend("cuda")
    assert get_backend("auto").name != "cuda"


def _assert_backend_equals_reference(tile, n):
    rows = np.arange(n, dtype=np.int64)
    for k, t in ((5, 0.0), (n - 1, 0.2), (3, 0.35)):
        k_row = np.full(n, k, dtype=np.int64)
        k_row[::7] = 0
        for w, g in zip(reference.select(tile, rows, k_row, t), cuda.select(tile, rows, k_row, t)):
            np.testing.assert_array_equal(g, w)
    assert sorted(zip(*[a.tolist() for a in cuda.pairs(tile, rows, 0.3)])) == \
        sorted(zip(*[a.tolist() for a in reference.pairs(tile, rows, 0.3)]))
    np.testing.assert_array_equal(cuda.histogram(tile, rows, -1), reference.histogram(tile, rows, -1))
    ptr = np.array([0, 3, 5], dtype=np.int64)
    cols = np.array([1, 2, 3, 0, 9], dtype=np.int32)
    np.testing.assert_array_equal(cuda.score_pairs(tile, np.array([0, 7]), ptr, cols),
                                  reference.score_pairs(tile, np.array([0, 7]), ptr, cols))


def _zipf_tile(metric, n=80, vocab=40, max_len=90, seed=0):
    from test_backends import _seqs

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    hists = [rng.choice(vocab, size=int(rng.integers(1, max_len)), p=p / p.sum()).tolist() for _ in range(n)]
    return prepare_features(_seqs(hists), resolve_metric(metric)).tile(np.arange(n))


@pytest.mark.skipif(not HAS_GPU, reason="no usable GPU")
@pytest.mark.parametrize("path", ["gemm", "merge"])
@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein"])
def test_gpu_kernels_equal_reference(metric, path, monkeypatch):
    if path == "merge":
        monkeypatch.setattr(cuda, "GEMM_MAX_VOCAB", 0)
    before = dict(cuda.stats)
    tile = _zipf_tile(metric)
    _assert_backend_equals_reference(tile, tile.n)
    np.testing.assert_array_equal(cuda.minhash(tile.indptr, tile.indices.astype(np.int64), 32, 3),
                                  reference.minhash(tile.indptr, tile.indices.astype(np.int64), 32, 3))
    if metric in ("jaccard", "ngram"):
        key = "gemm_blocks" if path == "gemm" else "merge_blocks"
        moved = cuda.stats[key] - before[key]
        assert moved > 0
    if metric == "tfidf" and path == "gemm":
        assert cuda.stats["tfidf_rows_certified"] > before["tfidf_rows_certified"]


@pytest.mark.skipif(not HAS_GPU, reason="no usable GPU")
def test_gpu_tfidf_rows_the_bound_cannot_certify_are_recomputed(monkeypatch):
    monkeypatch.setattr(cuda, "GEMM_EPS", 0.9)  # a loose bound certifies almost nothing
    before = cuda.stats["tfidf_rows_recomputed"]
    tile = _zipf_tile("tfidf", n=120, seed=1)
    _assert_backend_equals_reference(tile, tile.n)
    assert cuda.stats["tfidf_rows_recomputed"] > before


@pytest.mark.skipif(not HAS_GPU, reason="no usable GPU")
@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "levenshtein"])
def test_gpu_one_row_blocks_equal_reference(metric, monkeypatch):
    monkeypatch.setattr(cuda, "MEMORY_FRACTION", 1e-12)  # one row per block: padding and block joins
    tile = _zipf_tile(metric, n=40, max_len=150, seed=2)  # histories past 64 items: the DP and swapped Myers
    _assert_backend_equals_reference(tile, tile.n)


@pytest.mark.skipif(not HAS_GPU, reason="no usable GPU")
@pytest.mark.parametrize("sel", [dict(k=10), dict(alpha=0.05), dict(min_sim=0.3),
                                 dict(alpha=0.01, alpha_scope="global")],
                         ids=str)
def test_gpu_build_equals_cpp(tmp_path, sel):
    for metric in ("jaccard", "tfidf", "levenshtein"):
        a = simmine.build(metric=metric, backend="cuda", out=str(tmp_path / "g"), quiet=True, **sel)
        b = simmine.build(metric=metric, backend="cpp", out=str(tmp_path / "c"), quiet=True, **sel)
        pa_, pb = simmine.open(a), simmine.open(b)
        for i in range(len(pa_)):
            np.testing.assert_array_equal(pa_.weak(i)[0], pb.weak(i)[0])
            np.testing.assert_array_equal(pa_.weak(i)[1], pb.weak(i)[1])


def test_ray_tasks_ask_for_a_gpu_only_on_the_cuda_backend():
    from simmine.engines.ray_ import task_resources

    assert task_resources("cuda") == {"num_cpus": 1, "num_gpus": 1}
    assert task_resources("cpp")["num_gpus"] == 0 and task_resources("numba")["num_gpus"] == 0


@pytest.mark.skipif(not HAS_GPU, reason="no usable GPU")
def test_gpu_tiles_on_ray_equal_cpp(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        cpu = simmine.build(out=str(tmp_path / "cpp"), k=5, bucket_by="city", backend="cpp", quiet=True)
        gpu = simmine.build(out=str(tmp_path / "gpu"), k=5, bucket_by="city", backend="cuda", engine="ray",
                            quiet=True)
    finally:
        ray.shutdown()
    a, b = simmine.open(cpu), simmine.open(gpu)
    for i in range(len(a)):
        assert np.array_equal(a.weak(i)[0], b.weak(i)[0])
        assert np.allclose(a.weak(i)[1], b.weak(i)[1], rtol=0, atol=1e-6)
