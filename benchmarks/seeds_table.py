"""Mean ± sd over seeds of examples/train_sasrec.py runs, and a paired t-test of each setting against a
baseline on the seeds both ran: the table docs/torch.md quotes.

    python benchmarks/seeds_table.py benchmarks/results/sasrec-ml100k --baseline base-d0.2

Runs are files NAME-sSEED.json; each holds one variant's best epoch (chosen on validation NDCG@10).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

import numpy as np
from scipy import stats

METRICS = ("HR@10", "NDCG@10")


def load(directory: str) -> dict:
    """{name: {seed: {"valid": NDCG@10, "test": {metric: value}}}}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*-s*.json"))):
        match = re.fullmatch(r"(.+)-s(\d+)\.json", os.path.basename(path))
        if not match:
            continue
        results = json.load(open(path))["results"]
        (best,) = [r["best"] for r in results.values()]
        runs.setdefault(match.group(1), {})[int(match.group(2))] = {"valid": best["valid"]["NDCG@10"],
                                                                    "test": best["test"]}
    return runs


def mean_sd(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def table(runs: dict, baseline: str) -> list:
    lines = ["| setting | seeds | valid NDCG@10 | test HR@10 | test NDCG@10 | NDCG@10 vs baseline (paired) |",
             "|---|---:|---:|---:|---:|---|"]
    base = runs.get(baseline, {})
    for name, seeds in sorted(runs.items(), key=lambda kv: (kv[0] != baseline, kv[0])):
        ordered = sorted(seeds)
        cells = [mean_sd([seeds[s]["valid"] for s in ordered])]
        cells += [mean_sd([seeds[s]["test"][metric] for s in ordered]) for metric in METRICS]
        shared = sorted(set(ordered) & set(base))
        versus = ""
        if name != baseline and len(shared) >= 2:
            mine = np.array([seeds[s]["test"]["NDCG@10"] for s in shared])
            theirs = np.array([base[s]["test"]["NDCG@10"] for s in shared])
            p = stats.ttest_rel(mine, theirs).pvalue
            versus = f"{(mine.mean() / theirs.mean() - 1):+.1%} on seeds {shared}, p = {p:.3f}"
        lines.append(f"| {name} | {len(ordered)} | " + " | ".join(cells) + f" | {versus} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--baseline", required=True)
    args = ap.parse_args()
    print("\n".join(table(load(args.directory), args.baseline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
