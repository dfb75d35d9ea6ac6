"""SASRec in RecBole with and without simmine's contrastive terms, every-position vs prefix rows, mining and
FEARec sampling cost. Each run writes one JSON (result, settings and the exact command) into --out as soon as
it finishes; runs whose JSON exists are skipped, so an interrupted study resumes.

    python benchmarks/recbole_study.py runs --dataset ml-100k --variants base,duorec,rcl,random --seeds 0,1,2,3,4
    python benchmarks/recbole_study.py runs --dataset ml-100k --modes prefix,every --variants base --epochs 3
    python benchmarks/recbole_study.py timing --dataset ml-100k --modes every,prefix
    python benchmarks/recbole_study.py fearec --dataset beauty --beauty ../shared/data/beauty.txt
    python benchmarks/recbole_study.py table --out benchmarks/results/recbole

Needs the RecBole environment (numpy<2, docs/recbole.md). Training runs one at a time, on --threads threads.
Settings are chosen on validation only; test metrics are those RecBole reports for the best validation epoch.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shlex
import sys
import tempfile
import time

import numpy as np

VARIANTS = {"base": {}, "duorec": {"contrastive": "duorec"}, "rcl": {"contrastive": "rcl"},
            "random": {"contrastive": "random"}}


def _dataset(args) -> tuple:
    if args.dataset == "ml-100k" and args.last:
        return _last_events(args.last)
    if args.dataset == "ml-100k":
        return "ml-100k", {}
    import simmine.recbole as sr

    data_path = os.path.join(tempfile.gettempdir(), "simmine-recbole-data")
    if not os.path.exists(os.path.join(data_path, "beauty", "beauty.inter")):
        sr.lines_to_atomic(args.beauty, data_path, "beauty")
    return "beauty", {"data_path": data_path, "load_col": None}


def _last_events(n: int) -> tuple:
    """ml-100k cut to each user's last n interactions by time (a sparse regime), as an atomic file of its own."""
    import recbole

    name = f"ml-100k-last{n}"
    data_path = os.path.join(tempfile.gettempdir(), "simmine-recbole-data")
    path = os.path.join(data_path, name, f"{name}.inter")
    if not os.path.exists(path):
        src = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k", "ml-100k.inter")
        lines = open(src).read().splitlines()
        rows = [r.split("\t") for r in lines[1:]]
        order = sorted(range(len(rows)), key=lambda i: (rows[i][0], float(rows[i][3])))
        keep, count = set(), {}
        for i in reversed(order):
            count[rows[i][0]] = count.get(rows[i][0], 0) + 1
            if count[rows[i][0]] <= n:
                keep.add(i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join([lines[0]] + [lines[i + 1] for i in range(len(rows)) if i in keep]) + "\n")
    return name, {"data_path": data_path, "load_col": None}


def _label(args) -> str:
    return f"{args.dataset}-last{args.last}" if args.last else args.dataset


def _name(args, mode, variant, lam, tau, seed) -> str:
    tail = "" if variant == "base" else f"-l{lam:g}-t{tau:g}"
    return f"{_label(args)}-{mode}-{variant}{tail}{args.tag}-s{seed}.json"


def runs(args) -> None:
    """Trains every (mode, variant, λ, τ, seed) combination whose JSON is missing, one after another."""
    import torch
    import simmine.recbole as sr

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    dataset, extra = _dataset(args)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for mode in args.modes.split(","):
            for variant in args.variants.split(","):
                grid = [(0.0, 0.0)] if variant == "base" else \
                    [(float(lam), float(tau)) for lam in args.lams.split(",") for tau in args.taus.split(",")]
                for lam, tau in grid:
                    path = os.path.join(args.out, _name(args, mode, variant, lam, tau, seed))
                    if os.path.exists(path):
                        continue
                    saved = os.path.join(args.work, "saved", os.path.basename(path)[:-5])  # one per run: runs
                    # side by side would otherwise share checkpoint names (RecBole names them by the second)
                    cfg = dict(extra, seed=seed, epochs=args.epochs, stopping_step=args.stopping_step,
                               state="WARNING", show_progress=False, checkpoint_dir=saved,
                               simmine_cache=os.path.join(args.work, "cache"), simmine_metric=args.metric,
                               simmine_k=args.k, valid_metric="NDCG@10", topk=[10],
                               metrics=["Recall", "NDCG", "MRR"], every_position=(mode == "every"),
                               **VARIANTS[variant])
                    if variant != "base":
                        cfg.update(cl_weight=lam, cl_temperature=tau, cl_logits=args.logits,
                                   cl_anchor_pass=args.anchor_pass)
                    started = time.perf_counter()
                    result = sr.run("SASRec", dataset, config_dict=cfg)
                    result.update(wall_seconds=time.perf_counter() - started, variant=variant, mode=mode,
                                  lam=lam, tau=tau, seed=seed, threads=args.threads,
                                  command="python " + " ".join(shlex.quote(a) for a in sys.argv))
                    with open(path + ".tmp", "w") as f:
                        json.dump(result, f, indent=1)
                    os.replace(path + ".tmp", path)
                    print(f"{os.path.basename(path)}: valid ndcg@10 {result['best_valid'].get('ndcg@10', 0):.4f} "
                          f"test ndcg@10 {result['test'].get('ndcg@10', 0):.4f} "
                          f"{np.mean(result['epoch_seconds']):.1f} s/epoch", flush=True)


