"""Metric values worked out by hand (docs/metrics.md), through a whole build, on every backend."""
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simmine
from conftest import BACKENDS


def _log(tmp_path, histories):
    """Each history gets a distinct dummy target; split none: T = history + [target]."""
    rows = []
    for u, hist in enumerate(histories):
        for t, item in enumerate(list(hist) + [1000 + u]):
            rows.append((u, item, t))
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                             "timestamp": [r[2] for r in rows]}), path)
    return str(path)


def _score(out, i, j):
    nbr, sc = simmine.open(out).weak(i)
    hit = np.flatnonzero(nbr == j)
    return float(sc[hit[0]]) if len(hit) else 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_jaccard_by_hand(tmp_path, backend):
    path = _log(tmp_path, [[1, 2, 3, 3], [2, 3, 4], [7, 8], [1, 1]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="jaccard", min_sim=0.0, split="none",
                        backend=backend, quiet=True)
    assert _score(out, 0, 1) == pytest.approx(2 / 4)      # {1,2,3} vs {2,3,4}
    assert _score(out, 0, 3) == pytest.approx(1 / 3)      # {1,2,3} vs {1}
    assert _score(out, 0, 2) == 0.0                       # disjoint: never a positive
    assert 2 not in simmine.open(out).weak(0)[0]
    assert 0 not in simmine.open(out).weak(0)[0]          # never its own positive


@pytest.mark.parametrize("backend", BACKENDS)
def test_ngram_by_hand(tmp_path, backend):
    path = _log(tmp_path, [[1, 2, 3, 4], [2, 3, 4, 5], [9], [4, 3, 2, 1]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="ngram", ngram_n=2, min_sim=0.0,
                        split="none", backend=backend, quiet=True)
    assert _score(out, 0, 1) == pytest.approx(2 / 4)      # {12,23,34} vs {23,34,45}
    assert _score(out, 0, 3) == 0.0                       # reversed: no shared bigram
    assert len(simmine.open(out).weak(2)[0]) == 0         # shorter than n: similarity 0 with everything


@pytest.mark.parametrize("backend", BACKENDS)
def test_levenshtein_by_hand(tmp_path, backend):
    path = _log(tmp_path, [[1, 2, 3, 4], [1, 3, 4], [4, 3, 2, 1], [5, 6, 7, 8, 9]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="levenshtein", min_sim=0.0, split="none",
                        backend=backend, quiet=True)
    assert _score(out, 0, 1) == pytest.approx(1 - 1 / 4)  # one deletion
    assert _score(out, 0, 2) == pytest.approx(1 - 4 / 4)  # d(1234, 4321) = 4 → 0
    assert _score(out, 0, 3) == pytest.approx(0.0)        # d = 5 = max length


@pytest.mark.parametrize("backend", BACKENDS)
def test_levenshtein_long_sequences(tmp_path, backend):
    """Histories longer than 64 leave the bit-parallel path; both paths agree with the definition."""
    rng = np.random.default_rng(0)
    hists = [rng.integers(0, 6, size=int(rng.integers(60, 90))).tolist() for _ in range(6)]
    path = _log(tmp_path, hists)
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="levenshtein", min_sim=0.0, split="none",
                        max_len=100, backend=backend, quiet=True)
    from naive import similarity

    for i in range(6):
        for j in range(6):
            if i != j:
                assert _score(out, i, j) == pytest.approx(float(similarity("levenshtein", hists[i], hists[j])),
                                                          abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tfidf_by_hand(tmp_path, backend):
    hists = [[1, 1, 2], [1, 3], [2, 3, 3], [4]]
    path = _log(tmp_path, hists)
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="tfidf", min_sim=0.0, split="none",
                        backend=backend, quiet=True)
    n = 4
    df = {1: 2, 2: 2, 3: 2, 4: 1}
    w = [{v: hist.count(v) * math.log(n / df[v]) for v in set(hist)} for hist in hists]

    def cos(a, b):
        dot = sum(w[a][v] * w[b].get(v, 0) for v in w[a])
        return dot / math.sqrt(sum(x * x for x in w[a].values())) / math.sqrt(sum(x * x for x in w[b].values()))

    assert _score(out, 0, 1) == pytest.approx(cos(0, 1), abs=1e-6)
    assert _score(out, 0, 2) == pytest.approx(cos(0, 2), abs=1e-6)
    assert _score(out, 1, 2) == pytest.approx(cos(1, 2), abs=1e-6)
    assert _score(out, 3, 0) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_tfidf_zero_vector(tmp_path, backend):
    """An item in every history has idf 0; a history made only of it is a zero vector: similarity 0."""
    path = _log(tmp_path, [[1], [1, 2], [1, 2, 3]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="tfidf", min_sim=0.0, split="none",
                        backend=backend, quiet=True)
    assert len(simmine.open(out).weak(0)[0]) == 0
    assert _score(out, 1, 2) > 0


def test_metric_aliases():
    from simmine.metrics import resolve_metric

    assert resolve_metric("TF-IDF").name == "tfidf"
    assert resolve_metric("edit").name == "levenshtein"
    with pytest.raises(simmine.InputError):
        resolve_metric("cosinus")


@pytest.mark.parametrize("presorted", [False, True])
def test_best_first_is_the_three_key_order(presorted):
    """The one order of candidates (row, score descending, column): each fast path equals a three-key lexsort,
    -0.0 tying with 0.0, negative and tiny scores included; first_k keeps each row's first k."""
    from simmine.csr import best_first, best_k_per_row, first_k

    rng = np.random.default_rng(0)
    values = np.array([-2.5, -0.0, 0.0, 1e-30, -1e-30, 0.5, 0.5, 3.0, 1e30, -np.inf], dtype=np.float32)
    for trial in range(200):
        rows, cols = np.sort(rng.integers(0, 20, size=300)), rng.integers(0, 50, size=300)
        _, first = np.unique(rows * 100 + cols, return_index=True)
        rows, cols = rows[first], cols[first]
        if not presorted:
            shuffle = rng.permutation(len(rows))
            rows, cols = rows[shuffle], cols[shuffle]
        scores = rng.choice(values, size=len(rows))
        want = np.lexsort((cols, -scores.astype(np.float64), rows))
        assert np.array_equal(best_first(rows, cols, scores), want), trial
        assert np.array_equal(best_first(rows, cols, scores.astype(np.float64)), want), trial
        k = rng.integers(0, 6, size=20)
        keep, counts = first_k(rows[want], k, 20)
        for r in range(20):
            assert keep[rows[want] == r].sum() == counts[r] == min(k[r], int((rows == r).sum()))
            assert keep[rows[want] == r][:counts[r]].all()
    c = rng.integers(0, 9, size=(4, 6))
    s = rng.choice(values, size=(4, 6))
    got_c, got_s = best_k_per_row(c, s, 3)
    for r in range(4):
        order = np.lexsort((c[r], -s[r].astype(np.float64)))[:3]
        assert got_c[r].tolist() == c[r][order].tolist() and np.array_equal(got_s[r], s[r][order])
