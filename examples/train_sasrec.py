"""SASRec with and without RCL on positives mined by simmine, full-ranking evaluation (leave-one-out).

    python examples/train_sasrec.py --input ../shared/data/beauty.txt --epochs 40 --out rcl-beauty.json

Protocol: per user, S[-1] is the test item and S[-2] the validation item, T = S[:-2] is training data. By
default the training sample is the anchor of simmine's build (history T[:-1] → target T[-1]), one per user;
with --prefixes every prefix is one (T[:t] → T[t] for t ≥ 1, as RecBole-style SASRec and RCL's code train),
and simmine mines positives among all of them (simmine build --anchors prefix: a user's own prefixes are
never each other's positives). Cross-entropy over all items at the last position. Evaluation ranks the held-out item against
every item (no sampling; items of the history are not removed), HR@5/10 and NDCG@5/10 on test at the epoch
with the best validation NDCG@10.
With --loss bce the objective is SASRec's original one instead: at every position of the anchor's history
T[:-1], binary cross-entropy of the next item against one uniformly sampled negative item.
With the rcl variant, each step also draws one strong and one weak positive per anchor
(simmine.torch.PositiveSampler), encodes them with the same model (dropout on, as DuoRec does) and adds
λ·RelativeContrastiveLoss.
Options of that term (the default is the plain loss on the final states): --rcl-head compares in the output of a
2-layer MLP head, --rcl-cosine L2-normalises first, --rcl-exclude leaves in-batch false negatives (a key that is
the anchor's own sequence or shares its target) out of the denominators. Either way the run reports the share of
anchors that met such a key.
The same seed gives both runs the same initialisation and batch order.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import torch
from torch import nn

import simmine
from simmine.torch import AnchorSampler, PositiveSampler, RelativeContrastiveLoss, batch_similarity, false_negatives


class SASRec(nn.Module):
    """Self-attentive sequential recommender (Kang & McAuley 2018): causal self-attention over the last
    max_len items, left-padded with 0; the last position's state scores every item by a dot product with
    the (shared) item embeddings."""

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
        """The last position's state [B, d], or every position's [B, L, d]."""
        keep = (seq != 0).unsqueeze(-1).to(self.item.weight.dtype)
        x = self.item(seq) * math.sqrt(self.item.embedding_dim) + self.pos.weight[None, : seq.shape[1]]
        x = self.drop(x) * keep
        for layer in self.layers:
            x = layer(x, src_mask=self.causal[: seq.shape[1], : seq.shape[1]]) * keep
        return self.norm(x if every_position else x[:, -1])

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item.weight[1:].T  # item ids 1..n_items


def sampled_bce(model: SASRec, states: torch.Tensor, nxt: torch.Tensor, n_items: int,
                generator: torch.Generator) -> torch.Tensor:
    """SASRec's objective: per non-padded position, −log σ(s·e_next) − log(1 − σ(s·e_neg)) with one
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


def _selection(args) -> dict:
    return {"k": args.k} if args.k else {"alpha": args.alpha}


def _positives(args, path: str, **kw):
    """simmine's build of ``path`` with the run's metric, selection and backend, opened."""
    out = os.path.join(args.work, "positives")
    simmine.build(input=path, out=out, metric=args.metric, max_len=args.max_len, quiet=True, backend=args.backend,
                  **_selection(args), **kw)
    return simmine.open(out)


def _user_sequences(args):
    """Each user's whole sequence S (by user, in order of first appearance) with items coded 1..V, and the code
    of each item."""
    log = simmine.sequences.read_log(args.input, args.format)
    built = simmine.sequences.build_sequences(log, split="none", max_len=10**9)
    full = {u: built.item_values.take(built.items[built.indptr[i]:built.indptr[i + 1]]).to_pylist() +
            [built.target_values[i].as_py()] for i, u in enumerate(built.user_values.to_pylist())}
    items = sorted({v for s in full.values() for v in s})
    code = {v: c + 1 for c, v in enumerate(items)}
    return {u: [code[v] for v in s] for u, s in full.items()}, code


def _held_out(whole, max_len: int):
    """(valid, test) tensors: S[:-2] → S[-2] and S[:-1] → S[-1] per sequence."""
    return ((left_pad([s[:-2] for s in whole], max_len), torch.tensor([s[-2] for s in whole])),
            (left_pad([s[:-1] for s in whole], max_len), torch.tensor([s[-1] for s in whole])))


