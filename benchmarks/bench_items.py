"""Item graphs and item neighbours (docs/items.md): figures and ratios in one run.

1. Amazon Beauty: every paper's graph or table (MVCrec, GCL4SR, CoSeRec's ItemCF and ItemCF-IUF, a plain
   co-occurrence count) end to end: `simmine items ...` in a fresh process, log file in, Arrow out.
2. ItemCF cosine top-50 over a MovieLens-20M-sized synthetic log (27k items, 138k users, 20M interactions,
   `simmine synth --users 138000 --items 27000 --mean-len 145 --seed 1`): simmine end to end against implicit's
   `CosineRecommender(K=51).fit` + `similar_items` on a prebuilt user×item CSR (compute only, 2 threads) and
   end to end (from the Parquet file), the better of two runs each, the neighbours compared.
3. Item embedding top-10, 20k items × 1024 dims (SRA-CL's size): compute only and end to end.

    python benchmarks/bench_items.py --out bench-out            # peers: pip install implicit scipy
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import timed_cli, warm, write_report  # noqa: E402

BEAUTY = os.path.join(HERE, "..", "..", "shared", "data", "beauty.txt")
GRAPHS = {
    "MVCrec": ["--window", "3", "--weight", "binary", "--self-loops", "--normalize", "sym"],
    "GCL4SR": ["--window", "3", "--weight", "inverse-distance", "--normalize", "gcl4sr"],
    "CoSeRec ItemCF": ["--window", "0", "--count", "set", "--normalize", "cosine", "--k", "1"],
    "CoSeRec ItemCF-IUF": ["--window", "0", "--count", "set", "--weight", "iuf", "--normalize", "cosine", "--k", "1"],
    "ItemCF cosine top-10 (kernels)": ["--metric", "cosine", "--k", "10"],
    "co-occurrence counts, window 1, directed": ["--window", "1", "--directed"],
}


def cli_items(out: str, *flags) -> dict:
    r = timed_cli("items", out, *flags)
    m = r.pop("manifest")
    return {**r, "edges": m["edges"], "stages_s": m["elapsed_s"]}


def beauty(path: str, work: str) -> dict:
    return {name: cli_items(os.path.join(work, f"b{i}"), "--input", path, *flags)
            for i, (name, flags) in enumerate(GRAPHS.items())}


def implicit_itemcf(log: str, k: int) -> dict:
    """implicit's item-item cosine on the log's user×item 0/1 CSR: compute only (the CSR built before the
    clock starts) and end to end (from reading the Parquet file, codes by np.unique)."""
    import pyarrow.parquet as pq
    import scipy.sparse as sp
    from implicit.nearest_neighbours import CosineRecommender

    begin = time.perf_counter()
    t = pq.read_table(log, columns=["user_id", "item_id"])
    _, u = np.unique(t.column("user_id").to_numpy(), return_inverse=True)
    items, i = np.unique(t.column("item_id").to_numpy(), return_inverse=True)
    x = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(u.max() + 1, len(items)))
    x.data[:] = 1.0
    start = time.perf_counter()
    model = CosineRecommender(K=k + 1, num_threads=2)
    model.fit(x, show_progress=False)
    ids, scores = model.similar_items(np.arange(len(items)), N=k + 1)
    end = time.perf_counter()
    return {"seconds": round(end - start, 3), "end_to_end_s": round(end - begin, 3), "ids": ids, "scores": scores,
            "items": items}


def same_neighbours(graph, peer: dict, k: int) -> dict:
    """Per item, the peer's top k (itself dropped) against simmine's: identical scores (to 1e-5, float32
    arithmetic in the peer), identical neighbour sets, and sets that differ only in items tied with the k-th
    score (either side may keep any of them)."""
    codes = graph.codes(peer["items"])
    off, nbr, w = graph.csr()
    same_sets = only_ties = close_scores = 0
    for row, code in enumerate(codes.tolist()):
        ids, sc = peer["ids"][row], peer["scores"][row]
        keep = ids != row
        ids, sc = codes[ids[keep]][:k], sc[keep][:k]
        mine, mine_s = nbr[off[code]:off[code + 1]].astype(np.int64), w[off[code]:off[code + 1]]
        close_scores += len(sc) == len(mine_s) and np.allclose(np.sort(sc), np.sort(mine_s), atol=1e-5)
        theirs, ours = set(ids.tolist()), set(mine.tolist())
        same_sets += theirs == ours
        kth = float(mine_s[-1]) if len(mine_s) else 0.0
        differing = [s for n, s in zip(mine.tolist(), mine_s.tolist()) if n not in theirs] + \
                    [s for n, s in zip(ids.tolist(), sc.tolist()) if n not in ours]
        only_ties += all(abs(s - kth) <= 1e-5 for s in differing)
    n = len(codes)
    return {"items": n, "identical_scores": round(close_scores / n, 4), "identical_sets": round(same_sets / n, 4),
            "sets_differ_only_at_tied_cut": round(only_ties / n, 4)}


def itemcf_large(work: str, log: str, k: int) -> dict:
    import simmine

    if not os.path.exists(log):
        from simmine.synth import synth

        synth(log, users=138_000, items=27_000, mean_len=145, seed=1)
    warm(log)
    # the better of two runs each: on a shared machine the first process after a large one pays for the
    # kernel's page reclaim (1-2 s of load and grouping here), whichever tool it is
    runs = [cli_items(os.path.join(work, f"ml20-{r}"), "--input", log, "--metric", "cosine", "--k", str(k),
                      "--split", "none") for r in range(2)]
    ours = min(runs, key=lambda r: r["wall_s"])
    res = {"simmine_end_to_end": ours, "simmine_runs_s": [r["wall_s"] for r in runs]}
    try:
        peers = [implicit_itemcf(log, k) for _ in range(2)]
    except ImportError:
        res["implicit"] = "not installed (pip install implicit scipy)"
        return res
    peer = {"seconds": min(p["seconds"] for p in peers), "end_to_end_s": min(p["end_to_end_s"] for p in peers),
            **{key: peers[0][key] for key in ("ids", "scores", "items")}}
    res["implicit_runs_s"] = [[p["seconds"], p["end_to_end_s"]] for p in peers]
    res["implicit_compute_only_s"] = peer["seconds"]
    res["implicit_end_to_end_s"] = peer["end_to_end_s"]
    res["ratio_end_to_end"] = round(peer["seconds"] / ours["wall_s"], 2)
    res["ratio_both_end_to_end"] = round(peer["end_to_end_s"] / ours["wall_s"], 2)
    res["ratio_kernel_only"] = round(peer["seconds"] / ours["stages_s"]["edges"], 2)
    res["check"] = same_neighbours(simmine.open_items(os.path.join(work, "ml20-0")), peer, k)
    return res


def embeddings(work: str, n: int = 20_000, d: int = 1024, k: int = 10) -> dict:
    from simmine.graphs.embedding import embedding_neighbours

    from simmine import _native as native
    from simmine.backends import cpp

    v = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)  # as a float32 file is read
    t = time.perf_counter()
    embedding_neighbours(v, k, "cosine")
    compute = time.perf_counter() - t
    screen = native.core.embed_screen() if cpp.available() else ""
    route = {"amx": "AMX bfloat16 screen", "avx512-bf16": "AVX-512 BF16 screen"}.get(screen, "float32 GEMM")
    log = os.path.join(work, "emb-log.txt")
    with open(log, "w") as f:  # every item in one line each, so the log has n items in sorted order
        for u in range(0, n, 5):
            f.write(f"u{u} " + " ".join(str(x) for x in range(u, min(u + 5, n))) + "\n")
    np.save(os.path.join(work, "emb.npy"), v)
    e2e = cli_items(os.path.join(work, "emb"), "--input", log, "--split", "none", "--embeddings",
                    os.path.join(work, "emb.npy"), "--k", str(k))
    return {"items": n, "dims": d, "k": k, "route": route, "compute_only_s": round(compute, 3), "end_to_end": e2e}


def report(res: dict) -> list:
    lines = ["Amazon Beauty, end to end (target < 1 s each):"]
    for name, r in res["beauty"].items():
        lines.append(f"  {name:42s} {r['wall_s']:.2f} s, {r['edges']:,} edges")
    c = res["itemcf"]
    lines.append("ItemCF cosine top-50, 27k items x 138k users, 20M interactions:")
    lines.append(f"  simmine end to end {c['simmine_end_to_end']['wall_s']:.2f} s (kernel "
                 f"{c['simmine_end_to_end']['stages_s']['edges']:.2f} s)")
    if "implicit_compute_only_s" in c:
        lines.append("  implicit CosineRecommender fit + similar_items (compute only) "
                     f"{c['implicit_compute_only_s']:.2f} s:"
                     f" {c['ratio_end_to_end']}x end to end, {c['ratio_kernel_only']}x kernel only; {c['check']}")
        lines.append("  implicit end to end (Parquet read, codes, CSR, fit, similar_items) "
                     f"{c['implicit_end_to_end_s']:.2f} s:"
                     f" {c['ratio_both_end_to_end']}x with both end to end")
    e = res["embeddings"]
    lines.append(f"Embedding top-{e['k']}, {e['items']:,} x {e['dims']} ({e['route']}): "
                 f"compute {e['compute_only_s']:.2f} s, "
                 f"end to end {e['end_to_end']['wall_s']:.2f} s (target < 2 s)")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--beauty", default=BEAUTY)
    ap.add_argument("--synthetic", default=None, help="the ML-20M-sized log (made when missing)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        res = {"beauty": beauty(args.beauty, work),
               "itemcf": itemcf_large(work, args.synthetic or os.path.join(work, "ml20m-synth.parquet"), 50),
               "embeddings": embeddings(work)}
    for key in ("ids", "scores", "items"):
        res["itemcf"].pop(key, None)
    write_report(args.out, "items", res, report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
