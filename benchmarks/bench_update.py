"""`simmine update` against a full rebuild, in the same run, with byte identity of every data file checked.

Two cases, each end to end as a user runs them (a fresh `simmine` process, log file -> Arrow):
- user anchors: a `simmine synth` log with city×day buckets (the shape of bench_scale.py), built, then
  updated with new events for 1% and for 10% of its users (1-3 each, after the log's last timestamp);
- prefix anchors: Amazon Beauty (one user per line, no timestamps: a line's order is time), its last events
  held out as the delta: the final event of randomly drawn users until 1% of all events are drawn; and
  MovieLens-100k (RecBole's atomic file) with its last 1% of events by timestamp as the delta.
Each update writes a new directory (--out), so the base build is reused; the rebuild reads the logs
concatenated into one file, as `simmine build --like OUT --input OLD+NEW` would.

    python benchmarks/bench_update.py --out bench-out [--users 1000000] [--fractions 0.01,0.1]
    python benchmarks/bench_update.py --out bench-out --skip-synth --beauty ../shared/data/beauty.txt
    python benchmarks/bench_update.py --out bench-out --skip-synth --beauty '' --ml100k ml-100k.inter
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import timed_cli, warm, write_report  # noqa: E402


def data_files(manifest: dict) -> dict:
    return {name: info["sha256"] for name, info in manifest["files"].items()}


def synth_delta(base: str, fraction: float, seed: int, path: str) -> int:
    """New events (1-3, items drawn from the log's own events, after its last timestamp) for ``fraction`` of
    the users of ``base``, each in its user's city and day; returns the users changed."""
    table = pq.read_table(base)
    rng = np.random.default_rng(seed)
    users = table.column("user_id").to_numpy()
    first = np.unique(users, return_index=True)[1]
    chosen = rng.choice(len(first), size=max(1, int(round(fraction * len(first)))), replace=False)
    rows = first[np.sort(chosen)]
    per = rng.integers(1, 4, size=len(rows))
    at = np.repeat(rows, per)
    cols = {name: table.column(name).take(pa.array(at)) for name in table.column_names}
    cols["item_id"] = table.column("item_id").take(pa.array(rng.integers(0, table.num_rows, size=len(at))))
    last = int(pa.compute.max(table.column("timestamp")).as_py())
    cols["timestamp"] = pa.array(last + 1 + np.arange(len(at), dtype=np.int64))
    pq.write_table(pa.table(cols, schema=table.schema), path)
    return len(rows)


def concat(paths: list, out: str) -> None:
    if out.endswith(".inter"):
        concat_inter(paths, out)
        return
    if out.endswith(".parquet"):
        pq.write_table(pa.concat_tables([pq.read_table(p) for p in paths]), out)
        return
    with open(out, "wb") as f:
        for p in paths:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, f)


def beauty_split(src: str, fraction: float, seed: int, base: str, delta: str) -> int:
    """Holds out the final event of randomly drawn users (each at most once, keeping two or more events) until
    ``fraction`` of all events are held out; returns the events held out."""
    lines = [line.split() for line in open(src) if line.strip()]
    total = sum(len(x) - 1 for x in lines)
    rng = np.random.default_rng(seed)
    drawn = [i for i in rng.permutation(len(lines)) if len(lines[i]) > 3][:max(1, int(round(fraction * total)))]
    held = set(drawn)
    with open(base, "w") as b:
        for i, x in enumerate(lines):
            b.write(" ".join(x[:-1] if i in held else x) + "\n")
    with open(delta, "w") as d:
        for i in sorted(held):
            d.write(f"{lines[i][0]} {lines[i][-1]}\n")
    return len(held)


def time_split(src: str, fraction: float, base: str, delta: str) -> int:
    """A RecBole atomic file (.inter) cut at a time: the last ``fraction`` of its events by timestamp (all ties of
    the cut's timestamp included) become the delta; returns the events held out."""
    lines = open(src).read().splitlines()
    header, rows = lines[0], lines[1:]
    col = [name.split(":")[0] for name in header.split("\t")].index("timestamp")
    ts = np.array([float(r.split("\t")[col]) for r in rows])
    cut = np.sort(ts)[int(len(ts) * (1 - fraction))]
    for path, keep in ((base, ts < cut), (delta, ts >= cut)):
        with open(path, "w") as f:
            f.write("\n".join([header] + [r for r, k in zip(rows, keep) if k]) + "\n")
    return int((ts >= cut).sum())


def concat_inter(paths: list, out: str) -> None:
    """Atomic files joined under one header."""
    with open(out, "w") as f:
        for i, p in enumerate(paths):
            lines = open(p).read().splitlines()
            f.write("\n".join(lines if i == 0 else lines[1:]) + "\n")