def load(args):
    """Builds the positives with simmine and the train/valid/test tensors with items coded 1..V."""
    if args.prefixes:
        return load_prefixes(args)
    pos = _positives(args, args.input, format=args.format)
    seqs = pos.sequences()
    coded, code = _user_sequences(args)
    whole = [coded[u] for u in seqs.column("user_id").to_pylist()]  # S per anchor, in seq_id order
    train_hist = left_pad([s[:-3] for s in whole], args.max_len)  # T[:-1]
    train_target = torch.tensor([s[-3] for s in whole])           # T[-1]
    train_next = left_pad([s[1:-2] for s in whole], args.max_len)  # T[1:], aligned with T[:-1] position by position
    check = seqs.column("target").to_pylist()
    assert all(code[t] == int(x) for t, x in zip(check, train_target)), "anchors and training targets disagree"
    return (pos, len(code), (train_hist, train_target, train_next)) + _held_out(whole, args.max_len)


def load_prefixes(args):
    """Every prefix of every user's T as a training sample: simmine's prefix anchors (T[:t] → T[t], a user's
    own prefixes never each other's positives), mapped to tensors by (user, position)."""
    pos = _positives(args, args.input, format=args.format, anchors="prefix")
    coded, code = _user_sequences(args)
    users = pos.sequences().column("user_id").to_pylist()
    positions = pos.positions().tolist()
    hist = left_pad([coded[u][:t] for u, t in zip(users, positions)], args.max_len)
    target = torch.tensor([coded[u][t] for u, t in zip(users, positions)])
    check = pos.sequences().column("target").to_pylist()
    assert all(code[t] == int(x) for t, x in zip(check, target)), "anchors and training targets disagree"
    whole = [coded[u] for u in pos.anchor_index()["users"].to_pylist()]  # one per user with anchors
    return (pos, len(code), (hist, target, None)) + _held_out(whole, args.max_len)


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


def train(args, rcl: bool, data):
    pos, n_items, (hist, target, nxt), valid, test = data
    torch.manual_seed(args.seed)
    negatives = torch.Generator().manual_seed(args.seed)
    device = torch.device(args.device)
    model = SASRec(n_items, max_len=args.max_len, dropout=args.dropout).to(device)
    hist, target = hist.to(device), target.to(device)
    nxt = nxt.to(device) if nxt is not None else None
    d = model.item.embedding_dim
    head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)).to(device) if args.rcl_head else nn.Identity()

    def project(x):  # the space the RCL loss compares representations in
        x = head(x)
        return nn.functional.normalize(x, dim=1) if args.rcl_cosine else x

    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=args.lr)
    order = AnchorSampler(len(hist), seed=args.seed)
    sampler = PositiveSampler(pos, seed=args.seed)
    rcl_loss = RelativeContrastiveLoss(temperature=args.tau)
    best, best_valid, history = None, -1.0, []
    sampler_s = step_s = 0.0
    met = torch.zeros(3)  # anchors seen; of them, anchors meeting an in-batch false negative in L_pair, in L_w
    started = time.perf_counter()
    for epoch in range(args.epochs):
        if args.time_limit and time.perf_counter() - started > args.time_limit:
            print(f"{'rcl ' if rcl else 'base'} stopped by --time-limit after {epoch} epochs", flush=True)
            break
        model.train()
        order.set_epoch(epoch)
        sampler.set_epoch(epoch)
        ids = torch.tensor(list(order))
        t_epoch = time.perf_counter()
        for lo in range(0, len(ids), args.batch):
            t0 = time.perf_counter()
            anchors = ids[lo:lo + args.batch]
            if rcl:
                t_s = time.perf_counter()
                pb = sampler.sample(anchors)
                sampler_s += time.perf_counter() - t_s  # the draw alone: copies to the device wait on the GPU
                strong, weak = pb.strong.to(device), pb.weak.to(device)
                masks = (pb.weak_score.to(device), pb.strong_mask.to(device), pb.weak_mask.to(device))
            anchors = anchors.to(device)
            if args.loss == "bce":
                states = model(hist[anchors], every_position=True)
                h = states[:, -1]
                loss = sampled_bce(model, states, nxt[anchors], n_items, negatives)
            else:
                h = model(hist[anchors])
                loss = nn.functional.cross_entropy(model.scores(h), target[anchors] - 1)
            if rcl:
                ks, kw = model(hist[strong]), model(hist[weak])
                sim = batch_similarity(hist[anchors], hist[weak], args.metric)
                fn_s, fn_w = false_negatives(anchors, strong, target), false_negatives(anchors, weak, target)
                met += torch.tensor([len(anchors), _meets(fn_s, masks[1]), _meets(fn_w, masks[2])])
                exclude = {"exclude_strong": fn_s, "exclude_weak": fn_w} if args.rcl_exclude else {}
                loss = loss + args.lam * rcl_loss(project(h), project(ks), project(kw), *masks, sim, **exclude)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_s += time.perf_counter() - t0
        v = evaluate(model, *valid)
        history.append({"epoch": epoch, "valid": v, "seconds": time.perf_counter() - t_epoch})
        print(f"{'rcl ' if rcl else 'base'} epoch {epoch:3d} valid NDCG@10 {v['NDCG@10']:.4f} HR@10 {v['HR@10']:.4f}"
              f" ({time.perf_counter() - t_epoch:.1f}s)", flush=True)
        if v["NDCG@10"] > best_valid:
            best_valid, best = v["NDCG@10"], {"epoch": epoch, "valid": v, "test": evaluate(model, *test)}
    return {"best": best, "history": history, "sampler_share_of_step": sampler_s / max(step_s, 1e-9),
            "anchors_meeting_false_negatives": {"strong": float(met[1] / met[0].clamp_min(1)),
                                                "weak": float(met[2] / met[0].clamp_min(1))}}


