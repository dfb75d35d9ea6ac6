"""Speed of this checkout against another revision, interleaved in one run (for refactors that promise no
change in speed; output_digest.py checks the bytes).

The other revision is checked out into a temporary git worktree and its C++ core built in place. Each task
(the workloads bench_cpu, bench_prefix and bench_items time, end to end through ``simmine.build`` or
``simmine.items`` in a fresh process) runs alternately on both trees, ``--reps`` times each, so both see the
same machine load; the table gives medians of the build's total and of its main stage, and their ratios.

    python benchmarks/compare_revisions.py --base b84a2f9 --out bench-out
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEAUTY = os.path.join(ROOT, "..", "shared", "data", "beauty.txt")

RUN = """
import json, sys, simmine
kind, kw = sys.argv[1], json.loads(sys.argv[2])
out = (simmine.build if kind == "build" else simmine.items)(quiet=True, **kw)
print(json.dumps(simmine.open(out).manifest["elapsed_s"] if kind == "build" else
                 json.load(open(out + "/manifest.json"))["elapsed_s"]))
"""


def checkout(base: str, where: str) -> str:
    """A worktree of ``base`` with its C++ core built in place."""
    tree = os.path.join(where, "base")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, base], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, check=True,
                   capture_output=True, env={**os.environ, "SIMMINE_REQUIRE_CPP": "1"})
    return tree


def logs(where: str) -> dict:
    from simmine.synth import synth

    out = {}
    for n in (5_000, 20_000):
        parquet = os.path.join(where, f"synth-{n}.parquet")
        synth(parquet, users=n, items=50_000, mean_len=40, zipf=1.0, seed=1)
        import pyarrow.parquet as pq

        t = pq.read_table(parquet)
        users, items = t.column("user_id").to_numpy(), t.column("item_id").to_numpy()
        order = np.argsort(users, kind="stable")
        lines = os.path.join(where, f"synth-{n}.txt")
        with open(lines, "w") as f:
            bounds = np.flatnonzero(np.diff(users[order])) + 1
            for part in np.split(order, bounds):
                f.write(f"{users[part[0]]} " + " ".join(map(str, items[part])) + "\n")
        out[n] = lines
    vectors = np.random.default_rng(0).standard_normal((12_101, 1024)).astype(np.float32)
    out["vectors"] = os.path.join(where, "items.npy")
    np.save(out["vectors"], vectors)
    return out


def tasks(paths: dict) -> list:
    """(name, kind, keywords, main stage) of every task compared."""
    big, small = paths[20_000], paths[5_000]
    return [
        ("jaccard top-10, 20k", "build", {"input": big, "metric": "jaccard", "k": 10}, "mine"),
        ("jaccard >= 0.5, 20k", "build", {"input": big, "metric": "jaccard", "min_sim": 0.5}, "mine"),
        ("tfidf top-10, 20k", "build", {"input": big, "metric": "tfidf", "k": 10}, "mine"),
        ("levenshtein top-10, 5k", "build", {"input": small, "metric": "levenshtein", "k": 10}, "mine"),
        ("Beauty prefix jaccard top-20", "build", {"input": BEAUTY, "anchors": "prefix", "k": 20}, "mine"),
        ("Beauty prefix tfidf top-20", "build", {"input": BEAUTY, "anchors": "prefix", "metric": "tfidf",
                                                 "k": 20}, "mine"),
        ("Beauty items ItemCF top-50", "items", {"input": BEAUTY, "normalize": "cosine", "count": "set",
                                                "window": 0, "k": 50}, "edges"),
        ("Beauty items embeddings top-10", "items", {"input": BEAUTY, "embeddings": paths["vectors"], "k": 10},
         "edges"),
    ]


def timed(tree: str, kind: str, kw: dict, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run([sys.executable, "-c", RUN, kind, json.dumps({**kw, "out": out})], env=env, cwd=tree,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the revision to compare against (a commit, tag or branch)")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="run the tasks whose name holds this text")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as where:
        base = checkout(args.base, where)
        try:
            rows = []
            for name, kind, kw, stage in tasks(logs(where)):
                if args.only not in name:
                    continue
                runs = {"base": [], "head": []}
                for rep in range(args.reps):
                    for side, tree in (("base", base), ("head", ROOT))[::(1 if rep % 2 == 0 else -1)]:
                        runs[side].append(timed(tree, kind, kw, os.path.join(where, f"o-{side}")))
                med = {side: {key: statistics.median(r[key] for r in rs) for key in ("total", stage)}
                       for side, rs in runs.items()}
                rows.append({"task": name, "stage": stage, "base": med["base"], "head": med["head"],
                             "ratio_total": med["head"]["total"] / med["base"]["total"],
                             "ratio_stage": med["head"][stage] / med["base"][stage]})
                print(f"{name:34s} total {med['base']['total']:.3f} -> {med['head']['total']:.3f} s "
                      f"({rows[-1]['ratio_total']:.3f}x), {stage} {med['base'][stage]:.3f} -> "
                      f"{med['head'][stage]:.3f} s ({rows[-1]['ratio_stage']:.3f}x)", flush=True)
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", base], capture_output=True)
    result = {"machine": machine(), "base": args.base, "reps": args.reps, "tasks": rows}
    with open(os.path.join(args.out, "compare_revisions.json"), "w") as f:
        json.dump(result, f, indent=1)
    m = result["machine"]
    lines = [f"{m['cpu']}, {m['cpus']} cores; head against {args.base}, medians of {args.reps} interleaved runs", "",
             "| task | base total s | head total s | ratio | main stage | base s | head s | ratio |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['base']['total']:.3f} | {r['head']['total']:.3f} | {r['ratio_total']:.3f} "
                     f"| {r['stage']} | {r['base'][r['stage']]:.3f} | {r['head'][r['stage']]:.3f} | "
                     f"{r['ratio_stage']:.3f} |")
    with open(os.path.join(args.out, "compare_revisions.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