def compare(work: str, tag: str, base_log: str, delta: str, build_flags: list, update_flags=()) -> dict:
    """Builds base_log, then times the update by delta beside the rebuild of both concatenated."""
    slug = "".join(c if c.isalnum() else "-" for c in tag).strip("-")
    base_out, up_out, re_out = (os.path.join(work, f"{slug}-{k}") for k in ("base", "updated", "rebuilt"))
    both = os.path.join(work, f"{slug}-both{os.path.splitext(base_log)[1]}")
    concat([base_log, delta], both)
    for p in (base_log, delta, both):
        warm(p)
    base = timed_cli("build", base_out, "--input", base_log, *build_flags)
    update = timed_cli("update", up_out, base_out, "--input", delta, *update_flags)
    rebuild = timed_cli("build", re_out, "--input", both, *build_flags)
    same = data_files(update["manifest"]) == data_files(rebuild["manifest"])
    row = {"tag": tag, "flags": build_flags, "base_build": {k: base[k] for k in ("wall_s", "peak_rss_gb")},
           "update": {k: update[k] for k in ("wall_s", "peak_rss_gb")},
           "update_stages_s": update["manifest"]["elapsed_s"], "update_counts": update["manifest"]["update"],
           "rebuild": {k: rebuild[k] for k in ("wall_s", "peak_rss_gb")},
           "rebuild_stages_s": rebuild["manifest"]["elapsed_s"], "n_anchors": rebuild["manifest"]["n_anchors"],
           "ratio": round(rebuild["wall_s"] / update["wall_s"], 2), "identical": same}
    for d in (up_out, re_out):
        shutil.rmtree(d, ignore_errors=True)
    return row


def line(r: dict) -> str:
    u = r["update_counts"]
    return (f"{r['tag']:<34} N={r['n_anchors']:>9,}  update {r['update']['wall_s']:>7.2f} s "
            f"({r['update']['peak_rss_gb']:.2f} GB)  rebuild {r['rebuild']['wall_s']:>7.2f} s "
            f"({r['rebuild']['peak_rss_gb']:.2f} GB)  {r['ratio']:>6.1f}x  identical={r['identical']}  "
            f"changed {u['anchors_new_or_changed']:,}, copied {u['lists_copied']:,}, repaired "
            f"{u['lists_repaired']:,}, rescored {u['lists_rescored']:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--cities", type=int, default=5)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--fractions", default="0.01,0.1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--beauty", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                     "beauty.txt"))
    ap.add_argument("--beauty-metrics", default="jaccard,levenshtein")
    ap.add_argument("--ml100k", default=None, help="ml-100k.inter (RecBole's atomic file; its last 1%% of events "
                                                   "by time are the delta)")
    ap.add_argument("--ml100k-metrics", default="jaccard,ngram,levenshtein")
    args = ap.parse_args()
    work = os.path.join(args.out, "update-work")
    os.makedirs(work, exist_ok=True)
    rows = []
    if not args.skip_synth:
        from simmine.synth import synth

        log = os.path.join(work, f"synth-{args.users}-s{args.seed}.parquet")
        if not os.path.exists(log):
            synth(log, users=args.users, items=args.items, mean_len=40, zipf=1.0, cities=args.cities,
                  days=args.days, seed=args.seed)
        flags = ["--metric", "jaccard", "--k", "10", "--bucket-by", "city,day"]
        for f in [float(x) for x in args.fractions.split(",")]:
            delta = os.path.join(work, f"delta-{f:g}.parquet")
            changed = synth_delta(log, f, args.seed + 1, delta)
            rows.append(compare(work, f"user, {f:.0%} of users ({changed:,})", log, delta, flags))
            print(line(rows[-1]), flush=True)
    if args.beauty and os.path.exists(args.beauty):
        base, delta = os.path.join(work, "beauty-base.txt"), os.path.join(work, "beauty-delta.txt")
        held = beauty_split(args.beauty, 0.01, args.seed, base, delta)
        for metric in args.beauty_metrics.split(","):
            flags = ["--metric", metric, "--k", "10", "--anchors", "prefix"]
            rows.append(compare(work, f"prefix, Beauty {metric}, {held:,} events", base, delta, flags))
            print(line(rows[-1]), flush=True)
    if args.ml100k and os.path.exists(args.ml100k):
        base, delta = os.path.join(work, "ml100k-base.inter"), os.path.join(work, "ml100k-delta.inter")
        held = time_split(args.ml100k, 0.01, base, delta)
        for metric in args.ml100k_metrics.split(","):
            flags = ["--metric", metric, "--k", "10", "--anchors", "prefix"]
            rows.append(compare(work, f"prefix, ML-100k {metric}, {held:,} events", base, delta, flags))
            print(line(rows[-1]), flush=True)
    write_report(args.out, "bench_update", {"rows": rows, "command": "python " + " ".join(sys.argv)},
                 [line(r) for r in rows])
    json.dumps(rows)


if __name__ == "__main__":
    main()
