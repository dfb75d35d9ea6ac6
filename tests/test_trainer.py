"""examples/train_sasrec.py: the BCE objective's targets line up with the histories, the loss is SASRec's,
and a short run of each objective with and without RCL trains end to end."""
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


def test_bce_targets_are_the_histories_shifted_by_one(log, tmp_path):
    _, n_items, (hist, target, nxt), _, _ = trainer.load(_args(log, tmp_path))
    assert hist.shape == nxt.shape == (60, 20)
    assert torch.equal(nxt[:, -1], target)  # the last position predicts the anchor's target
    real = nxt[:, :-1] != 0
    assert torch.equal(nxt[:, :-1][real], hist[:, 1:][real])  # position p predicts the item at p + 1
    assert torch.equal(hist != 0, nxt != 0)  # both T[:-1] and T[1:] have |T| − 1 items
    assert int(nxt.max()) <= n_items


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


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_short_run_of_each_objective_with_and_without_rcl(log, tmp_path, loss):
    args = _args(log, tmp_path, "--loss", loss, "--epochs", "2")
    data = trainer.load(args)
    for rcl in (False, True):
        res = trainer.train(args, rcl, data)
        assert len(res["history"]) == 2
        test = res["best"]["test"]
        assert set(test) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
        assert all(0.0 <= v <= 1.0 for v in test.values())
        json.dumps(res)


def test_rcl_options_change_training_and_false_negatives_are_counted(log, tmp_path):
    data = trainer.load(_args(log, tmp_path))
    plain = trainer.train(_args(log, tmp_path, "--epochs", "2"), True, data)
    met = plain["anchors_meeting_false_negatives"]
    assert 0.0 < met["strong"] <= 1.0 and 0.0 < met["weak"] <= 1.0  # 60 users over 30 items: targets repeat
    valid = [h["valid"] for h in plain["history"]]
    for flags in (["--rcl-exclude"], ["--rcl-head"], ["--rcl-cosine", "--tau", "0.1"]):
        res = trainer.train(_args(log, tmp_path, "--epochs", "2", *flags), True, data)
        assert [h["valid"] for h in res["history"]] != valid, flags
        assert res["anchors_meeting_false_negatives"] == met  # same draws: the options change only the loss


def test_prefix_rows_are_simmine_prefix_anchors(log, tmp_path):
    """--prefixes trains on simmine's prefix anchors: row i is seq_id i, T[:t] → T[t] for every t >= 1."""
    args = _args(log, tmp_path, "--prefixes", "--epochs", "1")
    pos, n_items, (hist, target, nxt), valid, test = trainer.load(args)
    coded, _ = trainer._user_sequences(args)
    users = pos.sequences().column("user_id").to_pylist()
    positions = pos.positions()
    assert len(hist) == len(pos) == sum(len(s) - 3 for s in coded.values() if len(s) >= 4)
    for i in range(0, len(pos), 7):
        s = coded[users[i]]
        want = s[:positions[i]][-20:]
        assert hist[i][hist[i] != 0].tolist() == want and int(target[i]) == s[positions[i]]
    assert pos.manifest["params"]["anchors"] == "prefix" and pos.manifest["params"]["same_user"] == "exclude"
    res = trainer.train(args, True, (pos, n_items, (hist, target, nxt), valid, test))
    assert len(res["history"]) == 1
