"""simmine.torch: sampler distribution and determinism, DataLoader workers, resume, loss, batch similarity."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import simmine  # noqa: E402
from simmine.torch import (AnchorSampler, PositiveSampler, RelativeContrastiveLoss, WithPositives,  # noqa: E402
                           batch_similarity, false_negatives)
from naive import similarity  # noqa: E402


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return simmine.build(metric="jaccard", k=8, out=str(tmp_path_factory.mktemp("t") / "o"), quiet=True)


def test_weak_frequencies_follow_scores_and_strong_is_uniform(build):
    pos = simmine.open(build)
    anchor = next(i for i in range(len(pos)) if len(pos.weak(i)[0]) == 8 and len(pos.strong(i)) >= 3)
    nbrs, scores = pos.weak(anchor)
    sampler = PositiveSampler(pos, seed=123)
    weak_counts, strong_counts = {}, {}
    draws = 6000
    for epoch in range(draws):
        sampler.set_epoch(epoch)
        pb = sampler.sample(torch.tensor([anchor]))
        weak_counts[int(pb.weak[0])] = weak_counts.get(int(pb.weak[0]), 0) + 1
        strong_counts[int(pb.strong[0])] = strong_counts.get(int(pb.strong[0]), 0) + 1
        assert pb.weak_score[0] == scores[nbrs.tolist().index(int(pb.weak[0]))]
    expected = scores / scores.sum() * draws
    chi2 = sum((weak_counts.get(int(j), 0) - e) ** 2 / e for j, e in zip(nbrs, expected))
    assert chi2 < 24.3  # chi-square, 7 degrees of freedom, p = 0.001
    strong = pos.strong(anchor)
    assert set(strong_counts) == set(strong.tolist())
    e = draws / len(strong)
    assert sum((c - e) ** 2 / e for c in strong_counts.values()) < 10.83 + 3 * len(strong)


def test_determinism_batch_independence_and_epochs(build):
    sampler = PositiveSampler(simmine.open(build), seed=7)
    sampler.set_epoch(2)
    batch = torch.arange(0, 200)
    first, again = sampler.sample(batch), sampler.sample(batch)
    assert torch.equal(first.weak, again.weak) and torch.equal(first.strong, again.strong)
    single = sampler.sample(torch.tensor([57]))
    assert single.weak[0] == first.weak[57] and single.strong[0] == first.strong[57]
    sampler.set_epoch(3)
    assert not torch.equal(sampler.sample(batch).weak, first.weak)
    other = PositiveSampler(build, seed=8)
    other.set_epoch(2)
    assert not torch.equal(other.sample(batch).weak, first.weak)


def test_masks_point_at_the_anchor(build):
    pos = simmine.open(build)
    sampler = PositiveSampler(pos)
    anchors = torch.arange(len(pos))
    pb = sampler.sample(anchors)
    no_strong = torch.tensor([len(pos.strong(i)) == 0 for i in range(len(pos))])
    assert torch.equal(~pb.strong_mask, no_strong)
    assert torch.equal(pb.strong[no_strong], anchors[no_strong])
    assert bool(pb.weak_mask.all())
    assert all(int(pb.strong[i]) in pos.strong(i).tolist() for i in range(0, len(pos), 50) if pb.strong_mask[i])


def test_dataloader_with_two_workers_matches_one_process(build):
    n = len(simmine.open(build))
    ds = WithPositives(torch.utils.data.TensorDataset(torch.arange(n)), build, seed=3)
    ds.set_epoch(1)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=2, shuffle=False)
    got = torch.cat([b["weak_index"] for b in loader])
    want = PositiveSampler(build, seed=3)
    want.set_epoch(1)
    assert torch.equal(got, want.sample(torch.arange(n)).weak)


def test_anchor_sampler_resumes_and_shards():
    s = AnchorSampler(103, seed=1, rank=0, world_size=1)
    s.set_epoch(4)
    it = iter(s)
    head = [next(it) for _ in range(40)]
    state = s.state_dict()
    resumed = AnchorSampler(103, seed=1, rank=0, world_size=1)
    resumed.load_state_dict(state)
    full = AnchorSampler(103, seed=1, rank=0, world_size=1)
    full.set_epoch(4)
    assert head + list(resumed) == list(full)
    ranks = [list(AnchorSampler(103, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 52 and set(ranks[0]) | set(ranks[1]) == set(range(103))
    sampler = PositiveSampler.__new__(PositiveSampler)
    sampler.seed = sampler.epoch = 0
    sampler.load_state_dict({"seed": 5, "epoch": 9, "path": "x"})
    assert (sampler.seed, sampler.epoch) == (5, 9)


def slow_rcl(h, ks, kw, ws, ms, mw, sim, tau, eps, ex_s=None, ex_w=None):
    """The formulas of the loss, one anchor at a time; ex_s / ex_w: pairs (u, c) left out of u's denominators."""
    b = len(h)
    total = 0.0
    out_s = (lambda u, c: c != u and ex_s is not None and bool(ex_s[u, c]))  # noqa: E731
    out_w = (lambda u, c: c != u and ex_w is not None and bool(ex_w[u, c]))  # noqa: E731
    for u in range(b):
        if ms[u]:
            keys = [c for c in range(b) if ms[c] and not out_s(u, c)]
            den = sum(math.exp(float(h[u] @ ks[c]) / tau) for c in keys)
            l_pair = -math.log(math.exp(float(h[u] @ ks[u]) / tau) / den)
        else:
            l_pair = 0.0
        term = l_pair if ms[u] else 0.0
        if mw[u]:
            s = lambda c: max(float(ws[u]) if c == u else float(sim[u, c]), eps)  # noqa: E731
            keys = [c for c in range(b) if mw[c] and not out_w(u, c)]
            den = sum(s(c) * math.exp(float(h[u] @ kw[c]) / tau) for c in keys)
            l_w = -math.log(s(u) * math.exp(float(h[u] @ kw[u]) / tau) / den)
            term += max(l_w, l_pair) if ms[u] else l_w
        total += term
    return total / b


