"""Every backend equals the reference backend on hypothesis-generated inputs, kernel by kernel."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simmine
from conftest import NATIVE
from simmine.backends import get_backend, reference
from simmine.metrics import prepare_features, resolve_metric
from simmine.anchors import SequenceSet

import pyarrow as pa


def _seqs(histories):
    lengths = [len(h) for h in histories]
    items = np.array([v for h in histories for v in h], dtype=np.int32)
    return SequenceSet(indptr=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), items=items,
                       item_values=pa.array(np.arange(100)), user_values=pa.array(np.arange(len(histories))),
                       target_codes=np.zeros(len(histories), np.int32), bucket_codes=None, bucket_labels=None,
                       n_users=len(histories), skipped=0)


histories_st = st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=70), min_size=2, max_size=14)


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=histories_st, k=st.integers(0, 15), min_score=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
       data=st.data())
def test_select_and_histogram_equal_reference(backend, metric, histories, k, min_score, data):
    be = get_backend(backend)
    tile = prepare_features(_seqs(histories), resolve_metric(metric), ngram_n=2).tile(np.arange(len(histories)))
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, len(histories) - 1), min_size=1))), dtype=np.int64)
    k_row = np.full(len(rows), k, dtype=np.int64)
    want = reference.select(tile, rows, k_row, min_score)
    got = be.select(tile, rows, k_row, min_score)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    want_pairs = sorted(zip(*[a.tolist() for a in reference.pairs(tile, rows, min_score)]))
    got_pairs = sorted(zip(*[a.tolist() for a in be.pairs(tile, rows, min_score)]))
    assert got_pairs == want_pairs
    hist_w = reference.histogram(tile, rows, -1)
    np.testing.assert_array_equal(be.histogram(tile, rows, -1), hist_w)
    prefix = int(np.flatnonzero(hist_w)[-1]) if hist_w.any() else 0
    np.testing.assert_array_equal(be.histogram(tile, rows, prefix), reference.histogram(tile, rows, prefix))


@pytest.mark.parametrize("backend", NATIVE)
def test_wide_tile_many_rows(backend):
    """Enough rows to spread over threads and blocks: identical to the reference."""
    rng = np.random.default_rng(5)
    hists = [rng.zipf(1.5, size=int(rng.integers(1, 30))).clip(max=80).tolist() for _ in range(150)]
    be = get_backend(backend)
    for metric in ("jaccard", "tfidf", "levenshtein"):
        tile = prepare_features(_seqs(hists), resolve_metric(metric)).tile(np.arange(150))
        rows = np.arange(150, dtype=np.int64)
        k_row = rng.integers(0, 40, size=150).astype(np.int64)
        for w, g in zip(reference.select(tile, rows, k_row, 0.0), be.select(tile, rows, k_row, 0.0)):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("lanes", [4, 8])
def test_levenshtein_alignment_lanes(lanes):
    """The C++ core aligns four (AVX2) or eight (AVX-512) candidates at once: both equal the reference."""
    from simmine import _native as native
    from simmine.backends import cpp

    if not cpp.available():
        pytest.skip("C++ core not built")
    rng = np.random.default_rng(11)
    hists = [rng.integers(0, 12, size=int(rng.integers(1, 65))).tolist() for _ in range(120)]
    tile = prepare_features(_seqs(hists), resolve_metric("levenshtein")).tile(np.arange(120))
    rows = np.arange(120, dtype=np.int64)
    k_row = rng.integers(1, 30, size=120).astype(np.int64)
    used = native.core.set_edit_lanes(lanes)
    try:
        if used != lanes:
            pytest.skip(f"this CPU aligns {used} at once")
        for w, g in zip(reference.select(tile, rows, k_row, 0.0), cpp.select(tile, rows, k_row, 0.0)):
            np.testing.assert_array_equal(g, w)
    finally:
        native.core.set_edit_lanes(0)


@pytest.mark.parametrize("backend", NATIVE)
def test_levenshtein_sequences_longer_than_a_word(backend):
    """Sequences over 64 items on either side (the bit-parallel pattern is the shorter one; two long ones take
    the dynamic programme): select, pairs and listed pairs equal the reference."""
    rng = np.random.default_rng(12)
    hists = [rng.integers(0, 15, size=int(rng.integers(1, 65) if rng.random() < 0.5 else rng.integers(65, 160))
                          ).tolist() for _ in range(90)]
    be = get_backend(backend)
    tile = prepare_features(_seqs(hists), resolve_metric("levenshtein")).tile(np.arange(90))
    rows = np.arange(90, dtype=np.int64)
    k_row = rng.integers(1, 20, size=90).astype(np.int64)
    for w, g in zip(reference.select(tile, rows, k_row, 0.0), be.select(tile, rows, k_row, 0.0)):
        np.testing.assert_array_equal(g, w)
    want = sorted(zip(*[a.tolist() for a in reference.pairs(tile, rows, 0.3)]))
    assert sorted(zip(*[a.tolist() for a in be.pairs(tile, rows, 0.3)])) == want
    ptr = np.arange(0, 91 * 7, 7, dtype=np.int64)[:91]
    cols = rng.integers(0, 90, size=90 * 7).astype(np.int64)
    np.testing.assert_array_equal(be.score_pairs(tile, rows, ptr, cols), reference.score_pairs(tile, rows, ptr, cols))


def test_available_backends_and_auto(monkeypatch):
    names = simmine.available_backends()
    assert "python" in names and names[-1] == "python"
    assert get_backend("auto").name == names[0]
    monkeypatch.setenv("SIMMINE_BACKEND", "python")
    assert get_backend().name == "python"


def test_unknown_or_missing_backend_raises(monkeypatch):
    with pytest.raises(simmine.InputError, match="unknown backend"):
        get_backend("fortran")
    import simmine._native as native

    monkeypatch.setattr(native, "core", None)
    with pytest.raises(simmine.InputError, match="not available"):
        get_backend("cpp")


def test_cpp_extension_required_in_ci():
    """CI installs with SIMMINE_REQUIRE_CPP=1: the C++ core must then be importable."""
    import os

    if os.environ.get("SIMMINE_REQUIRE_CPP"):
        assert "cpp" in simmine.available_backends()
    else:
        pytest.skip("SIMMINE_REQUIRE_CPP not set")


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("gain", [0.0, 0.5])
def test_dense_bitmap_path_equals_reference(backend, gain, monkeypatch):
    """Popular codes counted by bitmaps (forced here on a small tile) give the same selection and histogram."""
    import simmine.tiles as tiles

    monkeypatch.setattr(tiles, "DENSE_MIN_ROWS", 0)
    monkeypatch.setattr(tiles, "DENSE_WORD_GAIN", gain)
    rng = np.random.default_rng(9)
    hists = [(rng.zipf(1.3, size=int(rng.integers(1, 40))) % 150).tolist() for _ in range(120)]
    tile = prepare_features(_seqs(hists), resolve_metric("jaccard")).tile(np.arange(120))
    assert tile.dense_words >= 1
    be = get_backend(backend)
    rows = np.arange(120, dtype=np.int64)
    for k, min_score in ((5, 0.0), (119, 0.0), (119, 0.1), (10, 0.3)):
        k_row = np.full(120, k, dtype=np.int64)
        for w, g in zip(reference.select(tile, rows, k_row, min_score), be.select(tile, rows, k_row, min_score)):
            np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(be.histogram(tile, rows, -1), reference.histogram(tile, rows, -1))
    for w, g in zip(reference.pairs(tile, rows, 0.3), be.pairs(tile, rows, 0.3)):
        np.testing.assert_array_equal(np.sort(g), np.sort(w))


@pytest.mark.parametrize("backend", NATIVE)
def test_tfidf_bounded_path_equals_reference(backend, monkeypatch):
    """Popular codes scored from per-row lists instead of accumulated (forced on a small tile) change no
    selection or join: k·64 <= n, or a floor of at least 0.1, takes the bounded path. Some selected pairs
    share only popular codes, so the walk that scores them from those lists alone is exercised too."""
    import simmine.tiles as tiles

    monkeypatch.setattr(tiles, "HEAVY_MIN_ROWS", 0)
    monkeypatch.setattr(tiles, "HEAVY_FRACTION", 1 / 10)
    rng = np.random.default_rng(10)
    hists = [(rng.zipf(1.2, size=int(rng.integers(1, 40))) % 200).tolist() for _ in range(150)]
    tile = prepare_features(_seqs(hists), resolve_metric("tfidf")).tile(np.arange(150))
    assert tile.heavy is not None and tile.heavy.sum() >= 3
    be = get_backend(backend)
    rows = np.arange(150, dtype=np.int64)
    codes = np.split(tile.indices, tile.indptr[1:-1])
    light = [set(c[tile.heavy[c] == 0].tolist()) for c in codes]
    counts, nbrs, _ = reference.select(tile, rows, np.full(150, 10, dtype=np.int64), 0.0)
    anchor = np.repeat(rows, counts)
    assert any(not (light[i] & light[j]) for i, j in zip(anchor.tolist(), nbrs.tolist()))
    for k, min_score in ((1, 0.0), (2, 0.0), (10, 0.1), (149, 0.3), (5, 0.5)):
        k_row = np.full(150, k, dtype=np.int64)
        for w, g in zip(reference.select(tile, rows, k_row, min_score), be.select(tile, rows, k_row, min_score)):
            np.testing.assert_array_equal(g, w)
    for min_score in (0.1, 0.3):
        want = sorted(zip(*[a.tolist() for a in reference.pairs(tile, rows, min_score)]))
        assert sorted(zip(*[a.tolist() for a in be.pairs(tile, rows, min_score)])) == want


@pytest.mark.skipif(not simmine.backends.cpp.available(), reason="the C++ core is not built")
def test_code_order_is_a_stable_argsort():
    """The postings' counting sort orders entries by code, keeping entry order within a code."""
    from simmine import _native as native

    rng = np.random.default_rng(7)
    for vocab, n in ((1, 10), (5, 0), (37, 1000), (50_000, 20_000)):
        codes = rng.integers(0, vocab, size=n).astype(np.int32)
        assert np.array_equal(native.core.code_order(codes, vocab), np.argsort(codes, kind="stable"))


@pytest.mark.skipif(not simmine.backends.cpp.available(), reason="the C++ core is not built")
def test_unique_per_row_core_equals_one_sort(monkeypatch):
    """Each row's unique codes and counts by the core's counting passes equal the sort of row·span + code
    (empty rows, repeats, a single code, a wide vocabulary)."""
    from simmine import _native as native
    from simmine.csr import unique_per_row

    rng = np.random.default_rng(9)
    for rows, vocab, most in ((1, 1, 5), (50, 3, 9), (400, 60, 30), (300, 40_000, 12)):
        lengths = rng.integers(0, most + 1, size=rows)
        indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        codes = rng.integers(0, vocab, size=int(indptr[-1])).astype(np.int32)
        got = unique_per_row(indptr, codes)
        monkeypatch.setattr(native, "core", None)
        want = unique_per_row(indptr, codes)
        monkeypatch.undo()
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w)
