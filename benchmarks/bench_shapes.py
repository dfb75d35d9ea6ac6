"""Speed on logs of many shapes: a matrix of log shapes × metrics, simmine end to end (log file → Arrow)
beside the peer a user would pick, in one run, exactness checked in every cell.

Shapes vary one factor at a time around the README's log (50k items, Zipf s = 1.0, mean length 40,
log-normal length tail σ = 0.6): Zipf s ∈ {0.8, 1.0, 1.2}; length tails σ ∈ {0.6, 1.0, 1.4} at mean 40;
vocabulary {5k, 50k, 1M}; each cell a log of its own with its own seed (the seed is the cell's number, so no
cell shares a log with the README's figures). N = 20k users (5k for Levenshtein). Peers compute only, on
prebuilt matrices: SciPy X·Xᵀ for Jaccard, the faster of sparse_dot_topn and implicit for TF-IDF, rapidfuzz
cdist for Levenshtein. simmine's times come from the manifest of one ``simmine.build`` per cell: end to end
(with its fixed costs: import excluded, load, write), and compute only (the mine stage).

    python benchmarks/bench_shapes.py --out bench-out                # the whole matrix (about 30 min on 2 cores)
    python benchmarks/bench_shapes.py --out bench-out --quick        # N = 5k (2k for Levenshtein)
    python benchmarks/bench_shapes.py --out bench-out --real ../shared/data/beauty.txt ml-1m.inter
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from bench_cpu import same_topk  # noqa: E402
from harness import machine  # noqa: E402

import simmine  # noqa: E402
from simmine.anchors import load_sequences  # noqa: E402
from simmine.synth import synth  # noqa: E402

BASE = {"items": 50_000, "zipf": 1.0, "sigma": 0.6}
FACTORS = {"zipf": [0.8, 1.0, 1.2], "sigma": [0.6, 1.0, 1.4], "items": [5_000, 50_000, 1_000_000]}
K = 10


def shapes() -> list:
    """(name, synth keywords) of every cell: one factor moved at a time, the base once."""
    out = [("base", dict(BASE))]
    for factor, values in FACTORS.items():
        for v in values:
            if v != BASE[factor]:
                out.append((f"{factor}={v}", {**BASE, factor: v}))
    return out


def tfidf_peer(seqs):
    w = peers.tfidf_csr(seqs.indptr, seqs.items, int(seqs.items.max()) + 1)
    runs = [("sparse_dot_topn", *peers.timed(peers.sparse_dot_topn_tfidf, w, K, 2)),
            ("implicit", *peers.timed(peers.implicit_tfidf, w, K, 2))]
    return min(runs, key=lambda r: r[2])


def jaccard_peer(seqs):
    x = peers.binary_csr(seqs.indptr, seqs.items, int(seqs.items.max()) + 1)
    return ("scipy", *peers.timed(peers.scipy_jaccard_topk, x, K))


def levenshtein_peer(seqs):
    lists = [seqs.items[seqs.indptr[i]:seqs.indptr[i + 1]].tolist() for i in range(seqs.n)]
    return ("rapidfuzz", *peers.timed(peers.rapidfuzz_levenshtein_topk, lists, K, 2))


PEERS = {"jaccard": jaccard_peer, "tfidf": tfidf_peer, "levenshtein": levenshtein_peer}


def cell(path: str, metric: str, shape: str, workdir: str) -> dict:
    """simmine end to end and the metric's peer on one log, their lists compared first."""
    out = simmine.build(input=path, metric=metric, k=K, out=os.path.join(workdir, "out"), quiet=True)
    pos = simmine.open(out)
    ours, stages = [pos.weak(i) for i in range(len(pos))], pos.manifest["elapsed_s"]
    seqs = load_sequences(path)
    peer, theirs, peer_s = PEERS[metric](seqs)
    exact, same = same_topk(ours, theirs)
    fixed = {s: round(stages.get(s, 0.0), 3) for s in ("load", "anchors", "features", "write")}
    row = {"shape": shape, "log": os.path.basename(path), "metric": metric, "N": len(pos), "peer": peer,
           "peer_s": round(peer_s, 3), "simmine_s": round(stages["total"], 3), "mine_s": round(stages["mine"], 3),
           "ratio_end_to_end": round(peer_s / stages["total"], 2),
           "ratio_compute": round(peer_s / max(stages["mine"], 1e-9), 2), "fixed_s": fixed, "exact": bool(exact),
           "identical_sets": round(same, 4)}
    print(f"{shape:<14} {metric:<12} N={row['N']:>6} {peer:<16} {peer_s:7.2f}s  simmine {stages['total']:6.2f}s "
          f"(mine {stages['mine']:.2f}s)  {row['ratio_end_to_end']:6.1f}x end to end  "
          f"{row['ratio_compute']:6.1f}x compute  exact {exact}", flush=True)
    return row


