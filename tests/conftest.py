import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simmine

BACKENDS = simmine.available_backends()
NATIVE = [b for b in BACKENDS if b != "python"]
METRICS = ["jaccard", "tfidf", "ngram", "levenshtein"]


def stable_seed(*parts) -> int:
    """A seed fixed by ``parts`` (a CRC of their text), the same in every process, so a failure replays; Python's
    ``hash`` of a string changes with every process."""
    return zlib.crc32(repr(parts).encode("utf-8"))


@pytest.fixture
def rng(request):
    """A generator seeded by the test's id (``stable_seed``): each test its own data, the same on every run."""
    return np.random.default_rng(stable_seed(request.node.nodeid))


def random_rows(rng, n_users=25, n_items=15, max_len=12, with_city=False):
    """A small random log as rows (user, item, time[, city]) with deliberate duplicate times."""
    rows = []
    for u in range(n_users):
        length = int(rng.integers(1, max_len))
        for t in range(length):
            row = (f"u{u}", int(rng.integers(0, n_items)), int(rng.integers(0, 6)))
            rows.append(row + ((f"c{int(rng.integers(0, 3))}",) if with_city else ()))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_parquet(path, rows, with_city=False):
    cols = {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "timestamp": [r[2] for r in rows]}
    if with_city:
        cols["city"] = [r[3] for r in rows]
    pq.write_table(pa.table(cols), path)
    return str(path)


def load_weak(out):
    pos = simmine.open(out)
    return [pos.weak(i) for i in range(len(pos))], [pos.strong(i) for i in range(len(pos))]


# The slow tests (docs/development.md): real Ray clusters, kill -9 and resume, the docs site build, training
# runs and the longest end-to-end builds. `pytest -m "not slow"` is the inner loop; CI runs everything.
SLOW = {
    "test_ray.py": None,            # every test: a real local Ray cluster
    "test_docs.py": None,           # mkdocs build --strict
    "test_trainer.py": None,        # short training runs of the reference trainer
    "test_recbole.py": None,        # RecBole training runs
    "test_stream.py": ("test_kill_9", "test_streamed_equals_in_memory"),
    "test_shards.py": ("test_kill_9", "test_sharded_minhash_equals_single_file"),
    "test_minhash.py": ("test_rescoring_in_small_batches", "test_minhash_builds_identical_across_backends",
                        "test_buckets_where_exact_search", "test_minhash_build_rescored_exactly",
                        "test_calibrated_candidates"),
    "test_embedding_faiss.py": ("test_faiss_with_every_candidate_equals_exact",),
    "test_cuda.py": ("test_kernels_compile_with_nvcc",),
    "test_cli.py": ("test_verify_recomputes_bucketed_builds",),
    "test_update.py": ("test_update_equals_rebuild[prefix", "test_kill_during_update",
                       "test_modes_without_an_incremental_route"),
    "test_backends.py": ("test_levenshtein_sequences_longer_than_a_word", "test_levenshtein_alignment_lanes"),
    "test_items.py": ("test_continuous_embedding_neighbours",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = SLOW.get(item.path.name, ())
        if names is None or item.name.startswith(names):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_env_backend(monkeypatch):
    monkeypatch.delenv("SIMMINE_BACKEND", raising=False)


@pytest.fixture(autouse=True)
def _minhash_route(request, monkeypatch):
    """Test logs are small enough that minhash's cost model searches every bucket exactly; tests keep the
    minhash route unless marked ``planner``, which see the real choice."""
    if "planner" not in request.keywords:
        from simmine.approx import minhash

        monkeypatch.setattr(minhash, "exact_reason", lambda *args: None)
