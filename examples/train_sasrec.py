"""SASRec trained with cross-entropy over all items at every position (the strong baseline), with and without a
contrastive term over positives mined by simmine; full-ranking leave-one-out evaluation.

    python examples/train_sasrec.py --input ../shared/data/beauty.txt --variants base,duorec --seed 0 --out r.json

Protocol: per user, S[-1] is the test item and S[-2] the validation item; T = S[:-2] is training data. Each
user's T is cut from its end into windows of max-len + 1 items; one causal forward pass of a window trains
every position against every item (cross-entropy), which is prefix training (T[:t] → T[t] for every t >= 1)
at the cost of one pass per window. Evaluation ranks the held-out item against every item (no sampling), HR
and NDCG@5/10 on test at the epoch with the best validation NDCG@10 (early stopping after --patience epochs
without improvement).

The positives come from `simmine build --anchors prefix` (a user's own prefixes are never its positives): the
prefix anchor of window position j is the (user, t) whose target that position predicts. Each step picks one
position per window (--positions last: the last one; sampled: one uniformly, fresh each epoch) and adds, with
weight --lam:
- duorec: DuoRec's supervised contrastive loss (simmine.torch.SupervisedContrastiveLoss) between the
  anchor's representation and a same-target anchor's (a strong positive drawn by simmine's sampler);
- rcl: RCL's relative contrastive loss (simmine.torch.RelativeContrastiveLoss) over a strong and a weak
  positive, with its options (--logits, --relative, --weak-weights).
--anchor-pass separate encodes the anchor again (its own dropout, as DuoRec and RCL's code do); shared reuses
the recommendation pass. --key-view full encodes positives with their target appended (RCL's released code),
history without. The same seed gives every variant the same initialisation and window order.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import numpy as np
import torch
from torch import nn

import simmine
import simmine.anchors
import simmine.readers
from simmine.torch import (AnchorSampler, PositiveSampler, RelativeContrastiveLoss, SupervisedContrastiveLoss,
                           batch_similarity, key_inputs)


torch.backends.mha.set_fastpath_enabled(False)  # the inference fast path turns a fully masked padding row into NaN


class SASRec(nn.Module):
    """Self-attentive sequential recommender (Kang & McAuley 2018): causal self-attention over the last
    max_len items, left-padded with 0; a position's state scores every item by a dot product with the
    (shared) item embeddings."""

    def __init__(self, n_items: int, d: int = 64, max_len: int = 50, blocks: int = 2, heads: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, dim_feedforward=d, dropout=dropout, batch_first=True,
                                       norm_first=True) for _ in range(blocks))
        self.norm = nn.LayerNorm(d)
        self.register_buffer("causal", torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1))
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, seq: torch.Tensor, every_position: bool = False) -> torch.Tensor:
        """The last position's state [B, d], or every position's [B, L, d]. Sequences are left-padded and may
        be shorter than max_len (a batch trimmed to its longest): positions count from the right end, and
        padding is never attended to."""
        length = seq.shape[1]
        keep = (seq != 0).unsqueeze(-1).to(self.item.weight.dtype)
        positions = self.pos.weight[None, self.pos.num_embeddings - length:]
        x = self.item(seq) * math.sqrt(self.item.embedding_dim) + positions
        x = self.drop(x) * keep
        padding = torch.zeros(seq.shape, dtype=x.dtype, device=x.device).masked_fill(seq == 0, -1e9)
        for layer in self.layers:
            x = layer(x, src_mask=self.causal[:length, :length], src_key_padding_mask=padding) * keep
        return self.norm(x if every_position else x[:, -1])

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item.weight[1:].T  # item ids 1..n_items


def sampled_bce(model: SASRec, states: torch.Tensor, nxt: torch.Tensor, n_items: int,
                generator: torch.Generator) -> torch.Tensor:
    """SASRec's original objective: per non-padded position, −log σ(s·e_next) − log(1 − σ(s·e_neg)) with one
    uniformly drawn negative item, averaged over positions. states [B, L, d], nxt [B, L] (0 = padding)."""
    neg = torch.randint(1, n_items + 1, nxt.shape, generator=generator).to(nxt.device)
    pos_logit = (states * model.item(nxt)).sum(-1)
    neg_logit = (states * model.item(neg)).sum(-1)
    real = nxt != 0
    loss = nn.functional.softplus(-pos_logit) + nn.functional.softplus(neg_logit)
    return loss[real].mean()


def left_pad(seqs, max_len: int) -> torch.Tensor:
    out = torch.zeros(len(seqs), max_len, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        if len(s):
            out[i, max_len - len(s):] = torch.tensor(s)
    return out


# ---------------------------------------------------------------------------------------------- data
def _selection(args) -> dict:
    return {"k": args.k} if args.k else {"alpha": args.alpha}


def user_sequences(args):
    """Each user's whole sequence S (by user, in order of first appearance) with items coded 1..V, and the code
    of each item."""
    log = simmine.readers.read_log(args.input, args.format)
    built = simmine.anchors.build_sequences(log, split="none", max_len=10**9)
    full = {u: built.item_values.take(built.items[built.indptr[i]:built.indptr[i + 1]]).to_pylist() +
            [built.target_values[i].as_py()] for i, u in enumerate(built.user_values.to_pylist())}
    items = sorted({v for s in full.values() for v in s})
    code = {v: c + 1 for c, v in enumerate(items)}
    return {u: [code[v] for v in s] for u, s in full.items()}, code


def windows(train_seqs, max_len: int):
    """Every user's T cut from its end into windows of at most max_len + 1 items: (inputs [W, L], next items
    [W, L], the window's user, the position t in T of its first target), left-padded with 0."""
    xs, ys, owner, first_t = [], [], [], []
    for u, t_seq in enumerate(train_seqs):
        end = len(t_seq)
        while end > 1:
            begin = max(0, end - (max_len + 1))
            xs.append(t_seq[begin:end - 1])
            ys.append(t_seq[begin + 1:end])
            owner.append(u)
            first_t.append(begin + 1)
            end = begin + 1
    return left_pad(xs, max_len), left_pad(ys, max_len), torch.tensor(owner), torch.tensor(first_t)


