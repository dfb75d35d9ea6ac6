"""A bucketed exact build on a local Ray cluster, and what it implies for 20M sequences on N nodes.

The log has city×day buckets (Zipf cities, uniform days), so every anchor is compared only inside its
bucket and the work grows linearly with the number of buckets. The build runs once with --engine ray and
once with --engine local (same output, checked), measuring wall time, peak memory of the whole process tree
(driver, raylet, object store, workers; sampled every 0.2 s), Ray tasks per second and the bytes that go
through the object store (the features and plan, put once, and every task's returned lists).

From those figures the script extrapolates, on paper, a 20M-sequence job to a cluster of N CPU nodes:
work per anchor is constant at a fixed bucket size, so the time is the measured anchors per core-second
spread over N·cores, plus the per-node load and write. The node price is an input (--node-hour-usd), not a
measurement.

    python benchmarks/bench_scale.py --out bench-out [--users 1000000] [--cities 5] [--days 20]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

import simmine
from simmine.synth import synth


class PeakRSS:
    """Peak summed RSS of this process and all its descendants (Ray's raylet, store and workers)."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed_build(path, out, engine):
    with PeakRSS() as rss:
        t = time.perf_counter()
        simmine.build(input=path, out=out, metric="jaccard", k=10, bucket_by="city,day", engine=engine, quiet=True)
        elapsed = time.perf_counter() - t
    return elapsed, rss.peak, simmine.open(out).manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--cities", type=int, default=5)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--target", type=int, default=20_000_000, help="sequences of the extrapolated job")
    ap.add_argument("--node-cores", type=int, default=16)
    ap.add_argument("--node-hour-usd", type=float, default=0.80, help="assumed price of one node-hour")
    ap.add_argument("--log", default=None, help="reuse this synthetic log instead of writing one")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.log or os.path.join(tmp, "log.parquet")
        if not args.log:
            synth(path, users=args.users, items=args.items, mean_len=40, zipf=1.0, cities=args.cities,
                  days=args.days, seed=3)
        t_ray, rss_ray, m_ray = timed_build(path, os.path.join(tmp, "ray"), "ray")
        t_loc, rss_loc, m_loc = timed_build(path, os.path.join(tmp, "local"), "local")
        same = all(m_ray["files"][f]["sha256"] == m_loc["files"][f]["sha256"]
                   for f in m_loc["files"] if f.startswith(("weak", "strong")))
        seqs = simmine.open(os.path.join(tmp, "local")).sequences()
        _, sizes = np.unique(seqs.column("bucket").to_numpy(zero_copy_only=False), return_counts=True)
        n = m_ray["n_anchors"]
        entries = len(seqs.column("history").combine_chunks().values)  # >= the unique items put as codes
        store_in = entries * 4 + (n + 1) * 8 + 2 * 8 * n  # features CSR (int32 codes, int64 ptr) + plan
        store_out = m_ray["pairs"]["weak_kept"] * 8 + (n + m_ray["ray"]["tasks"]) * 8
    cores = os.cpu_count() or 1
    score_s = m_ray["elapsed_s"]["score"]
    per_core = n / (score_s * cores)  # anchors per core-second, buckets of this size
    fixed = t_ray - score_s           # load, prepare, strong, write (per node, proportional to its share)
    row = {
        "N": n, "buckets": int(len(sizes)),
        "bucket_size": {"mean": float(sizes.mean()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "compared_pairs": m_ray["pairs"]["compared"],
        "ray": {"seconds": round(t_ray, 2), "peak_rss_gib": round(rss_ray / 2**30, 2), "tasks": m_ray["ray"]["tasks"],
                "tasks_per_s": round(m_ray["ray"]["tasks"] / score_s, 3), "stages": m_ray["elapsed_s"],
                "object_store_bytes_in_upper_bound": int(store_in), "object_store_bytes_out": int(store_out)},
        "local": {"seconds": round(t_loc, 2), "peak_rss_gib": round(rss_loc / 2**30, 2)},
        "identical_output": bool(same),
        "anchors_per_core_second": round(per_core, 1),
        "machine_cores": cores,
    }
    plan = []
    for nodes in (1, 4, 16, 64):
        cores_total = nodes * args.node_cores
        seconds = args.target / (per_core * cores_total) + fixed * (args.target / n) / nodes
        plan.append({"nodes": nodes, "cores": cores_total, "hours": round(seconds / 3600, 3),
                     "usd": round(seconds / 3600 * nodes * args.node_hour_usd, 2)})
    row["extrapolation"] = {"target_sequences": args.target, "node_cores": args.node_cores,
                            "node_hour_usd_assumed": args.node_hour_usd, "plans": plan}
    with open(os.path.join(args.out, "scale.json"), "w") as f:
        json.dump(row, f, indent=2)
    lines = [f"N = {n:,} sequences in {len(sizes)} city×day buckets (mean {sizes.mean():,.0f}, max {sizes.max():,}), "
             f"{row['compared_pairs']:,} compared pairs, jaccard top-10, {cores} cores",
             f"ray:   {t_ray:.1f} s, peak RSS {rss_ray / 2**30:.2f} GiB (process tree), {m_ray['ray']['tasks']} tasks, "
             f"{row['ray']['tasks_per_s']} tasks/s, object store ≤ {store_in / 1e6:.0f} MB in (features, once) + "
             f"{store_out / 1e6:.0f} MB out (lists)",
             f"local: {t_loc:.1f} s, peak RSS {rss_loc / 2**30:.2f} GiB; identical output: {same}",
             f"{per_core:,.0f} anchors per core-second; {args.target:,} sequences on N nodes of "
             f"{args.node_cores} cores (assumed ${args.node_hour_usd}/node-hour):"]
    lines += [f"  {p['nodes']:>3} nodes: {p['hours']:.2f} h, ${p['usd']:.2f}" for p in plan]
    with open(os.path.join(args.out, "scale.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
