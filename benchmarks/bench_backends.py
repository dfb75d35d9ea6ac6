"""The numba backend against the C++ core, task by task, on the same features in the same run.

Both backends mine the same prepared features (compute only: no load, no write); the outputs are compared
before any time is quoted, and each backend runs once untimed first (Numba compiles or loads its cache).

    python benchmarks/bench_backends.py --out bench-out [--users 20000] [--edit-users 5000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from simmine.backends import get_backend
from simmine.engines.local import make_plan, mine_weak
from simmine.metrics import prepare_features, resolve_metric
from simmine.select import make_selection
from simmine.anchors import load_sequences
from simmine.synth import synth

TASKS = [  # (label, metric, selection, which log)
    ("jaccard top-10", "jaccard", dict(k=10), "main"),
    ("jaccard >= 0.5 join", "jaccard", dict(min_sim=0.5), "main"),
    ("jaccard >= 0.2 join", "jaccard", dict(min_sim=0.2), "main"),
    ("ngram top-10", "ngram", dict(k=10), "main"),
    ("tfidf top-10", "tfidf", dict(k=10), "main"),
    ("tfidf >= 0.5 join", "tfidf", dict(min_sim=0.5), "main"),
    ("jaccard global alpha 0.001", "jaccard", dict(alpha=0.001, alpha_scope="global"), "main"),
    ("levenshtein top-10", "levenshtein", dict(k=10), "edit"),
]


def timed(features, plan, sel, backend):
    mine_weak(features, plan, sel, backend)  # warm-up: compile / cache load, page faults
    t = time.perf_counter()
    result = mine_weak(features, plan, sel, backend)
    return result, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--edit-users", type=int, default=5_000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cpp, nb = get_backend("cpp"), get_backend("numba")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = {}
        for key, users in (("main", args.users), ("edit", args.edit_users)):
            path = os.path.join(tmp, f"{key}.parquet")
            synth(path, users=users, items=50_000, mean_len=40, zipf=1.0, seed=1)
            logs[key] = load_sequences(path)
        for label, metric, sel_kw, log in TASKS:
            seqs = logs[log]
            features = prepare_features(seqs, resolve_metric(metric))
            plan = make_plan(seqs.n, None)
            sel = make_selection(**sel_kw)
            want, t_cpp = timed(features, plan, sel, cpp)
            got, t_nb = timed(features, plan, sel, nb)
            same = (np.array_equal(got.offsets, want.offsets) and np.array_equal(got.neighbors, want.neighbors)
                    and np.allclose(got.scores, want.scores, rtol=0, atol=1e-6))
            row = {"task": label, "N": seqs.n, "cpp_s": round(t_cpp, 3), "numba_s": round(t_nb, 3),
                   "numba_over_cpp": round(t_nb / t_cpp, 2), "identical": bool(same)}
            rows.append(row)
            print(f"{label:<28} N={seqs.n:>6,}  cpp {t_cpp:7.2f}s  numba {t_nb:7.2f}s  "
                  f"numba/cpp {row['numba_over_cpp']:5.2f}×  identical {same}", flush=True)
    with open(os.path.join(args.out, "backends.json"), "w") as f:
        json.dump(rows, f, indent=2)
    lines = ["| task | N | cpp s | numba s | numba / cpp | identical output |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['task']} | {r['N']:,} | {r['cpp_s']:.2f} | {r['numba_s']:.2f} | {r['numba_over_cpp']:.2f}× | "
              f"{r['identical']} |" for r in rows]
    with open(os.path.join(args.out, "backends.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