def random_loss_inputs(g, b, p_strong, zero_below=0.0, d=5):
    """h, ks, kw [b, d], weak scores, strong and weak masks and sim [b, b] (entries below zero_below set to 0)."""
    h, ks, kw = (torch.randn(b, d, generator=g, dtype=torch.float64) * 0.5 for _ in range(3))
    sim = torch.rand(b, b, generator=g, dtype=torch.float64)
    sim[sim < zero_below] = 0.0
    ws = sim.diagonal().clone()
    ms = torch.rand(b, generator=g) < p_strong
    mw = torch.rand(b, generator=g) < 0.8
    return h, ks, kw, ws, ms, mw, sim


def slow_rcl_options(h, ks, kw, ws, ms, mw, sim, tau, eps, logits, relative, weak_weights):
    """RCL's released variants one anchor at a time: cosine logits, the clamp, uniform weights."""
    b = len(h)
    dot = (lambda x, y: float(x @ y) / (float(x.norm()) * float(y.norm())) if logits == "cosine" else float(x @ y))
    strong_min = min(dot(h[v], ks[v]) / tau for v in range(b) if ms[v]) if any(ms) else None
    total = 0.0
    for u in range(b):
        l_pair = 0.0
        if ms[u]:
            den = sum(math.exp(dot(h[u], ks[c]) / tau) for c in range(b) if ms[c])
            l_pair = -math.log(math.exp(dot(h[u], ks[u]) / tau) / den)
        term = l_pair
        if mw[u]:
            def logit(c):
                x = dot(h[u], kw[c]) / tau
                return min(x, strong_min) if relative == "clamp" and strong_min is not None else x

            def s(c):
                if weak_weights == "uniform":
                    return 1.0
                return max(float(ws[u]) if c == u else float(sim[u, c]), eps)

            den = sum(s(c) * math.exp(logit(c)) for c in range(b) if mw[c])
            l_w = -math.log(s(u) * math.exp(logit(u)) / den)
            term += l_w if relative == "clamp" or not ms[u] else max(l_w, l_pair)
        total += term
    return total / b


@pytest.mark.parametrize("logits", ["dot", "cosine"])
@pytest.mark.parametrize("relative", ["eq17", "clamp"])
@pytest.mark.parametrize("weak_weights", ["eq16", "uniform"])
def test_loss_options_equal_slow_formula(logits, relative, weak_weights):
    g = torch.Generator().manual_seed(11)
    h, ks, kw, ws, ms, mw, sim = random_loss_inputs(g, 7, p_strong=0.7, zero_below=0.3)
    loss_fn = RelativeContrastiveLoss(0.2, 1e-3, logits=logits, relative=relative, weak_weights=weak_weights)
    got = float(loss_fn(h, ks, kw, ws, ms, mw, sim))
    assert got == pytest.approx(slow_rcl_options(h, ks, kw, ws, ms, mw, sim, 0.2, 1e-3, logits, relative,
                                                 weak_weights), rel=1e-9)
    if (logits, relative, weak_weights) == ("dot", "eq17", "eq16"):  # the paper's formula is the default
        assert got == pytest.approx(slow_rcl(h, ks, kw, ws, ms, mw, sim, 0.2, 1e-3), rel=1e-9)