def _meets(false_neg: torch.Tensor, valid: torch.Tensor) -> int:
    """Valid anchors that meet, among the other valid keys of their batch, a key marked by false_negatives."""
    off_diagonal = ~torch.eye(len(valid), dtype=torch.bool, device=valid.device)
    return int((false_neg & off_diagonal & valid[None, :] & valid[:, None]).any(1).sum())


def parse_args(argv=None) -> argparse.Namespace:
    """The run's settings from the command line (``argv``, default sys.argv[1:])."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--metric", default="jaccard")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--k", type=int, default=None, help="weak positives per anchor by count instead of --alpha")
    ap.add_argument("--prefixes", action="store_true", help="train on every prefix (see the protocol above)")
    ap.add_argument("--loss", choices=("ce", "bce"), default="ce",
                    help="ce: full softmax at the last position; bce: SASRec's sampled BCE at every position")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds of training per variant, then stop")
    ap.add_argument("--backend", default=None, help="simmine backend for the positives (default: auto)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--lam", type=float, default=0.1, help="λ of L_rec + λ·L_RCL")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--rcl-head", action="store_true", help="compare in the output of a 2-layer MLP head")
    ap.add_argument("--rcl-cosine", action="store_true", help="L2-normalise representations before the RCL loss")
    ap.add_argument("--rcl-exclude", action="store_true",
                    help="leave in-batch false negatives (the anchor itself, its target) out of the RCL denominators")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variants", default="base,rcl")
    ap.add_argument("--out", default=None, help="JSON file for both rows")
    args = ap.parse_args(argv)
    if args.loss == "bce" and args.prefixes:
        ap.error("--loss bce trains every position of a history already: leave out --prefixes")
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        data = load(args)
        results = {v: train(args, v == "rcl", data) for v in args.variants.split(",")}
    report = {"input": os.path.basename(args.input), "args": {k: v for k, v in vars(args).items() if k != "work"},
              "results": results}
    if "base" in results and "rcl" in results:
        b, r = results["base"]["best"]["test"], results["rcl"]["best"]["test"]
        report["lift"] = {k: (r[k] - b[k]) / b[k] if b[k] else None for k in b}
    for name, res in results.items():
        t = res["best"]["test"]
        print(f"{name:4s} test (epoch {res['best']['epoch']}): " + "  ".join(f"{k} {v:.4f}" for k, v in t.items())
              + f"  sampler share of step {res['sampler_share_of_step']:.2%}")
        if name == "rcl":
            met = res["anchors_meeting_false_negatives"]
            print(f"anchors meeting an in-batch false negative: L_pair {met['strong']:.1%}  L_w {met['weak']:.1%}")
    if "lift" in report:
        print("relative lift: " + "  ".join(f"{k} {v:+.1%}" for k, v in report["lift"].items() if v is not None))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
