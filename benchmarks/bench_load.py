"""The one-user-per-line reader (docs/input.md): tokens per second and peak memory on a large text log.

Writes a synthetic log as text, one user per line (``user item item ...``, the format SASRec and ICLRec
ship), then reads it with ``simmine.readers.read_log`` in a fresh process, twice (cold, then warm page
cache), and prints tokens/s and the process's peak RSS.

    python benchmarks/bench_load.py --out bench-out [--users 1800000]     # about 253 MB, 72.8M tokens
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import write_report  # noqa: E402

READ = """
import sys, time, resource
from simmine.readers import read_log
times = []
for _ in range(2):
    t = time.perf_counter()
    log = read_log(sys.argv[1], fmt="lines")
    times.append(time.perf_counter() - t)
    rows = log.table.num_rows
    del log
print(rows, *times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_lines(path: str, users: int, seed: int = 1) -> int:
    """Users with log-normal lengths (mean about 40) of Zipf items; returns the number of tokens."""
    rng = np.random.default_rng(seed)
    lengths = np.maximum(2, rng.lognormal(3.5, 0.6, size=users).astype(np.int64))
    items = (rng.zipf(1.3, size=int(lengths.sum())) % 1_000_000).astype(np.int64)
    ends = np.cumsum(lengths)
    with open(path, "w") as f:
        for u, (a, b) in enumerate(zip(ends - lengths, ends)):
            f.write(f"{u} {' '.join(map(str, items[a:b].tolist()))}\n")
    return int(lengths.sum()) + users


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=1_800_000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "log.txt")
        tokens = write_lines(path, args.users)
        size = os.path.getsize(path)
        r = subprocess.run([sys.executable, "-c", READ, path], capture_output=True, text=True, check=True)
    rows, cold, warm, rss_kb = r.stdout.split()
    cold, warm = float(cold), float(warm)
    res = {"bytes": size, "tokens": tokens, "rows": int(rows), "cold_s": round(cold, 3), "warm_s": round(warm, 3),
           "tokens_per_s_warm": round(tokens / warm), "peak_rss_gb": round(int(rss_kb) / 1e6, 2)}
    lines = [f"one user per line: {size / 1e6:.0f} MB, {tokens / 1e6:.1f}M tokens, {int(rows):,} interactions",
             f"  read_log: {cold:.2f} s first read, {warm:.2f} s warm: {tokens / warm / 1e6:.1f}M tokens/s "
             f"(aim >= 20M), peak RSS {int(rss_kb) / 1e6:.2f} GB"]
    write_report(args.out, "load", res, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