def slow_supcon(z, p, mask, tau, ex=None):
    """DuoRec's 2N InfoNCE one row at a time (rows of anchors with a positive)."""
    b = len(z)
    views = [(u, z[u]) for u in range(b)] + [(u, p[u]) for u in range(b)]
    total, rows = 0.0, 0
    for r, (u, x) in enumerate(views):
        if not mask[u]:
            continue
        pair = r + b if r < b else r - b
        den = 0.0
        for c, (v, y) in enumerate(views):
            if c == r or not mask[v] or (ex is not None and v != u and ex[u, v]):
                continue
            den += math.exp(float(x @ y) / tau)
        total += -math.log(math.exp(float(x @ views[pair][1]) / tau) / den)
        rows += 1
    return total / rows


@pytest.mark.parametrize("seed", range(3))
def test_supervised_contrastive_equals_slow_formula(seed):
    from simmine.torch import SupervisedContrastiveLoss

    g = torch.Generator().manual_seed(seed)
    b = 6
    z, p = (torch.randn(b, 4, generator=g, dtype=torch.float64) for _ in range(2))
    mask = torch.rand(b, generator=g) < 0.7
    mask[0] = True
    ex = torch.rand(b, b, generator=g) < 0.3
    for tau in (1.0, 0.3):
        loss_fn = SupervisedContrastiveLoss(tau)
        assert float(loss_fn(z, p, mask)) == pytest.approx(slow_supcon(z, p, mask, tau), rel=1e-9)
        assert float(loss_fn(z, p, mask, exclude=ex)) == pytest.approx(slow_supcon(z, p, mask, tau, ex), rel=1e-9)


def test_key_inputs_views():
    from simmine.torch import key_inputs

    hist = torch.tensor([[0, 0, 1, 2], [3, 4, 5, 6]])
    targets = torch.tensor([7, 8])
    ids = torch.tensor([1, 0])
    assert key_inputs(hist, ids).tolist() == [[3, 4, 5, 6], [0, 0, 1, 2]]
    assert key_inputs(hist, ids, targets, "full").tolist() == [[4, 5, 6, 8], [0, 1, 2, 7]]
    with pytest.raises(ValueError):
        key_inputs(hist, ids, targets, "suffix")