def load(args):
    """simmine's prefix-anchor positives, the training windows with each position's anchor seq_id, every
    anchor's history (the keys' input) and the held-out tensors."""
    out = os.path.join(args.work, "positives")
    simmine.build(input=args.input, format=args.format, out=out, metric=args.metric, max_len=args.max_len,
                  anchors="prefix", quiet=True, backend=args.backend, **_selection(args))
    pos = simmine.open(out)
    coded, code = user_sequences(args)
    index = pos.anchor_index()
    whole = [coded[u] for u in index["users"].to_pylist()]  # users with anchors, in seq_id order
    train = [s[:-2] for s in whole]
    x, y, owner, first_t = windows(train, args.max_len)
    lengths = (x != 0).sum(1)
    pad = args.max_len - lengths
    cols = torch.arange(args.max_len)[None, :]
    t = first_t[:, None] + cols - pad[:, None]  # the position in T of each window position's target
    start = torch.from_numpy(index["start"][:-1])[owner][:, None]
    anchor_of = torch.where(y != 0, start + t - 1, torch.full_like(t, -1))  # prefix t of a user: start + t - 1
    positions = pos.positions()
    owners = np.repeat(np.arange(len(whole)), np.diff(index["start"]))
    hist = left_pad([train[u][:t_] for u, t_ in zip(owners.tolist(), positions.tolist())], args.max_len)
    targets = torch.tensor([train[u][t_] for u, t_ in zip(owners.tolist(), positions.tolist())])
    check = pos.sequences().column("target").to_pylist()
    assert all(code[v] == int(c) for v, c in zip(check, targets)), "anchors and training targets disagree"
    valid = (left_pad([s[:-2] for s in whole], args.max_len), torch.tensor([s[-2] for s in whole]))
    test = (left_pad([s[:-1] for s in whole], args.max_len), torch.tensor([s[-1] for s in whole]))
    return {"positives": pos, "n_items": len(code), "x": x, "y": y, "lengths": lengths, "anchor_of": anchor_of,
            "hist": hist,
            "targets": targets, "valid": valid, "test": test}


