"""Selection semantics (docs/selection.md): ties, ceil, global threshold, caps, zero exclusion."""
import numpy as np
import pytest

import simmine
from simmine.select import ceil_fraction, global_threshold, k_per_anchor, make_selection
from conftest import BACKENDS, load_weak
from test_metrics import _log


def test_ceil_is_exact_on_decimals():
    assert ceil_fraction(0.05, 20) == 1          # 0.05 * 20 is 1.0000000000000002 in binary floating point
    assert ceil_fraction(0.1, 30) == 3
    assert ceil_fraction(0.05, 21) == 2
    assert ceil_fraction(1.0, 7) == 7
    sel = make_selection(alpha=0.05)
    assert k_per_anchor(sel, np.array([20, 21, 0])).tolist() == [1, 2, 0]  # n_u − 1 = 20, 21, 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_break_by_seq_id(tmp_path, backend):
    # anchor 0 = {1,2}; anchors 1..4 each share exactly one item with it and have size 2: all score 1/3
    path = _log(tmp_path, [[1, 2], [1, 5], [2, 6], [1, 7], [2, 8]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="jaccard", k=2, split="none",
                        backend=backend, quiet=True)
    nbr, sc = simmine.open(out).weak(0)
    assert nbr.tolist() == [1, 2] and sc.tolist() == pytest.approx([1 / 3, 1 / 3])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="jaccard", alpha=0.5, split="none",
                        backend=backend, quiet=True)
    assert simmine.open(out).weak(0)[0].tolist() == [1, 2]        # ⌈0.5·4⌉ = 2, ties cut by seq_id


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_alpha_threshold_and_manifest(tmp_path, backend):
    path = _log(tmp_path, [[1, 2, 3], [1, 2, 3], [1, 2, 4], [5, 6], [5, 7], [9]])
    out = simmine.build(input=path, out=str(tmp_path / "o"), metric="jaccard", alpha=0.2, alpha_scope="global",
                        split="none", backend=backend, quiet=True)
    # P = 15 pairs, rank ⌈0.2·15⌉ = 3: scores 1.0 (0,1), 0.5 (0,2), 0.5 (1,2), 1/3 (3,4), rest 0 → τ = 0.5
    m = simmine.open(out).manifest
    assert m["tau"] == 0.5
    assert m["realised_fraction"] == pytest.approx(3 / 15)
    weak, _ = load_weak(out)
    assert weak[0][0].tolist() == [1, 2] and weak[2][0].tolist() == [0, 1] and len(weak[3][0]) == 0


def test_global_threshold_from_histograms():
    scores = np.float32([0.9, 0.5, 0.5, 0.5, 0.25, 0.1])
    bits = scores.view(np.uint32)
    high = np.bincount(bits >> 16, minlength=65536)

    def low(prefix):
        sel = bits[(bits >> 16) == prefix]
        return np.bincount(sel & 0xFFFF, minlength=65536)

    t = global_threshold(0.2, 10, high, low)        # rank 2 of 10 pairs (4 zeros)
    assert t.tau == 0.5 and t.pairs_at_or_above == 4
    t = global_threshold(0.9, 10, high, low)        # rank 9 lies among the zeros
    assert t.tau == 0.0 and t.pairs_at_or_above == 6
    assert global_threshold(0.5, 0, high[:0].copy(), low).tau is None


@pytest.mark.parametrize("flags,match", [
    (dict(), "exactly one"),
    (dict(alpha=0.1, k=3), "exactly one"),
    (dict(alpha=0.0), "alpha"),
    (dict(alpha=1.5), "alpha"),
    (dict(k=0), "--k"),
    (dict(k=-2), "--k"),
    (dict(min_sim=-0.1), "min-sim"),
    (dict(k=3, max_per_anchor=0), "max-per-anchor"),
    (dict(alpha=0.1, alpha_scope="bucket"), "alpha-scope"),
])
def test_bad_selection_flags(flags, match):
    with pytest.raises(simmine.InputError, match=match):
        make_selection(**flags)


def test_output_size_refusal(tmp_path):
    path = _log(tmp_path, [[1, 2], [1, 3], [1, 4]])
    with pytest.raises(simmine.InputError, match="--max-output-gb.*--k or --max-per-anchor.*--bucket-by"):
        simmine.build(input=path, out=str(tmp_path / "o"), metric="jaccard", min_sim=0.0, split="none",
                      max_output_gb=1e-9, quiet=True)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("seed", range(4))
def test_strong_groups_against_the_definition(seed):
    from simmine.engines.local import strong_groups, strong_pairs

    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 400))
    targets = rng.integers(0, 3 if seed % 2 else 40, size=n)
    buckets = rng.integers(0, 2, size=n) if seed > 1 else None
    owners = np.sort(rng.integers(0, n // 4, size=n))  # users: consecutive runs of anchors
    g = strong_groups(targets, buckets)
    heads = [int(g.members[g.offsets[x]]) for x in range(len(g.offsets) - 1)]
    assert heads == sorted(heads)  # groups in order of their first member
    total = {True: 0, False: 0}
    for i in range(n):
        same = [j for j in range(n) if targets[j] == targets[i] and (buckets is None or buckets[j] == buckets[i])]
        x = int(g.group[i])
        assert g.members[g.offsets[x]:g.offsets[x + 1]].tolist() == same
        total[False] += len(same) - 1
        total[True] += sum(owners[j] != owners[i] for j in same)
    assert strong_pairs(g, None) == total[False] and strong_pairs(g, owners) == total[True]
