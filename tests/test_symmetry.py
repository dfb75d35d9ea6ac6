"""s(i, j) = s(j, i) (docs/metrics.md: every similarity is symmetric), on every backend and metric: each row's
full list (k = every column) and the scores of the listed pairs both ways agree bit for bit."""
import numpy as np
import pyarrow as pa
import pytest

from conftest import BACKENDS, METRICS, stable_seed
from simmine.anchors import SequenceSet
from simmine.backends import dense, get_backend
from simmine.metrics import dense_features, prepare_features, resolve_metric


def _features(metric, rng, n=60):
    if metric == "embedding":
        return dense_features(rng.integers(-3, 4, size=(n, 6)).astype(np.float64))
    lengths = rng.integers(1, 25, size=n)
    items = (rng.zipf(1.4, size=int(lengths.sum())) % 40).astype(np.int32)
    seqs = SequenceSet(indptr=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), items=items,
                       item_values=pa.array(np.arange(40)), user_values=pa.array(np.arange(n)),
                       target_codes=np.zeros(n, np.int32), bucket_codes=None, bucket_labels=None, n_users=n,
                       skipped=0)
    return prepare_features(seqs, resolve_metric(metric), ngram_n=2)


def _full_lists(backend, tile) -> dict:
    rows = np.arange(tile.n, dtype=np.int64)
    counts, cols, scores = backend.select(tile, rows, np.full(tile.n, tile.n, dtype=np.int64), 0.0)
    owner = np.repeat(rows, counts)
    return {(int(i), int(j)): np.float32(s) for i, j, s in zip(owner, cols, scores)}


CASES = [(b, m) for b in BACKENDS for m in METRICS] + [("blas", "embedding")]


@pytest.mark.parametrize("backend,metric", CASES)
@pytest.mark.parametrize("trial", range(3))
def test_similarity_is_symmetric(backend, metric, trial):
    rng = np.random.default_rng(stable_seed(backend, metric, trial))
    tile = _features(metric, rng).tile(np.arange(60))
    be = dense if backend == "blas" else get_backend(backend)
    lists = _full_lists(be, tile)
    assert lists, "no pair scored above 0: the case tests nothing"
    for (i, j), s in lists.items():
        assert i != j
        assert (j, i) in lists and lists[(j, i)] == s, f"s({i}, {j}) = {s}, s({j}, {i}) = {lists.get((j, i))}"
    listed = sorted(lists)
    row_ids = np.arange(tile.n, dtype=np.int64)
    ptr = np.searchsorted(np.array([p[0] for p in listed]), np.arange(tile.n + 1))
    cols = np.array([p[1] for p in listed], dtype=np.int32)
    forward = be.score_pairs(tile, row_ids, ptr.astype(np.int64), cols)
    assert np.array_equal(forward, np.array([lists[p] for p in listed], dtype=np.float32))