@torch.no_grad()
def evaluate(model, hist, target, batch=1024):
    model.eval()
    ranks = []
    device = model.item.weight.device
    for lo in range(0, len(hist), batch):
        s = model.scores(model(hist[lo:lo + batch].to(device)))
        true = s.gather(1, (target[lo:lo + batch].to(device) - 1)[:, None])
        ranks.append((s > true).sum(dim=1))
    r = torch.cat(ranks).double().cpu()
    out = {}
    for k in (5, 10):
        hit = r < k
        out[f"HR@{k}"] = float(hit.double().mean())
        out[f"NDCG@{k}"] = float(torch.where(hit, 1 / torch.log2(r + 2), torch.zeros_like(r)).mean())
    return out


# ---------------------------------------------------------------------------------------------- training
def contrast_positions(anchor_of: torch.Tensor, mode: str, seed: int, epoch: int) -> torch.Tensor:
    """One position per window whose target is an anchor: the last, or one drawn uniformly (fresh each epoch,
    deterministic for (seed, epoch))."""
    real = anchor_of >= 0
    last = real.shape[1] - 1 - torch.flip(real, [1]).int().argmax(1)
    if mode == "last":
        return last
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    u = torch.rand(len(anchor_of), generator=g)
    count = real.sum(1)
    first = real.shape[1] - count
    return torch.where(count > 0, first + (u * count).long().clamp_max(count - 1), last)


def contrastive_term(args, variant, model, states_or_h, batch, data, sampler, losses):
    """λ · (DuoRec's or RCL's loss) for one batch's chosen positions; returns (loss, sampler seconds)."""
    rows, p, column, x = batch  # p: the chosen position of each row in the trimmed batch x; column: in the window
    device = x.device
    anchors = data["anchor_of"][rows, column]
    t0 = time.perf_counter()
    pb = sampler.sample(anchors)
    spent = time.perf_counter() - t0
    if args.anchor_pass == "separate":
        h = model(x, every_position=True)[torch.arange(len(rows)), p.to(device)]
    else:
        h = states_or_h
    encode = (lambda ids: model(key_inputs(data["hist"], ids, data["targets"], args.key_view).to(device)))
    strong = encode(pb.strong)
    if variant == "duorec":
        return args.lam * losses["duorec"](h, strong, pb.strong_mask.to(device)), spent
    weak = encode(pb.weak)
    t0 = time.perf_counter()
    sim = batch_similarity(data["hist"][anchors], data["hist"][pb.weak], args.metric).to(device)
    spent += time.perf_counter() - t0
    masks = (pb.weak_score.to(device), pb.strong_mask.to(device), pb.weak_mask.to(device))
    return args.lam * losses["rcl"](h, strong, weak, *masks, sim), spent


