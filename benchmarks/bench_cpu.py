"""Exact CPU mining against the peers a user would pick, same anchors, same run (issue: CPU at the speed limit).

For each task the peer runs on prebuilt inputs (its matrix or lists built beforehand, untimed: compute
only) and simmine runs end to end through simmine.build in this process, from the log file to the Arrow
tables. Two ratios: end to end (peer compute over simmine's whole build, a lower bound of the ratio a user
sees, since the peer's loading is free) and compute only (peer compute over simmine's mine stage). The
synthetic logs are text files, one user per line (``user item item ...``); the load column is simmine's
load stage and its share of the build. Results are compared before any time is quoted: identical
neighbour-score lists per anchor for top-k (neighbour sets compared where no tie sits at the cut),
identical pair sets for the threshold join. Writes JSON, a Markdown table and a log-log plot to --out.

    python benchmarks/bench_cpu.py --out bench-out            # full run (about 15 minutes on 2 cores)
    python benchmarks/bench_cpu.py --out bench-out --quick    # N = 5k, 10k only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from harness import machine  # noqa: E402

import simmine  # noqa: E402
from simmine.anchors import load_sequences  # noqa: E402
from simmine.synth import synth  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BEAUTY = os.path.join(HERE, "..", "..", "shared", "data", "beauty.txt")


def simmine_run(path, workdir, **kw):
    t = time.perf_counter()
    out = simmine.build(input=path, out=os.path.join(workdir, "out"), quiet=True, **kw)
    elapsed = time.perf_counter() - t
    pos = simmine.open(out)
    return [pos.weak(i) for i in range(len(pos))], elapsed, pos.manifest


def same_topk(a, b, atol=1e-6):
    """(all score lists equal, share of anchors with identical neighbour lists)."""
    scores_ok, same = True, 0
    for (na, sa), (nb, sb) in zip(a, b):
        if len(sa) != len(sb) or not np.allclose(sa, sb, atol=atol, rtol=0):
            scores_ok = False
            break
        same += set(np.asarray(na).tolist()) == set(np.asarray(nb).tolist())
    return scores_ok and len(a) == len(b), same / max(len(a), 1)


def ensure_synth(workdir, n, text=False):
    """The synthetic log of n users as Parquet, or as text with one user per line."""
    path = os.path.join(workdir, f"synth-{n}.parquet")
    if not os.path.exists(path):
        synth(path, users=n, items=50_000, mean_len=40, zipf=1.0, seed=1)
    if not text:
        return path
    lines = os.path.join(workdir, f"synth-{n}.txt")
    if not os.path.exists(lines):
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["user_id", "item_id"])  # rows come user by user, in time order
        users, items = table["user_id"].to_numpy(), table["item_id"].to_numpy()
        starts = np.flatnonzero(np.concatenate(([True], users[1:] != users[:-1])))
        ends = np.append(starts[1:], len(users))
        with open(lines + ".tmp", "w") as f:
            for a, b in zip(starts.tolist(), ends.tolist()):
                f.write(f"{users[a]} {' '.join(map(str, items[a:b].tolist()))}\n")
        os.replace(lines + ".tmp", lines)
    return lines


def task_rows(name, path, n, peer_name, peer_fn, simmine_kw, compare="topk"):
    seqs = load_sequences(path)
    with tempfile.TemporaryDirectory() as tmp:
        ours, t_ours, manifest = simmine_run(path, tmp, **simmine_kw)
    peer_out, t_peer = peer_fn(seqs)
    if compare == "topk":
        ok, same = same_topk(ours, peer_out)
        detail = f"scores identical: {ok}; identical neighbour sets: {same:.1%}"
    else:
        mine = {(i, int(j)) for i, (nb, _) in enumerate(ours) for j in nb if i < j}
        ok = mine == peer_out
        detail = f"identical pair sets: {ok} ({len(mine)} pairs)"
    stages = manifest["elapsed_s"]
    row = {"task": name, "log": os.path.basename(path), "N": int(seqs.n), "peer": peer_name,
           "peer_s": round(t_peer, 3), "simmine_s": round(t_ours, 3), "ratio": round(t_peer / t_ours, 2),
           "simmine_mine_s": round(stages["mine"], 3), "ratio_compute": round(t_peer / stages["mine"], 2),
           "load_s": round(stages["load"], 3), "load_share": round(stages["load"] / t_ours, 4),
           "exact": bool(ok), "check": detail, "backend": manifest["backend"], "simmine_stages_s": stages}
    print(f"{name:<28} {row['log']:<22} N={row['N']:>7}  {peer_name:<26} {t_peer:8.2f}s  simmine {t_ours:7.2f}s"
          f" (mine {stages['mine']:.2f}s, load {row['load_share']:.1%})  ratio {row['ratio']:6.1f}x end to end,"
          f" {row['ratio_compute']:6.1f}x compute  [{detail}]", flush=True)
    return row


def peer_jaccard(k):
    def run(seqs):
        x = peers.binary_csr(seqs.indptr, seqs.items, int(seqs.items.max()) + 1)
        return peers.timed(peers.scipy_jaccard_topk, x, k)
    return run


def peer_threshold(t):
    def run(seqs):
        sets = [set(seqs.items[seqs.indptr[i]:seqs.indptr[i + 1]].tolist()) for i in range(seqs.n)]
        return peers.timed(peers.setsimilaritysearch_pairs, sets, t)
    return run


def peer_tfidf(k):
    def run(seqs):
        w = peers.tfidf_csr(seqs.indptr, seqs.items, int(seqs.items.max()) + 1)
        return peers.timed(peers.sparse_dot_topn_tfidf, w, k, 2)
    return run


def peer_implicit(k):
    def run(seqs):
        w = peers.tfidf_csr(seqs.indptr, seqs.items, int(seqs.items.max()) + 1)
        return peers.timed(peers.implicit_tfidf, w, k, 2)
    return run


def peer_levenshtein(k):
    def run(seqs):
        lists = [seqs.items[seqs.indptr[i]:seqs.indptr[i + 1]].tolist() for i in range(seqs.n)]
        return peers.timed(peers.rapidfuzz_levenshtein_topk, lists, k, 2)
    return run


def growth(workdir, sizes):
    """simmine Jaccard top-10 end to end at growing N: time and the cost of doubling."""
    rows = []
    for n in sizes:
        path = ensure_synth(workdir, n)
        with tempfile.TemporaryDirectory() as tmp:
            _, t, m = simmine_run(path, tmp, metric="jaccard", k=10)
        rows.append({"N": n, "simmine_s": round(t, 3), "mine_s": m["elapsed_s"]["mine"]})
        print(f"growth: jaccard top-10 N={n:>7}  {t:8.2f}s", flush=True)
    for a, b in zip(rows, rows[1:]):
        b["doubling_cost"] = round((b["simmine_s"] / a["simmine_s"]) ** (np.log(2) / np.log(b["N"] / a["N"])), 2)
    return rows


def peak_memory(path):
    """Peak RSS of a separate process running simmine build on path (Jaccard top-10)."""
    code = ("import resource, simmine, tempfile, os; d = tempfile.mkdtemp(); "
            f"simmine.build(input={path!r}, out=os.path.join(d, 'o'), metric='jaccard', k=10, quiet=True); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1]) / 1024 ** 2  # KiB → GiB


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    tasks = sorted({r["task"] for r in results["tasks"]})
    for task in tasks:
        rows = sorted((r for r in results["tasks"] if r["task"] == task and r["log"].startswith("synth")),
                      key=lambda r: r["N"])
        if len(rows) < 1:
            continue
        line, = ax.plot([r["N"] for r in rows], [r["simmine_s"] for r in rows], "o-", label=f"simmine: {task}")
        ax.plot([r["N"] for r in rows], [r["peer_s"] for r in rows], "s--", color=line.get_color(),
                label=f"{rows[0]['peer']}: {task}")
    g = results["growth"]
    ax.plot([r["N"] for r in g], [r["simmine_s"] for r in g], "k^-", label="simmine: jaccard top-10 (growth)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequences N")
    ax.set_ylabel("seconds (2 cores)")
    ax.set_title("Exact similarity mining, simmine vs peers")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(results):
    lines = ["| task | log | N | peer (compute only) | peer s | simmine end to end s | of which load | "
             "simmine mine s | ratio end to end | ratio compute only | exactness check |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["tasks"]:
        lines.append(f"| {r['task']} | {r['log']} | {r['N']:,} | {r['peer']} | {r['peer_s']:.2f} | "
                     f"{r['simmine_s']:.2f} | {r['load_s']:.2f} ({r['load_share']:.0%}) | {r['simmine_mine_s']:.2f} | "
                     f"**{r['ratio']:.1f}×** | {r['ratio_compute']:.1f}× | {r['check']} |")
    lines += ["", "| N | simmine jaccard top-10 s | cost of doubling N |", "|---:|---:|---:|"]
    for r in results["growth"]:
        lines.append(f"| {r['N']:,} | {r['simmine_s']:.2f} | {r.get('doubling_cost', '')} |")
    if results.get("peak_memory_gib") is not None:
        lines += ["", f"Peak memory, jaccard top-10 at N = {results['peak_memory_n']:,}: "
                      f"{results['peak_memory_gib']:.2f} GiB"]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=os.environ.get("SIMMINE_BENCH_DATA", os.path.join(tempfile.gettempdir(),
                                                                                          "simmine-bench")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.data, exist_ok=True)
    quick = args.quick
    n_small, n_mid = (5_000, 10_000) if quick else (20_000, 50_000)
    logs = {n: ensure_synth(args.data, n, text=True) for n in sorted({5_000, n_small, n_mid})}
    tasks = []
    if os.path.exists(BEAUTY):
        tasks.append(task_rows("jaccard top-10", BEAUTY, None, "scipy X·Xᵀ+argpartition", peer_jaccard(10),
                               dict(metric="jaccard", k=10)))
        tasks.append(task_rows("tfidf top-10", BEAUTY, None, "sparse_dot_topn (2 thr)", peer_tfidf(10),
                               dict(metric="tfidf", k=10)))
        tasks.append(task_rows("tfidf top-10", BEAUTY, None, "implicit all_pairs_knn (2 thr)", peer_implicit(10),
                               dict(metric="tfidf", k=10)))
    for n in sorted({n_small}):
        tasks.append(task_rows("jaccard top-10", logs[n], n, "scipy X·Xᵀ+argpartition", peer_jaccard(10),
                               dict(metric="jaccard", k=10)))
        tasks.append(task_rows("jaccard >= 0.5 join", logs[n], n, "SetSimilaritySearch", peer_threshold(0.5),
                               dict(metric="jaccard", min_sim=0.5), compare="pairs"))
    for n in sorted({n_small, n_mid}):
        tasks.append(task_rows("tfidf top-10", logs[n], n, "sparse_dot_topn (2 thr)", peer_tfidf(10),
                               dict(metric="tfidf", k=10)))
        tasks.append(task_rows("tfidf top-10", logs[n], n, "implicit all_pairs_knn (2 thr)", peer_implicit(10),
                               dict(metric="tfidf", k=10)))
    tasks.append(task_rows("levenshtein top-10", logs[5_000], 5_000, "rapidfuzz cdist (2 workers)",
                           peer_levenshtein(10), dict(metric="levenshtein", k=10)))
    sizes = [5_000, 10_000, 20_000] if quick else [25_000, 50_000, 100_000, 200_000]
    results = {"machine": {**machine(), "simmine": simmine.__version__},
               "tasks": tasks, "growth": growth(args.data, sizes)}
    n_mem = 20_000 if quick else 100_000
    results["peak_memory_n"] = n_mem
    results["peak_memory_gib"] = round(peak_memory(ensure_synth(args.data, n_mem)), 3)
    print(f"peak memory at N={n_mem}: {results['peak_memory_gib']:.2f} GiB")
    with open(os.path.join(args.out, "cpu.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "cpu.md"), "w") as f:
        f.write(markdown(results) + "\n")
    plot(results, os.path.join(args.out, "cpu.png"))
    print(markdown(results))


if __name__ == "__main__":
    main()
