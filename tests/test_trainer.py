"""examples/train_sasrec.py: windows train every position once, each position maps to its prefix anchor, the
losses are SASRec's and the contrastive ones, and short runs of every variant train end to end."""
import importlib.util
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("train_sasrec", os.path.join(HERE, "..", "examples", "train_sasrec.py"))
trainer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainer)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """60 users over 30 items, 5 to 70 interactions each (some longer than max-len), as a lines file."""
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("log") / "log.txt"
    with open(path, "w") as f:
        for u in range(60):
            items = rng.zipf(1.3, size=int(rng.integers(5, 70))) % 30 + 1
            f.write(f"u{u} " + " ".join(map(str, items)) + "\n")
    return str(path)


def _args(log, work, *flags):
    """The trainer's own parser on a short CPU run's flags, plus the work folder main() would give."""
    backend = ["--backend", "cpp"] if trainer.simmine.backends.cpp.available() else []
    args = trainer.parse_args(["--input", log, "--k", "5", "--device", "cpu", "--epochs", "1", "--batch", "16",
                               "--dropout", "0.2", "--max-len", "20", *backend, *flags])
    args.work = str(work)
    return args


@pytest.fixture(scope="module")
def data(log, tmp_path_factory):
    return trainer.load(_args(log, tmp_path_factory.mktemp("w")))


def test_windows_train_every_position_once(log, tmp_path, data):
    coded, _ = trainer.user_sequences(_args(log, tmp_path))
    users = data["positives"].anchor_index()["users"].to_pylist()
    train = [coded[u][:-2] for u in users]
    x, y = data["x"], data["y"]
    assert int((y != 0).sum()) == sum(len(t) - 1 for t in train)  # every target position of every T, once
    real = y[:, :-1] != 0
    assert torch.equal(y[:, :-1][real], x[:, 1:][real])  # position p predicts the item at p + 1
    assert torch.equal(x != 0, y != 0)


def test_each_position_is_its_prefix_anchor(data):
    """The anchor of a window position has that position's target and the window's history before it."""
    pos = data["positives"]
    targets = data["targets"]
    x, y, anchor_of, hist = data["x"], data["y"], data["anchor_of"], data["hist"]
    for w in range(0, len(x), 5):
        for j in torch.nonzero(y[w] != 0).reshape(-1).tolist():
            a = int(anchor_of[w, j])
            assert int(targets[a]) == int(y[w, j])
            seen = x[w, :j + 1][x[w, :j + 1] != 0].tolist()
            assert hist[a][hist[a] != 0].tolist()[-len(seen):] == seen
    assert sorted(set(anchor_of[anchor_of >= 0].tolist())) == list(range(len(pos)))  # every anchor, once


def test_contrast_positions(data):
    last = trainer.contrast_positions(data["anchor_of"], "last", 0, 0)
    assert bool((last == data["x"].shape[1] - 1).all())
    drawn = trainer.contrast_positions(data["anchor_of"], "sampled", 0, 0)
    assert bool((data["anchor_of"][torch.arange(len(drawn)), drawn] >= 0).all())
    assert torch.equal(drawn, trainer.contrast_positions(data["anchor_of"], "sampled", 0, 0))
    assert not torch.equal(drawn, trainer.contrast_positions(data["anchor_of"], "sampled", 0, 1))


def test_sampled_bce_is_sasrec_loss_on_real_positions():
    torch.manual_seed(0)
    model = trainer.SASRec(9, d=8, max_len=4, dropout=0.0)
    states = torch.randn(2, 4, 8)
    nxt = torch.tensor([[0, 0, 3, 5], [1, 2, 9, 4]])
    loss = trainer.sampled_bce(model, states, nxt, 9, torch.Generator().manual_seed(7))
    neg = torch.randint(1, 10, nxt.shape, generator=torch.Generator().manual_seed(7))
    terms = []
    for b in range(2):
        for p in range(4):
            if nxt[b, p] == 0:
                continue
            pos = states[b, p] @ model.item.weight[nxt[b, p]]
            ng = states[b, p] @ model.item.weight[neg[b, p]]
            terms.append(-torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(ng)))
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_trimmed_batches_score_as_full_ones():
    """A batch trimmed to its longest sequence gives every position the state the full width gives."""
    torch.manual_seed(0)
    model = trainer.SASRec(9, d=8, max_len=6, dropout=0.0).eval()
    x = torch.tensor([[0, 0, 0, 1, 2, 3], [0, 0, 4, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(x, True)[:, -4:], model(x[:, -4:], True))


@pytest.mark.parametrize("flags", [["--variants", "base"], ["--variants", "base", "--loss", "bce"],
                                   ["--variants", "duorec"], ["--variants", "duorec", "--logits", "cosine",
                                                              "--tau", "0.2", "--anchor-pass", "shared"],
                                   ["--variants", "rcl"], ["--variants", "rcl", "--relative", "clamp",
                                                           "--weak-weights", "uniform", "--key-view", "full",
                                                           "--positions", "last"]], ids=" ".join)
def test_short_runs_of_every_variant(log, tmp_path, data, flags):
    args = _args(log, tmp_path, "--epochs", "2", *flags)
    res = trainer.train(args, args.variants, data)
    assert len(res["history"]) == 2
    test = res["best"]["test"]
    assert set(test) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
    assert all(0.0 <= v <= 1.0 for v in test.values())
    assert 0.0 <= res["sampler_share_of_step"] < 1.0
    json.dumps(res)