def batches(ids: torch.Tensor, lengths: torch.Tensor, size: int, seed: int, epoch: int):
    """Batches of the epoch's shuffled windows, each of similar lengths so that trimming to the longest saves
    work: the shuffle is cut into pools of 50 batches, each pool sorted by length and cut into batches, and the
    batches are visited in a shuffled order (deterministic for seed and epoch)."""
    pool = 50 * size
    out = []
    for lo in range(0, len(ids), pool):
        part = ids[lo:lo + pool]
        part = part[torch.argsort(lengths[part], stable=True)]
        out += [part[a:a + size] for a in range(0, len(part), size)]
    order = torch.randperm(len(out), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return [out[i] for i in order.tolist()]


def train(args, variant: str, data) -> dict:
    torch.manual_seed(args.seed)
    negatives = torch.Generator().manual_seed(args.seed)
    device = torch.device(args.device)
    n_items = data["n_items"]
    model = SASRec(n_items, d=args.d, max_len=args.max_len, dropout=args.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = AnchorSampler(len(data["x"]), seed=args.seed)
    sampler = PositiveSampler(data["positives"], seed=args.seed)
    losses = {"duorec": SupervisedContrastiveLoss(args.tau, args.logits),
              "rcl": RelativeContrastiveLoss(args.tau, args.eps, args.logits, args.relative, args.weak_weights)}
    best, best_valid, history, stale = None, -1.0, [], 0
    sampler_s = step_s = 0.0
    started = time.perf_counter()
    for epoch in range(args.epochs):
        if args.time_limit and time.perf_counter() - started > args.time_limit:
            print(f"{variant} stopped by --time-limit after {epoch} epochs", flush=True)
            break
        model.train()
        order.set_epoch(epoch)
        sampler.set_epoch(epoch)
        ids = torch.tensor(list(order))
        chosen = contrast_positions(data["anchor_of"], args.positions, args.seed, epoch)  # per window id
        t_epoch = time.perf_counter()
        for rows in batches(ids, data["lengths"], args.batch, args.seed, epoch):
            t0 = time.perf_counter()
            width = int(data["lengths"][rows].max())  # left-padded: the batch's last `width` columns hold it all
            x, y = data["x"][rows, -width:].to(device), data["y"][rows, -width:].to(device)
            states = model(x, every_position=True)
            real = y != 0
            if args.loss == "bce":
                loss = sampled_bce(model, states, y, n_items, negatives)
            else:
                loss = nn.functional.cross_entropy(model.scores(states[real]), y[real] - 1)
            if variant != "base":
                p = chosen[rows] - (args.max_len - width)  # the chosen column in the trimmed batch
                h = states[torch.arange(len(rows)), p.to(device)]
                extra, spent = contrastive_term(args, variant, model, h, (rows, p, chosen[rows], x), data, sampler,
                                                losses)
                loss = loss + extra
                sampler_s += spent
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_s += time.perf_counter() - t0
        v = evaluate(model, *data["valid"])
        history.append({"epoch": epoch, "valid": v, "seconds": time.perf_counter() - t_epoch})
        print(f"{variant:6s} epoch {epoch:3d} valid NDCG@10 {v['NDCG@10']:.4f} HR@10 {v['HR@10']:.4f}"
              f" ({time.perf_counter() - t_epoch:.1f}s)", flush=True)
        if v["NDCG@10"] > best_valid:
            best_valid, stale = v["NDCG@10"], 0
            best = {"epoch": epoch, "valid": v, "test": evaluate(model, *data["test"])}
        else:
            stale += 1
            if stale >= args.patience:
                break
    return {"best": best, "history": history, "sampler_share_of_step": sampler_s / max(step_s, 1e-9),
            "seconds": time.perf_counter() - started}


VARIANTS = ("base", "duorec", "rcl")


def parse_args(argv=None) -> argparse.Namespace:
    """The run's settings from the command line (``argv``, default sys.argv[1:])."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--variants", default="base,duorec", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--loss", choices=("ce", "bce"), default="ce",
                    help="ce: cross-entropy over all items at every position; bce: SASRec's one sampled negative")
    ap.add_argument("--metric", default="jaccard", help="simmine metric of the weak positives")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--k", type=int, default=None, help="weak positives per anchor by count instead of --alpha")
    ap.add_argument("--lam", type=float, default=0.1, help="λ of L_rec + λ·L_contrastive")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--logits", choices=("dot", "cosine"), default="dot")
    ap.add_argument("--relative", choices=("eq17", "clamp"), default="eq17", help="rcl: Eq. 17 or the released clamp")
    ap.add_argument("--weak-weights", choices=("eq16", "uniform"), default="eq16")
    ap.add_argument("--eps", type=float, default=1e-3, help="rcl: floor of Eq. 16's similarity weights")
    ap.add_argument("--anchor-pass", choices=("separate", "shared"), default="separate")
    ap.add_argument("--key-view", choices=("history", "full"), default="history")
    ap.add_argument("--positions", choices=("sampled", "last"), default="sampled",
                    help="the window position each step contrasts")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds of training per variant, then stop")
    ap.add_argument("--backend", default=None, help="simmine backend for the positives (default: auto)")
    ap.add_argument("--epochs", type=int, default=200, help="at most")
    ap.add_argument("--patience", type=int, default=20, help="epochs without a better validation NDCG@10")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file for every variant's run")
    args = ap.parse_args(argv)
    bad = [v for v in args.variants.split(",") if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant {bad[0]} (choose from {', '.join(VARIANTS)})")
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        data = load(args)
        results = {v: train(args, v, data) for v in args.variants.split(",")}
    report = {"input": os.path.basename(args.input), "args": {k: v for k, v in vars(args).items() if k != "work"},
              "results": results}
    for name, res in results.items():
        t = res["best"]["test"]
        print(f"{name:6s} test (epoch {res['best']['epoch']}): " + "  ".join(f"{k} {v:.4f}" for k, v in t.items())
              + f"  sampler share of step {res['sampler_share_of_step']:.2%}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
