"""Approximate Jaccard top-10: simmine --method minhash and faiss vs exact vs datasketch, same log, same run.

Recall@10 of every method is measured here against simmine's exact top-10 on all anchors (ties counted by
score), not only on the build's sample. datasketch runs the pipeline its users write: MinHash.bulk,
MinHashLSH insert and query, then exact Jaccard re-scoring of the candidates in Python.

Each method runs at several settings, giving recall@10-versus-time curves (approx.png); the bucketed
synthetic log compares only anchors of the same city. Each minhash row names its route: per bucket, minhash
searches exactly where its cost model finds exact search cheaper or its candidates short of recall 0.96
(docs/approximate.md); ``--candidates`` fixes the kept candidates and always takes the minhash route.

"When is minhash faster than exact": ``--large N`` adds a synthetic log of N users, ``--long PATH`` a real
log mined at --max-len 200 with Jaccard and with n-gram sets (MovieLens-1M in docs/benchmarks.md).

    python benchmarks/bench_approx.py --out bench-out [--users 20000] [--cities 8] [--large 100000] [--long ml-1m.inter]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import simmine
from simmine.anchors import load_sequences
from simmine.synth import synth

HERE = os.path.dirname(os.path.abspath(__file__))
BEAUTY = os.path.join(HERE, "..", "..", "shared", "data", "beauty.txt")
K = 10


def recall(approx, exact):
    found = wanted = 0
    for (na, sa), (ne, se) in zip(approx, exact):
        if len(ne):
            found += min(len(ne), int(np.sum(np.asarray(sa) >= se.min())))
            wanted += len(ne)
    return found / max(wanted, 1)


def run_simmine(path, tmp, **kw):
    t = time.perf_counter()
    kw = {"metric": "jaccard", **kw}
    out = simmine.build(input=path, out=os.path.join(tmp, "o"), k=K, quiet=True, **kw)
    elapsed = time.perf_counter() - t
    pos = simmine.open(out)
    return [pos.weak(i) for i in range(len(pos))], elapsed, pos.manifest


def run_datasketch(sets, threshold, num_perm=128):
    from datasketch import MinHash, MinHashLSH

    t = time.perf_counter()
    encoded = [[str(v).encode() for v in s] for s in sets]
    sketches = MinHash.bulk(encoded, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, m in enumerate(sketches):
        lsh.insert(i, m)
    out = []
    for i, m in enumerate(sketches):
        cands = [j for j in lsh.query(m) if j != i]
        scored = sorted(((len(sets[i] & sets[j]) / len(sets[i] | sets[j]), j) for j in cands),
                        key=lambda t: (-t[0], t[1]))[:K]
        out.append((np.array([j for _, j in scored]), np.array([s for s, _ in scored], dtype=np.float32)))
    return out, time.perf_counter() - t


MINHASH_PERMS = (128, 256, 512, 1024)
FIXED_CANDIDATES = (dict(num_perm=1024, candidates=100), dict(num_perm=1024, candidates=400))
FAISS_SETTINGS = (dict(index="flat", dim=256, candidates=50), dict(index="flat", dim=256, candidates=200),
                  dict(index="flat", dim=512, candidates=200), dict(index="binary", num_perm=256, candidates=200))
DATASKETCH_THRESHOLDS = (0.5, 0.3, 0.2)


def family(method: str) -> str:
    return method.split(" (")[0]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = list(dict.fromkeys(r["log"] for r in rows))
    fig, axes = plt.subplots(1, len(logs), figsize=(5.2 * len(logs), 4.2), squeeze=False)
    for ax, log in zip(axes[0], logs):
        mine = [r for r in rows if r["log"] == log]
        for fam in dict.fromkeys(family(r["method"]) for r in mine):
            pts = sorted((r["seconds"], r["recall@10"]) for r in mine if family(r["method"]) == fam)
            ax.plot(*zip(*pts), marker="*" if fam == "simmine exact" else "o", label=fam,
                    markersize=12 if fam == "simmine exact" else 5)
        ax.set_xscale("log")
        ax.set_xlabel("seconds, end to end (log)")
        ax.set_ylabel("recall@10 against exact")
        ax.set_ylim(0, 1.05)
        ax.set_title(log, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def target_ratios(rows, wanted: float = 0.9) -> list:
    """Per log: the fastest simmine minhash setting with recall@10 >= wanted, against datasketch's
    highest-recall setting (its time over ours)."""
    out = []
    for log in dict.fromkeys(r["log"] for r in rows):
        mine = [r for r in rows if r["log"] == log and family(r["method"]) == "simmine minhash"
                and r["recall@10"] >= wanted]
        peers = [r for r in rows if r["log"] == log and family(r["method"]) == "datasketch LSH"]
        if not mine or not peers:
            continue
        best = min(mine, key=lambda r: r["seconds"])
        peer = max(peers, key=lambda r: (r["recall@10"], -r["seconds"]))
        out.append(f"{log}: {best['method']} reaches recall@10 {best['recall@10']:.4f} in {best['seconds']:.2f} s; "
                   f"{peer['method']} reaches {peer['recall@10']:.4f} in {peer['seconds']:.2f} s: "
                   f"{peer['seconds'] / best['seconds']:.1f}x")
    return out


def route(manifest) -> str:
    """How a build found its candidates: exact search, minhash, or both (per bucket)."""
    a = (manifest or {}).get("approximate") or {}
    if not a:
        return "exact" if manifest else ""
    if a.get("candidates") == "exact":
        return "exact search (planner)"
    if a.get("exact_buckets"):
        return f"minhash, {a['exact_buckets']} buckets exact"
    return "minhash"


def report(name, n, results, exact) -> list:
    rows = []
    for method, got, t, m in results:
        row = {"log": name, "N": n, "method": method, "route": route(m) if method.startswith("simmine minhash")
               else "", "seconds": round(t, 3), "recall@10": round(recall(got, exact), 4),
               "estimated_recall": (m.get("recall") or {}).get("value") if m else None}
        rows.append(row)
        print(f"{name:<48} {method:<58} {row['route']:<24} {t:8.2f}s  recall@10 {row['recall@10']:.4f}"
              + (f" (manifest estimate {row['estimated_recall']:.4f})" if row["estimated_recall"] else ""), flush=True)
    return rows


def when_minhash(args, tmp) -> list:
    """Exact against default minhash and 1024 permutations on long histories, n-gram sets, a large bucket."""
    cases = []
    if args.large:
        path = os.path.join(tmp, "large.parquet")
        synth(path, users=args.large, items=50_000, mean_len=40, zipf=1.0, seed=1)
        cases.append((f"synthetic {args.large:,} users (one bucket)", path, {}))
    if args.long:
        for metric in ("jaccard", "ngram"):
            cases.append((f"{os.path.basename(args.long)}, max-len 200, {metric}", args.long,
                          dict(max_len=200, metric=metric)))
    rows = []
    for name, path, kw in cases:
        exact, t_exact, _ = run_simmine(path, tmp, **kw)
        results = [("simmine exact", exact, t_exact, {})]
        for perm in (128, 1024):
            got, t, m = run_simmine(path, tmp, method="minhash", num_perm=perm, **kw)
            results.append((f"simmine minhash (num_perm {perm})", got, t, m))
        rows += report(name, len(exact), results, exact)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--cities", type=int, default=8, help="cities of the bucketed synthetic log")
    ap.add_argument("--large", type=int, default=0, help="users of a one-bucket synthetic log (0: none)")
    ap.add_argument("--long", default=None, help="a real log mined at --max-len 200 (jaccard and ngram)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = []
        if os.path.exists(BEAUTY):
            logs.append(("Amazon Beauty", BEAUTY, None))
        path = os.path.join(tmp, "synth.parquet")
        synth(path, users=args.users, items=50_000, mean_len=40, zipf=1.0, cities=args.cities, seed=1)
        logs.append((f"synthetic {args.users:,} users", path, None))
        logs.append((f"synthetic {args.users:,} users, bucketed by city ({args.cities})", path, "city"))
        for name, path, bucket in logs:
            seqs = load_sequences(path)
            sets = [set(seqs.items[seqs.indptr[i]:seqs.indptr[i + 1]].tolist()) for i in range(seqs.n)]
            kw = {"bucket_by": bucket} if bucket else {}
            exact, t_exact, _ = run_simmine(path, tmp, **kw)
            results = [("simmine exact", exact, t_exact, {})]
            for perm in MINHASH_PERMS:
                got, t, m = run_simmine(path, tmp, method="minhash", num_perm=perm, **kw)
                results.append((f"simmine minhash (num_perm {perm})", got, t, m))
            for setting in FIXED_CANDIDATES:
                got, t, m = run_simmine(path, tmp, method="minhash", **setting, **kw)
                results.append((f"simmine minhash (num_perm {setting['num_perm']}, candidates "
                                f"{setting['candidates']})", got, t, m))
            for setting in FAISS_SETTINGS:
                got, t, m = run_simmine(path, tmp, method="faiss", **setting, **kw)
                label = ", ".join(f"{k} {v}" for k, v in setting.items() if k != "index")
                results.append((f"simmine faiss {setting['index']} ({label})", got, t, m))
            if not bucket:  # datasketch has no buckets: one LSH over the whole log
                for threshold in DATASKETCH_THRESHOLDS:
                    ds, t_ds = run_datasketch(sets, threshold)
                    results.append((f"datasketch LSH (threshold {threshold})", ds, t_ds, {}))
            rows += report(name, seqs.n, results, exact)
        rows += when_minhash(args, tmp)
    summary = target_ratios(rows)
    print("\n".join(summary))
    with open(os.path.join(args.out, "approx.json"), "w") as f:
        json.dump(rows, f, indent=2)
    lines = ["| log | N | method | route | seconds | recall@10 | manifest estimate |",
             "|---|---:|---|---|---:|---:|---:|"]
    lines += [f"| {r['log']} | {r['N']:,} | {r['method']} | {r['route']} | {r['seconds']:.2f} | "
              f"{r['recall@10']:.4f} | "
              f"{'' if r['estimated_recall'] is None else format(r['estimated_recall'], '.4f')} |"
              for r in rows]
    with open(os.path.join(args.out, "approx.md"), "w") as f:
        f.write("\n".join(lines + [""] + summary) + "\n")
    plot(rows, os.path.join(args.out, "approx.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