def synth_text(path_txt: str, users: int, seed: int, **shape) -> str:
    """A synthetic log of this shape, one user per line (what the peers' users would read)."""
    import pyarrow.parquet as pq

    parquet = path_txt + ".parquet"
    synth(parquet, users=users, mean_len=40, seed=seed, **shape)
    table = pq.read_table(parquet, columns=["user_id", "item_id"])
    users_, items = table["user_id"].to_numpy(), table["item_id"].to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], users_[1:] != users_[:-1])))
    ends = np.append(starts[1:], len(users_))
    with open(path_txt, "w") as f:
        for a, b in zip(starts.tolist(), ends.tolist()):
            f.write(f"{users_[a]} {' '.join(map(str, items[a:b].tolist()))}\n")
    os.remove(parquet)
    return path_txt


def import_seconds() -> float:
    """A fresh process's ``import simmine`` (a fixed cost of every command, the same in every cell)."""
    import subprocess
    import time

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import simmine"], check=True)
    return time.perf_counter() - t


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"{m['cpu']}, {m['cpus']} cores; k = {K}; peers compute only on prebuilt matrices; a fresh "
             f"process's import simmine (and Python's start) {result['import_s']:.2f} s, before every command", "",
             "| shape | metric | N | peer | peer s | simmine s (end to end) | mine s | ratio end to end | "
             "ratio compute only | load / features / write s | exact |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|---|"]
    for r in result["cells"]:
        f = r["fixed_s"]
        lines.append(f"| {r['shape']} | {r['metric']} | {r['N']:,} | {r['peer']} | {r['peer_s']:.2f} | "
                     f"{r['simmine_s']:.2f} | {r['mine_s']:.2f} | {r['ratio_end_to_end']:.1f}x | "
                     f"{r['ratio_compute']:.1f}x | {f['load']:.2f} / {f['features']:.2f} / {f['write']:.2f} | "
                     f"{r['exact']} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({r["metric"] for r in result["cells"]})
    shapes_ = list(dict.fromkeys(r["shape"] for r in result["cells"]))
    grid = np.full((len(metrics), len(shapes_)), np.nan)
    for r in result["cells"]:
        grid[metrics.index(r["metric"]), shapes_.index(r["shape"])] = r["ratio_compute"]
    fig, ax = plt.subplots(figsize=(1.2 * len(shapes_) + 2, 0.8 * len(metrics) + 1.5))
    im = ax.imshow(np.log10(grid), cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}x", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(shapes_)), shapes_, rotation=30, ha="right")
    ax.set_yticks(range(len(metrics)), metrics)
    ax.set_title("simmine mine stage against the peer's compute (ratio, k = 10)")
    fig.colorbar(im, ax=ax, label="log10 ratio")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--quick", action="store_true", help="N = 5k (2k for Levenshtein)")
    ap.add_argument("--metrics", default="jaccard,tfidf,levenshtein")
    ap.add_argument("--real", nargs="*", default=[], help="real logs to add as cells (user anchors)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    n, n_lev = (5_000, 2_000) if args.quick else (20_000, 5_000)
    cells = []
    with tempfile.TemporaryDirectory() as work:
        for number, (shape, kw) in enumerate(shapes(), start=1):
            for metric in args.metrics.split(","):
                users = n_lev if metric == "levenshtein" else n
                path = synth_text(os.path.join(work, f"{shape}-{users}.txt"), users, seed=100 + number, **kw)
                cells.append(cell(path, metric, shape, work))
        for path in args.real:
            for metric in args.metrics.split(","):
                cells.append(cell(path, metric, os.path.basename(path), work))
    result = {"machine": machine(), "k": K, "n": n, "n_levenshtein": n_lev, "import_s": round(import_seconds(), 3),
              "cells": cells}
    with open(os.path.join(args.out, "shapes.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "shapes.md"), "w") as f:
        f.write(markdown(result))
    plot(result, os.path.join(args.out, "shapes.png"))


if __name__ == "__main__":
    main()
