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

The first engine of --engines is the build measured; a second one (local, in memory) checks that its output
is identical. With --memory-gb the measured build streams its log through spill files (simmine build
--memory-gb), which is how a 20M-sequence log fits this machine; --engines ray or --engines local then skips
the in-memory local run, which would not fit, and the identity of streamed and in-memory output is left to
the tests. The 20M run of the README, streamed on the local engine:

    simmine synth synth-20M.parquet --users 20000000 --items 1000000 --cities 5 --days 400
    python benchmarks/bench_scale.py --out bench-out --log synth-20M.parquet --memory-gb 4 --engines local \
        --max-output-gb 20 --name scale-20M
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
import pyarrow.compute as pc

import simmine
from simmine.synth import synth

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine  # noqa: E402


class PeakRSS:
    """Memory of this process and all its descendants (Ray's raylet, store and workers), sampled every
    ``every`` seconds: the summed RSS, and the summed private memory (RSS less the pages shared with files
    or other processes: memory-mapped Arrow files and the object store's shared memory, which the kernel
    can drop or which RSS counts once per process that maps it). Also the peak size of a directory (the
    build's OUT.partial, spill files included)."""

    def __init__(self, every: float = 0.5, watch_dir: str = None):
        self.every, self.peak, self.peak_private, self._stop = every, 0, 0, threading.Event()
        self.watch_dir, self.peak_disk, self._last_disk = watch_dir, 0, 0.0
        self.samples = []  # (seconds since start, summed RSS, summed private)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me, start = psutil.Process(), time.monotonic()
        while not self._stop.is_set():
            total = private = 0
            for p in [me] + me.children(recursive=True):
                try:
                    m = p.memory_info()
                    total += m.rss
                    private += m.rss - m.shared
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.peak_private = max(self.peak_private, private)
            now = time.monotonic() - start
            if not self.samples or now - self.samples[-1][0] >= 5:
                self.samples.append((round(now, 1), total, private))
            if self.watch_dir and time.monotonic() - self._last_disk > 2:
                self._last_disk = time.monotonic()
                self.peak_disk = max(self.peak_disk, dir_bytes(self.watch_dir))
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stage_peaks(samples, elapsed: dict) -> dict:
    """Peak summed RSS and private memory (GiB) within each stage, stages placed end to end in the order
    the manifest lists them (the time before the first is the input's checksum and first look)."""
    out, t0 = {}, 0.0
    for name, seconds in elapsed.items():
        if name == "total":
            continue
        inside = [s for s in samples if t0 <= s[0] <= t0 + seconds + 5]
        if inside:
            out[name] = {"rss_gib": round(max(s[1] for s in inside) / 2**30, 2),
                         "private_gib": round(max(s[2] for s in inside) / 2**30, 2)}
        t0 += seconds
    return out


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def timed_build(path, out, engine, memory_gb=None, max_output_gb=8.0):
    with PeakRSS(watch_dir=out + ".partial") as rss:
        t = time.perf_counter()
        simmine.build(input=path, out=out, metric="jaccard", k=10, bucket_by="city,day", engine=engine, quiet=True,
                      memory_gb=memory_gb, max_output_gb=max_output_gb)
        elapsed = time.perf_counter() - t
    m = simmine.open(out).manifest
    m["_memory"] = {"peak_private_gib": round(rss.peak_private / 2**30, 2),
                    "stages": stage_peaks(rss.samples, m["elapsed_s"])}
    return elapsed, rss.peak, rss.peak_disk, m


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
    ap.add_argument("--memory-gb", type=float, default=None, help="stream the build within this budget")
    ap.add_argument("--engines", default="ray,local",
                    help="the measured engine, then optionally local for the identity check: ray,local (default), "
                         "ray or local")
    ap.add_argument("--max-output-gb", type=float, default=8.0)
    ap.add_argument("--work", default=None, help="directory for the outputs (default: a temporary one)")
    ap.add_argument("--name", default="scale", help="result files NAME.json and NAME.md")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        path = args.log or os.path.join(tmp, "log.parquet")
        if not args.log:
            synth(path, users=args.users, items=args.items, mean_len=40, zipf=1.0, cities=args.cities,
                  days=args.days, seed=3)
        engines = args.engines.split(",")
        engine = engines[0]
        t_main, rss_main, disk_main, m = timed_build(path, os.path.join(tmp, "main"), engine, args.memory_gb,
                                                     args.max_output_gb)
        same = None
        if len(engines) > 1:
            t_loc, rss_loc, _, m_loc = timed_build(path, os.path.join(tmp, "local"), "local", None, args.max_output_gb)
            same = all(m["files"][f]["sha256"] == m_loc["files"][f]["sha256"] for f in m_loc["files"])
        seqs = simmine.open(os.path.join(tmp, "main")).sequences()
        sizes = pc.value_counts(seqs.column("bucket")).field("counts").to_numpy()
        n = m["n_anchors"]
        entries = sum(len(b.column("history").values) for b in seqs.to_batches())  # >= the codes put
        del seqs
        store_in = entries * 4 + (n + 1) * 8 + 2 * 8 * n  # features CSR (int32 codes, int64 ptr) + plan
        store_out = m["pairs"]["weak_kept"] * 8 + (n + (m.get("ray") or {}).get("tasks", 0)) * 8
        out_bytes = sum(f["bytes"] for f in m["files"].values())
    cores = os.cpu_count() or 1
    stages = m["elapsed_s"]
    score_s = stages["mine"]
    per_core = n / (score_s * cores)  # anchors per core-second, buckets of this size
    fixed = t_main - score_s          # load, prepare, strong, write (per node, proportional to its share)
    measured = {"engine": engine, "seconds": round(t_main, 2), "peak_rss_gib": round(rss_main / 2**30, 2),
                "peak_work_dir_gib": round(disk_main / 2**30, 2), "memory": m["_memory"], "stages": stages,
                "load_and_anchors_share": round((stages.get("load", 0) + stages.get("anchors", 0)) / t_main, 4)}
    if engine == "ray":
        measured.update({"tasks": m["ray"]["tasks"], "tasks_per_s": round(m["ray"]["tasks"] / score_s, 3),
                         "object_store_bytes_in_upper_bound": int(store_in), "object_store_bytes_out": int(store_out)})
    row = {
        "N": n, "buckets": int(len(sizes)),
        "bucket_size": {"mean": float(sizes.mean()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "compared_pairs": m["pairs"]["compared"],
        "memory_gb": args.memory_gb, "streamed": m.get("streamed"),
        "output_gb": round(out_bytes / 2**30, 2),
        "build": measured,
        "local": {"seconds": round(t_loc, 2), "peak_rss_gib": round(rss_loc / 2**30, 2)} if same is not None else None,
        "identical_output": same,
        "anchors_per_core_second": round(per_core, 1),
        "machine_cores": cores,
        "machine": machine(),
    }
    plan = []
    for nodes in (1, 4, 16, 64):
        cores_total = nodes * args.node_cores
        seconds = args.target / (per_core * cores_total) + fixed * (args.target / n) / nodes
        plan.append({"nodes": nodes, "cores": cores_total, "hours": round(seconds / 3600, 3),
                     "usd": round(seconds / 3600 * nodes * args.node_hour_usd, 2)})
    row["extrapolation"] = {"target_sequences": args.target, "node_cores": args.node_cores,
                            "node_hour_usd_assumed": args.node_hour_usd, "plans": plan}
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump(row, f, indent=2)
    lines = [f"N = {n:,} sequences in {len(sizes)} city×day buckets (mean {sizes.mean():,.0f}, max {sizes.max():,}), "
             f"{row['compared_pairs']:,} compared pairs, jaccard top-10, {cores} cores ({row['machine']['cpu']})",
             f"{engine}: {t_main:.1f} s, peak RSS {rss_main / 2**30:.2f} GiB (process tree; private "
             f"{m['_memory']['peak_private_gib']:.2f} GiB); load + anchors {measured['load_and_anchors_share']:.1%}"
             " of the build"]
    if engine == "ray":
        lines.append(f"ray: {m['ray']['tasks']} tasks, {measured['tasks_per_s']} tasks/s, object store ≤ "
                     f"{store_in / 1e6:.0f} MB in (features, once) + {store_out / 1e6:.0f} MB out (lists)")
    if args.memory_gb:
        lines.append(f"streamed with --memory-gb {args.memory_gb}: {m['streamed']['partitions']} user partitions, "
                     f"{m['streamed']['groups']} bucket groups, work directory peak {disk_main / 2**30:.1f} GiB, "
                     f"output {out_bytes / 2**30:.1f} GiB; stages (s): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
        lines.append("peak memory per stage, GiB (RSS / private): " + ", ".join(
            f"{k} {v['rss_gib']:.1f} / {v['private_gib']:.1f}" for k, v in m["_memory"]["stages"].items()))
    if same is not None:
        lines.append(f"local: {t_loc:.1f} s, peak RSS {rss_loc / 2**30:.2f} GiB; identical output: {same}")
    lines += [f"{per_core:,.0f} anchors per core-second; {args.target:,} sequences on N nodes of "
              f"{args.node_cores} cores (assumed ${args.node_hour_usd}/node-hour):"]
    lines += [f"  {p['nodes']:>3} nodes: {p['hours']:.2f} h, ${p['usd']:.2f}" for p in plan]
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
