"""simmine.recbole against RecBole itself: row <-> seq_id mapping, positives recomputed from RecBole's own
tensors by plain Python sets, the contrastive terms against slow formulas, FEARec's sampling distribution
against its own loop, and short real trainings. Skipped where RecBole (which needs numpy<2) is missing."""
import math
import os
import random
from types import SimpleNamespace

import numpy as np
import pytest

sr = pytest.importorskip("simmine.recbole", exc_type=ImportError)
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import FEARec, SASRec  # noqa: E402

from simmine.torch import PositiveSampler  # noqa: E402

BACKEND = os.environ.get("SIMMINE_TEST_BACKEND")  # None: simmine's automatic choice
SMALL = {"simmine_backend": BACKEND, "load_col": None, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
         "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 8,
         "train_batch_size": 64, "eval_batch_size": 256, "train_neg_sample_args": None, "state": "ERROR",
         "show_progress": False, "epochs": 1, "seed": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A generated atomic dataset: 60 users over 25 items, with users sharing whole prefixes (equal histories
    with equal targets, FEARec's rejection case) and a few repeated items."""
    root = tmp_path_factory.mktemp("recbole")
    rng = random.Random(7)
    lines = []
    for u in range(60):
        common = [1, 2, 3] if u % 4 == 0 else []
        seq = common + [rng.randint(1, 25) for _ in range(rng.randint(3, 14))]
        lines.append(f"u{u} " + " ".join(f"i{x}" for x in seq))
    src = root / "tiny.txt"
    src.write_text("\n".join(lines) + "\n")
    sr.lines_to_atomic(str(src), str(root / "data"), "tiny")
    return {"data_path": str(root / "data"), "cache": str(root / "cache"), "checkpoint_dir": str(root / "saved")}


def _prepare(model_class, dataset, extra):
    config = Config(model=model_class, dataset=dataset, config_dict=dict(SMALL, **extra))
    train, valid, test = data_preparation(config, create_dataset(config))
    return config, train, valid, test


def _jaccard(a, b):
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


def test_rows_map_to_anchors_and_positives_match_an_oracle(tmp_path):
    config, train, _, _ = _prepare(SASRec, "ml-100k", {"data_path": sr.trainer.bundled_data_path(),
                                                       "MAX_ITEM_LIST_LENGTH": 50})
    ds = train.dataset
    rp = sr.attach_positives(ds, cache=str(tmp_path), metric="jaccard", k=5, backend=BACKEND)
    inter = ds.inter_feat
    users, items = inter["user_id"].numpy(), inter["item_id"].numpy()
    lists, lens = inter["item_id_list"].numpy(), inter["item_length"].numpy()
    seq = inter[sr.positives.SEQ_ID].numpy()
    assert sorted(seq.tolist()) == list(range(len(seq))) == list(range(len(rp)))
    # seq_ids: each user's rows consecutive, then t ascending: row s+1 of a user is row s's history + target
    order = np.argsort(seq)
    u_sorted = users[order]
    runs = u_sorted[np.r_[True, u_sorted[1:] != u_sorted[:-1]]]
    assert len(runs) == len(np.unique(users))
    for a, b in zip(order[:-1].tolist(), order[1:].tolist()):
        if users[a] == users[b]:
            assert lists[b, :lens[b]].tolist() == (lists[a, :lens[a]].tolist() + [items[a]])[-50:]
        else:
            assert lens[b] == 1
    hist = [set(lists[r, :lens[r]].tolist()) for r in range(len(seq))]
    rng = np.random.default_rng(0)
    for r in rng.choice(len(seq), 12, replace=False).tolist():
        s = int(seq[r])
        other = users != users[r]
        # weak: the top-5 Jaccard among other users' rows, recomputed with Python sets from RecBole's tensors
        scores = np.array([_jaccard(hist[r], hist[c]) if other[c] else -1.0 for c in range(len(seq))])
        top = np.sort(scores)[::-1][:5]
        nbrs, got = rp.positives.weak(s)
        assert np.allclose(np.sort(got)[::-1], top, atol=1e-6)
        rows = rp.row_of_seq[nbrs.astype(np.int64)]
        assert np.allclose(scores[rows], got, atol=1e-6)
        # strong: every other user's row with the same target
        want = sorted(seq[(items == items[r]) & other].tolist())
        assert sorted(rp.positives.strong(s).tolist()) == want


def test_windows_cover_every_row_once(tiny):
    config, train, _, _ = _prepare(SASRec, "tiny", tiny)
    rp = sr.attach_positives(train.dataset, cache=tiny["cache"], k=3, backend=BACKEND)
    loader = sr.every_position_loader(train)
    w = loader._dataset.inter_feat
    ids, nxt = w["simmine_seq_ids"].numpy(), w["simmine_targets"].numpy()
    inputs, lens = w["item_id_list"].numpy(), w["item_length"].numpy()
    real = ids >= 0
    assert sorted(ids[real].tolist()) == list(range(len(rp)))
    assert (real.sum(1) == lens).all()
    targets, hist, hist_len = rp.targets.numpy(), rp.hist.numpy(), rp.hist_len.numpy()
    for row, col in zip(*np.nonzero(real)):
        s = ids[row, col]
        assert nxt[row, col] == targets[s]
        seen = inputs[row, :col + 1]  # what the causal state at col sees: a suffix of the anchor's history
        assert hist[s, :hist_len[s]][-len(seen):].tolist() == seen.tolist()


def _slow_rcl(h, ks, kw, score, ms, mw, sim, tau, eps):
    b = len(h)
    total = 0.0
    for u in range(b):
        def nce(keys, valid, weights):
            num = weights[u] * math.exp(float(h[u] @ keys[u]) / tau)
            den = sum(weights[c] * math.exp(float(h[u] @ keys[c]) / tau) for c in range(b) if valid[c] or c == u)
            return -math.log(num / den)
        pair = nce(ks, ms, [1.0] * b) if ms[u] else 0.0
        weights = [max(score[u], eps) if c == u else max(float(sim[u][c]), eps) for c in range(b)]
        weak = nce(kw, mw, weights) if mw[u] else 0.0
        if ms[u] and mw[u]:
            weak = max(weak, pair)
        total += pair + weak
    return total / b


def _slow_duorec(z, p, mask, tau):
    views = torch.cat((z, p))
    keep = mask.repeat(2)
    rows = []
    for r in range(len(views)):
        if not keep[r]:
            continue
        pos = (r + len(z)) % len(views)
        den = sum(math.exp(float(views[r] @ views[c]) / tau) for c in range(len(views)) if c != r and keep[c])
        rows.append(-math.log(math.exp(float(views[r] @ views[pos]) / tau) / den))
    return sum(rows) / len(rows)


@pytest.mark.parametrize("kind", ["rcl", "duorec"])
def test_term_matches_the_slow_formula(tiny, kind):
    cls = sr.with_contrastive(SASRec, kind=kind, temperature=2.0, k=3, cache=tiny["cache"], backend=BACKEND)
    config, train, _, _ = _prepare(cls, "tiny", tiny)
    model = cls(config, train.dataset)
    model.eval()
    model.set_epoch(3)
    rp = model.simmine
    anchors = torch.arange(0, len(rp), max(1, len(rp) // 24))
    with torch.no_grad():
        h = model.forward(rp.hist[anchors], rp.hist_len[anchors])
        got = float(model.contrastive_term(anchors, h))
        sampler = PositiveSampler(rp.positives, seed=0)
        sampler.set_epoch(3)
        pb = sampler.sample(anchors)
        ks = model.forward(rp.hist[pb.strong], rp.hist_len[pb.strong])
        kw = model.forward(rp.hist[pb.weak], rp.hist_len[pb.weak])
    if kind == "duorec":
        want = _slow_duorec(h, ks, pb.strong_mask, 2.0)
    else:
        sets = [rp.hist[i, :rp.hist_len[i]].tolist() for i in range(len(rp))]
        sim = [[_jaccard(sets[a], sets[c]) for c in pb.weak.tolist()] for a in anchors.tolist()]
        want = _slow_rcl(h, ks, kw, pb.weak_score.tolist(), pb.strong_mask.tolist(), pb.weak_mask.tolist(), sim,
                         2.0, 1e-3)
    assert got == pytest.approx(want, rel=1e-4)


def test_placebo_draws_uniform_other_anchors(tiny):
    cls = sr.with_contrastive(SASRec, kind="random", k=3, cache=tiny["cache"], backend=BACKEND)
    config, train, _, _ = _prepare(cls, "tiny", tiny)
    model = cls(config, train.dataset)
    n = len(model.simmine)
    picks = []
    for epoch in range(300):
        model.set_epoch(epoch)
        strong, _, weak, _, _ = model._draw(torch.arange(n))
        assert (strong != torch.arange(n)).all() and (weak != torch.arange(n)).all()
        picks.append(strong)
    counts = np.bincount(torch.cat(picks).numpy(), minlength=n)
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def _fearec_loop(index, lists, targets, row):
    """FEARec.calculate_loss's sampling loop (RecBole 1.2.1) for one row, on FEARec's own index."""
    remaining = index[targets[row]].copy()
    while len(remaining) > 0:
        sample = random.choice(remaining)
        remaining = remaining[remaining != sample]
        if not torch.equal(lists[row], lists[sample]) or len(remaining) == 0:
            return int(sample)


def test_fearec_sampling_has_fearecs_distribution(tiny):
    config, train, _, _ = _prepare(SASRec, "tiny", tiny)
    ds = train.dataset
    index = FEARec.get_same_item_index(SimpleNamespace(ITEM_ID="item_id"), ds)
    sampler = sr.SameTargetSampler(ds, seed=0, cache=tiny["cache"], backend=BACKEND)
    lists, targets = ds.inter_feat["item_id_list"], ds.inter_feat["item_id"].numpy()
    keys = [tuple(r) for r in lists.numpy().tolist()]
    groups = {}
    for r, t in enumerate(targets.tolist()):
        groups.setdefault(t, []).append(r)
    rows = [r for r in range(len(targets)) if len(groups[targets[r]]) > 1]
    dup = [r for r in rows if sum(keys[c] == keys[r] for c in groups[targets[r]]) > 1]
    assert dup, "the generated log should have equal histories with equal targets"
    rows = (dup + rows)[:40]
    random.seed(0)
    draws = 400
    ours = np.stack([sampler.sample(np.array(rows), epoch) for epoch in range(draws)])
    for j, r in enumerate(rows):
        theirs = [_fearec_loop(index, lists, targets, r) for _ in range(draws)]
        support = {c for c in groups[targets[r]] if keys[c] != keys[r]} or set(groups[targets[r]])
        assert set(ours[:, j].tolist()) <= support and set(theirs) <= support
        a = np.bincount(ours[:, j], minlength=len(targets)) / draws
        b = np.bincount(theirs, minlength=len(targets)) / draws
        assert 0.5 * np.abs(a - b).sum() < 0.2 + 0.6 / math.sqrt(1 + draws / len(support))


@pytest.mark.parametrize("options", [
    {"contrastive": "rcl"}, {"contrastive": "duorec"}, {"contrastive": "random"},
    {"every_position": True}, {"every_position": True, "contrastive": "rcl", "cl_logits": "cosine"},
    {"contrastive": "rcl", "cl_relative": "clamp", "cl_weak_weights": "uniform", "cl_key_view": "full",
     "cl_anchor_pass": "shared", "cl_false_negatives": True, "simmine_metric": "tfidf"},
])
def test_short_training(tiny, options):
    cfg = dict(SMALL, data_path=tiny["data_path"], checkpoint_dir=tiny["checkpoint_dir"],
               simmine_cache=tiny["cache"], simmine_k=3, **options)
    result = sr.run("SASRec", "tiny", config_dict=cfg)
    assert len(result["epoch_seconds"]) == 1
    assert 0.0 <= result["test"]["ndcg@10"] <= 1.0
    if options.get("every_position"):
        assert result["train_rows"] < 60 * 2


def test_fearec_trains_with_served_sampling(tiny):
    cfg = dict(SMALL, data_path=tiny["data_path"], checkpoint_dir=tiny["checkpoint_dir"],
               simmine_cache=tiny["cache"], n_layers=2)  # FEARec divides by n_layers - 1
    result = sr.run("FEARec", "tiny", config_dict=cfg)
    assert 0.0 <= result["test"]["ndcg@10"] <= 1.0


def test_command_line(tiny, capsys):
    from simmine.recbole.__main__ import main

    args = ["--model", "SASRec", "--dataset", "tiny", "--every-position", "--contrastive", "duorec",
            "--data_path", tiny["data_path"], "--checkpoint_dir", tiny["checkpoint_dir"], "--epochs", "1",
            "--simmine_cache", tiny["cache"], "--MAX_ITEM_LIST_LENGTH", "8", "--hidden_size", "16",
            "--inner_size", "32", "--train_neg_sample_args", "None", "--state", "ERROR", "--load_col", "None"]
    if BACKEND:
        args += ["--simmine_backend", BACKEND]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test result" in out and "ndcg@10" in out


def test_cache_is_keyed_by_rows_and_parameters(tiny):
    config, train, _, _ = _prepare(SASRec, "tiny", tiny)
    ds = train.dataset
    a = sr.attach_positives(ds, cache=tiny["cache"], k=3, backend=BACKEND).path
    assert sr.attach_positives(ds, cache=tiny["cache"], k=4, backend=BACKEND).path != a
    ds.simmine_positives = None
    assert sr.attach_positives(ds, cache=tiny["cache"], k=3, backend=BACKEND).path == a
    assert os.path.exists(os.path.join(a, "manifest.json"))


def test_draws_depend_on_seed_and_epoch_only(tiny):
    cls = sr.with_contrastive(SASRec, kind="rcl", k=3, cache=tiny["cache"], backend=BACKEND)
    config, train, _, _ = _prepare(cls, "tiny", tiny)
    a, b = cls(config, train.dataset), cls(config, train.dataset)
    anchors = torch.arange(len(a.simmine))
    a.train()  # RecBole's own Trainer calls train() once per epoch: that is epoch 0, then 1
    b.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(a._draw(anchors)[:3], b._draw(anchors)[:3]))
    weak_0 = a._draw(anchors)[2]
    a.eval()
    a.train()
    assert a.simmine_epoch == 1 and not torch.equal(a._draw(anchors)[2], weak_0)
    half = anchors[::2]  # a draw does not depend on the batch it is in
    assert torch.equal(a._draw(half)[2], a._draw(anchors)[2][::2])