@pytest.mark.parametrize("seed", range(5))
def test_loss_equals_slow_formula(seed):
    g = torch.Generator().manual_seed(seed)
    h, ks, kw, ws, ms, mw, sim = random_loss_inputs(g, 7, p_strong=0.7, zero_below=0.3)
    for tau, eps in ((0.1, 1e-3), (0.5, 0.05)):
        got = RelativeContrastiveLoss(tau, eps)(h, ks, kw, ws, ms, mw, sim)
        assert float(got) == pytest.approx(slow_rcl(h, ks, kw, ws, ms, mw, sim, tau, eps), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_loss_with_excluded_pairs_equals_slow_formula(seed):
    g = torch.Generator().manual_seed(seed)
    b = 8
    h, ks, kw, ws, ms, mw, sim = random_loss_inputs(g, b, p_strong=0.8)
    ex_s, ex_w = torch.rand(b, b, generator=g) < 0.3, torch.rand(b, b, generator=g) < 0.3
    ex_s[0, 0] = ex_w[1, 1] = True  # the diagonal is never left out
    loss_fn = RelativeContrastiveLoss(0.2, 1e-3)
    got = loss_fn(h, ks, kw, ws, ms, mw, sim, exclude_strong=ex_s, exclude_weak=ex_w)
    assert float(got) == pytest.approx(slow_rcl(h, ks, kw, ws, ms, mw, sim, 0.2, 1e-3, ex_s, ex_w), rel=1e-9)
    assert float(got) != pytest.approx(float(loss_fn(h, ks, kw, ws, ms, mw, sim)), rel=1e-6)
    none = torch.zeros(b, b, dtype=torch.bool)
    assert float(loss_fn(h, ks, kw, ws, ms, mw, sim, none, none)) == float(loss_fn(h, ks, kw, ws, ms, mw, sim))


def test_false_negatives_marks_own_sequence_and_same_target():
    targets = torch.tensor([5, 6, 5, 7, 8])  # by seq_id
    anchors = torch.tensor([0, 1, 3])
    keys = torch.tensor([2, 3, 4])  # key 0 shares anchor 0's target, key 1 is anchor 3 itself
    got = false_negatives(anchors, keys, targets)
    assert got.tolist() == [[True, False, False], [False, False, False], [False, True, False]]


def test_weak_pair_inside_the_boundary_gets_no_gradient():
    """When L_w(u) < L_max(u), the max keeps L_max: h_u's gradient is that of its strong terms alone."""
    torch.manual_seed(0)
    b, d = 4, 6
    ks, kw = torch.randn(b, d, dtype=torch.float64), torch.randn(b, d, dtype=torch.float64)
    h = torch.randn(b, d, dtype=torch.float64)
    kw[0] = h[0] * 3  # anchor 0's weak key is much closer than its strong key
    sim = torch.full((b, b), 0.5, dtype=torch.float64)
    ms = mw = torch.ones(b, dtype=torch.bool)
    loss_fn = RelativeContrastiveLoss(0.5)

    def grad_h0(fn):
        x = h.clone().requires_grad_(True)
        fn(x).backward()
        return x.grad[0]

    from simmine.torch.loss import info_nce

    full = grad_h0(lambda x: loss_fn(x, ks, kw, sim.diagonal(), ms, mw, sim))
    strong_only = grad_h0(lambda x: 2 * info_nce(x @ ks.T / 0.5, ms)[0] / b)
    assert torch.allclose(full, strong_only)
    kw[0] = -h[0] * 3  # now the weak key is far: the weak term is active and moves h_0
    far = grad_h0(lambda x: loss_fn(x, ks, kw, sim.diagonal(), ms, mw, sim))
    assert not torch.allclose(far, grad_h0(lambda x: 2 * info_nce(x @ ks.T / 0.5, ms)[0] / b))


@pytest.mark.parametrize("metric, multi_hot", [("jaccard", True), ("jaccard", False), ("tfidf", True),
                                               ("ngram", True), ("ngram", False), ("levenshtein", True)])
def test_batch_similarity_matches_definitions(metric, multi_hot, monkeypatch):
    """Every metric against its definition; the set metrics both by the 0/1 matrix product and, past its
    size limit, by the sorted lookup."""
    import simmine.torch.similarity as similarity_module

    if not multi_hot:
        monkeypatch.setattr(similarity_module, "MULTI_HOT_MAX", 0)
    rng = np.random.default_rng(1)
    hists = [rng.integers(1, 8, size=int(rng.integers(1, 9))).tolist() for _ in range(12)]
    padded = torch.zeros(12, 10, dtype=torch.long)
    for u, hist in enumerate(hists):
        if u % 2:
            padded[u, :len(hist)] = torch.tensor(hist)          # right padding
        else:
            padded[u, 10 - len(hist):] = torch.tensor(hist)     # left padding
    n = len(hists)
    df = {v: sum(v in set(hh) for hh in hists) for v in range(1, 8)}
    idf = torch.tensor([0.0] + [math.log(n / df[v]) if df[v] else 0.0 for v in range(1, 8)], dtype=torch.float64)
    got = batch_similarity(padded, padded, metric, idf=idf, ngram_n=2, chunk=5)
    for u in range(n):
        for c in range(n):
            want = similarity(metric, hists[u], hists[c], n, df, 2)
            assert float(got[u, c]) == pytest.approx(float(want), abs=1e-6), (u, c)
    assert torch.equal(simmine.batch_similarity(padded, padded, metric, idf=idf), got)


def test_batch_similarity_large_ids_and_ngram_fallback():
    a = torch.tensor([[0, 2**40, 2**40 + 1, 7], [5, 6, 7, 8]])
    b = torch.tensor([[2**40, 2**40 + 1, 7, 0], [8, 7, 6, 5]])
    hists_a = [[2**40, 2**40 + 1, 7], [5, 6, 7, 8]]
    hists_b = [[2**40, 2**40 + 1, 7], [8, 7, 6, 5]]
    for metric, n in (("jaccard", 2), ("ngram", 2), ("ngram", 3)):
        got = batch_similarity(a, b, metric, ngram_n=n)
        for u in range(2):
            for c in range(2):
                assert float(got[u, c]) == pytest.approx(float(similarity(metric, hists_a[u], hists_b[c], n=n)))