def timing(args) -> None:
    """Mining (uncached, then cached) and one training epoch in each mode, the same model and seed: wall and
    CPU seconds (this process's CPU time is less disturbed by other work on a shared machine)."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.utils import init_seed
    import simmine.recbole as sr

    torch.set_num_threads(args.threads)
    dataset, extra = _dataset(args)
    if dataset == "ml-100k":
        extra = {"data_path": sr.trainer.bundled_data_path()}
    out = {"dataset": dataset, "threads": args.threads, "metric": args.metric, "k": args.k,
           "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    model_class = sr.with_contrastive(SASRec)
    config = Config(model=model_class, dataset=dataset, config_dict=dict(
        extra, train_neg_sample_args=None, state="WARNING", checkpoint_dir=os.path.join(args.work, "saved")))
    train, _, _ = data_preparation(config, create_dataset(config))
    with tempfile.TemporaryDirectory() as cache:
        for name in ("uncached", "cached"):
            train.dataset.simmine_positives = None
            start, cpu = time.perf_counter(), time.process_time()
            rp = sr.attach_positives(train.dataset, cache=cache, metric=args.metric, k=args.k,
                                     threads=args.threads)
            out[f"mining_{name}_seconds"] = time.perf_counter() - start
            out[f"mining_{name}_cpu_seconds"] = time.process_time() - cpu
    out["rows"] = len(rp)
    for mode in args.modes.split(","):
        config["every_position"] = mode == "every"
        init_seed(config["seed"], config["reproducibility"])
        model = model_class(config, train.dataset)
        loader = sr.every_position_loader(train, config) if mode == "every" else train
        trainer = sr.Trainer(config, model)
        trainer._train_epoch(loader, 0)
        out[f"{mode}_rows"] = len(loader._dataset)
        out[f"{mode}_epoch_seconds"] = trainer.epoch_seconds[0]
        out[f"{mode}_epoch_cpu_seconds"] = trainer.epoch_cpu_seconds[0]
        _write(args, f"timing-{dataset}-t{args.threads}.json", out)


def fearec(args) -> None:
    """FEARec's own same-target index and sampling loop against SameTargetSampler, on one epoch of rows."""
    import random
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import FEARec
    import simmine.recbole as sr

    torch.set_num_threads(args.threads)
    dataset, extra = _dataset(args)
    config = Config(model=FEARec, dataset=dataset, config_dict=dict(extra, train_neg_sample_args=None,
                                                                     state="WARNING"))
    train, _, _ = data_preparation(config, create_dataset(config))
    ds = train.dataset
    n = len(ds.inter_feat)
    out = {"dataset": dataset, "rows": n, "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        sampler = sr.SameTargetSampler(ds, seed=0, cache=cache, threads=args.threads)
        out["ours_setup_seconds_uncached"] = time.perf_counter() - start
        ds.simmine_positives = None
        start = time.perf_counter()
        sampler = sr.SameTargetSampler(ds, seed=0, cache=cache, threads=args.threads)
        out["ours_setup_seconds_cached"] = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, n, 2048):
        sampler.sample(np.arange(lo, min(lo + 2048, n)), epoch=0)
    out["ours_epoch_sampling_seconds"] = time.perf_counter() - start
    sample = np.random.default_rng(0).choice(n, min(n, args.fearec_rows), replace=False)
    target = ds.inter_feat["item_id"].numpy()
    start = time.perf_counter()
    for r in sample:  # FEARec.get_same_item_index does this for every row
        np.where(target == target[r])[0]
    out["fearec_index_seconds"] = (time.perf_counter() - start) * n / len(sample)
    out["fearec_index_rows_timed"] = int(len(sample))
    index = {t: np.flatnonzero(target == t) for t in np.unique(target)}
    lists = ds.inter_feat["item_id_list"]
    start = time.perf_counter()
    for r in range(n):  # FEARec.calculate_loss's loop, every row once
        remaining = index[target[r]].copy()
        while len(remaining) > 0:
            s = random.choice(remaining)
            remaining = remaining[remaining != s]
            if not torch.equal(lists[r], lists[s]) or len(remaining) == 0:
                break
    out["fearec_epoch_sampling_seconds"] = time.perf_counter() - start
    _write(args, f"fearec-{dataset}.json", out)


def _write(args, name: str, obj: dict) -> None:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(obj, f, indent=1)
    print(json.dumps(obj, indent=1))


def _t_p(d: np.ndarray) -> float:
    """Two-sided p of a paired t-test (normal tail for the t statistic when scipy is missing)."""
    if len(d) < 2 or np.std(d, ddof=1) == 0:
        return float("nan")
    t = np.mean(d) / (np.std(d, ddof=1) / math.sqrt(len(d)))
    try:
        from scipy import stats
        return float(2 * stats.t.sf(abs(t), len(d) - 1))
    except ImportError:
        return float(math.erfc(abs(t) / math.sqrt(2)))


def _key(path: str, r: dict) -> tuple:
    """(dataset, mode, variant, λ, τ, tag) of a run's JSON, the tag read back from its file name."""
    name = os.path.basename(path).rsplit("-s", 1)[0]
    head = f"{r['dataset']}-{r['mode']}-{r['variant']}" + ("" if r["variant"] == "base" else
                                                           f"-l{r['lam']:g}-t{r['tau']:g}")
    return r["dataset"], r["mode"], r["variant"], r["lam"], r["tau"], name[len(head):]


def _stat(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def _paired(mine: dict, other: dict) -> str:
    seeds = sorted(set(mine) & set(other))
    if not seeds:
        return ""
    d = np.array([mine[s]["test"]["ndcg@10"] - other[s]["test"]["ndcg@10"] for s in seeds])
    base = np.mean([other[s]["test"]["ndcg@10"] for s in seeds])
    return f"{100 * d.mean() / base:+.1f}% (n={len(seeds)}, p={_t_p(d):.2f})"


def table(args) -> None:
    """Markdown: mean ± sd per setting, and paired differences of test NDCG@10 vs base and vs the placebo
    (the random-positive run with the same λ, τ and tag)."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(args.out, "*-s[0-9]*.json"))):
        r = json.load(open(path))
        groups.setdefault(_key(path, r), {})[r["seed"]] = r
    print("| dataset | mode | setting | seeds | epochs run | s/epoch | valid NDCG@10 | test NDCG@10 | test Recall@10 "
          "| test NDCG@10 vs base | vs placebo |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for key, runs_ in sorted(groups.items()):
        dataset, mode, variant, lam, tau, tag = key
        base = groups.get((dataset, mode, "base", 0.0, 0.0, tag), {})
        placebo = groups.get((dataset, mode, "random", lam, tau, tag), {})
        setting = variant if variant == "base" else f"{variant} λ={lam:g} τ={tau:g}"
        secs = np.mean([np.mean(r["epoch_seconds"]) for r in runs_.values()])
        epochs = np.mean([len(r["epoch_seconds"]) for r in runs_.values()])
        print(f"| {dataset} | {mode}{tag} | {setting} | {len(runs_)} | {epochs:.0f} | {secs:.1f} | "
              f"{_stat([r['best_valid']['ndcg@10'] for r in runs_.values()])} | "
              f"{_stat([r['test']['ndcg@10'] for r in runs_.values()])} | "
              f"{_stat([r['test']['recall@10'] for r in runs_.values()])} | "
              f"{_paired(runs_, base) if variant != 'base' else ''} | "
              f"{_paired(runs_, placebo) if variant not in ('base', 'random') else ''} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", choices=("runs", "timing", "fearec", "table"))
    ap.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "beauty"))
    ap.add_argument("--beauty", default="../shared/data/beauty.txt", help="one user per line (Amazon Beauty)")
    ap.add_argument("--last", type=int, default=0, help="ml-100k: keep each user's last N interactions only")
    ap.add_argument("--modes", default="every", help="every,prefix")
    ap.add_argument("--variants", default="base,duorec,rcl,random")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--lams", default="0.1")
    ap.add_argument("--taus", default="1.0")
    ap.add_argument("--logits", default="cosine")
    ap.add_argument("--anchor-pass", default="shared")
    ap.add_argument("--metric", default="jaccard")
    ap.add_argument("--k", type=int, default=10, help="weak positives per row")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--stopping-step", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="appended to each run's name (e.g. -e30)")
    ap.add_argument("--fearec-rows", type=int, default=2000, help="fearec: rows whose index lookup is timed")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "simmine-recbole-study"))
    ap.add_argument("--out", default="benchmarks/results/recbole")
    args = ap.parse_args()
    {"runs": runs, "timing": timing, "fearec": fearec, "table": table}[args.task](args)


if __name__ == "__main__":
    main()
