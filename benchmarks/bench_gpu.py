"""GPU benchmark (needs an NVIDIA GPU with CuPy; torch for the hand-written peer).

Exact top-10 on a synthetic ML-20M-scale log (138k users × mean 144 items over 27k items, Zipf 1):
simmine's cuda backend against torch matmul + topk written by hand, both on prebuilt device-ready inputs,
neighbours compared before any time is quoted; the cpp backend on the same machine's cores for a slice of
anchors; Levenshtein cell-updates per second; and an end-to-end bucketed build (2.5M × mean 41 over 276k
items in city × day buckets). Prints a table and writes JSON and Markdown to --out.

    python benchmarks/bench_gpu.py --out bench-out [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import simmine  # noqa: E402
from simmine.backends import cpp, cuda  # noqa: E402
from simmine.metrics import prepare_features, resolve_metric  # noqa: E402
from simmine.anchors import load_sequences  # noqa: E402
from simmine.synth import synth  # noqa: E402

INT8_DENSE_OPS = 1.979e15   # H100 SXM datasheet, dense int8 tensor-core ops/s
BF16_DENSE_FLOPS = 0.989e15  # H100 SXM datasheet, dense bf16


def sync():
    import cupy

    cupy.cuda.Device().synchronize()


def timed(fn, *a, **kw):
    sync()
    t = time.perf_counter()
    out = fn(*a, **kw)
    sync()
    return out, time.perf_counter() - t


def lists(counts, cols, scores):
    ptr = np.concatenate(([0], np.cumsum(counts)))
    return [(cols[ptr[i]:ptr[i + 1]], scores[ptr[i]:ptr[i + 1]]) for i in range(len(counts))]


def agreement(a, b, atol=0.0):
    """(every score list equal, share of rows with identical neighbour sets)."""
    ok, same = len(a) == len(b), 0
    for (ca, sa), (cb, sb) in zip(a, b):
        if len(sa) != len(sb) or not np.allclose(sa, sb, rtol=0, atol=atol):
            ok = False
        else:
            same += set(ca.tolist()) == set(cb.tolist())
    return ok, same / max(len(a), 1)


def ensure_log(workdir, name, **synth_kw):
    """The synthetic log ``name`` in workdir, written on first use."""
    path = os.path.join(workdir, f"{name}.parquet")
    if not os.path.exists(path):
        synth(path, zipf=1.0, **synth_kw)
    return path


def cuda_then_cpp_slice(tile, k, warm, slice_rows):
    """cuda top-k of every row (after a warm-up on `warm` rows), then cpp on the first `slice_rows` rows as a
    parity check at scale: (cuda lists, cuda seconds, cpp figures). The device state is released after cuda."""
    import cupy

    rows = np.arange(tile.n, dtype=np.int64)
    k_row = np.full(tile.n, k, dtype=np.int64)
    cuda.select(tile, rows[:warm], k_row[:warm], 0.0)  # compile and warm up
    (c, col, sc), el = timed(cuda.select, tile, rows, k_row, 0.0)
    cuda._state.clear()
    cupy.get_default_memory_pool().free_all_blocks()
    ours = lists(c, col, sc)
    sl = min(tile.n, slice_rows)
    (cc, ccol, csc), cel = timed(cpp.select, tile, rows[:sl], k_row[:sl], 0.0)
    ok, _ = agreement(ours[:sl], lists(cc, ccol, csc))
    return ours, el, dict(cpp_slice=sl, cpp_slice_s=cel, cpp_full_estimate_s=cel * tile.n / sl, equal_to_cpp=ok,
                          threads=os.cpu_count())


def whole_build(path, out, **kw):
    """(seconds, manifest) of simmine.build from the log to its Arrow files."""
    t = time.perf_counter()
    o = simmine.build(input=path, out=out, k=10, quiet=True, **kw)
    return time.perf_counter() - t, simmine.open(o).manifest


def torch_topk(tile, k, metric, dtype, block=4096):
    """What a user writes by hand: dense rows on the GPU, blocked X·Xᵀ, scores, diagonal out, topk."""
    import torch

    n, v = tile.n, tile.vocab
    rows = torch.from_numpy(np.repeat(np.arange(n), np.diff(tile.indptr)))
    cols = torch.from_numpy(tile.indices.astype(np.int64))
    vals = torch.ones(len(cols)) if metric == "jaccard" else torch.from_numpy(
        tile.weights / np.repeat(np.where(tile.norms > 0, tile.norms, 1), np.diff(tile.indptr))).float()
    x = torch.zeros((n, v), dtype=dtype, device="cuda")
    x[rows.cuda(), cols.cuda()] = vals.cuda().to(dtype)
    lens = torch.from_numpy(np.diff(tile.indptr)).cuda().float()

    def run():
        out_s, out_c = [], []
        for lo in range(0, n, block):
            s = (x[lo:lo + block] @ x.T).float()
            if metric == "jaccard":
                s = s / (lens[lo:lo + block, None] + lens[None, :] - s).clamp_min(1)
            s[torch.arange(s.shape[0]), torch.arange(lo, lo + s.shape[0])] = 0
            v_, c_ = torch.topk(s, k, dim=1)
            out_s.append(v_.cpu())
            out_c.append(c_.cpu())
        return torch.cat(out_s).numpy(), torch.cat(out_c).numpy()

    torch.cuda.synchronize()
    run()  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    s, c = run()
    torch.cuda.synchronize()
    el = time.perf_counter() - t
    x = None  # the dense rows freed before the cache is emptied
    torch.cuda.empty_cache()
    return [(cc[ss > 0], ss[ss > 0]) for cc, ss in zip(c, s)], el


def ml20m_scale(workdir, quick, out):
    n = 20_000 if quick else 138_000
    path = ensure_log(workdir, f"ml20m-{n}", users=n, items=27_000, mean_len=144, seed=7, max_len=2000)
    t = time.perf_counter()
    seqs = load_sequences(path, max_len=2000)
    load_s = time.perf_counter() - t
    rows = np.arange(seqs.n, dtype=np.int64)
    for metric in ("jaccard", "tfidf"):
        t = time.perf_counter()
        tile = prepare_features(seqs, resolve_metric(metric)).tile(rows)
        prep_s = time.perf_counter() - t
        res = dict(task=f"{metric} top-10", n=seqs.n, vocab=tile.vocab, mean_len=float(np.diff(tile.indptr).mean()),
                   pairs=float(seqs.n) * (seqs.n - 1), load_s=load_s, prepare_s=prep_s)
        ours, el, cpp_figures = cuda_then_cpp_slice(tile, 10, warm=2048, slice_rows=3000)
        res.update(simmine_s=el, pairs_per_s=res["pairs"] / el, stats=dict(cuda.stats))
        n_pad, v_pad = cuda._pad(seqs.n), cuda._pad(tile.vocab)
        floor = 2.0 * n_pad * n_pad * v_pad / (INT8_DENSE_OPS if metric == "jaccard" else BF16_DENSE_FLOPS)
        res.update(gemm_floor_s=floor, **cpp_figures)
        import torch

        for label, dtype in (("torch fp32", torch.float32), ("torch fp16", torch.float16)):
            try:
                peer, pel = torch_topk(tile, 10, metric, dtype)
                ok, same = agreement(ours, peer, atol=1e-3)
                res[label] = dict(seconds=pel, ratio=pel / el, scores_equal_1e3=ok, same_sets=same)
            except Exception as e:  # out of memory on the dense peer, say
                res[label] = dict(error=repr(e)[:200])
        del tile
        if metric == "jaccard":  # the whole build, log to Arrow files, on each backend
            for backend in ("cuda", "cpp"):
                el, m = whole_build(path, os.path.join(workdir, f"e2e-{backend}"), max_len=2000, backend=backend)
                res[f"build_{backend}_s"] = el
                res[f"build_{backend}_stages"] = m.get("elapsed_s")
        out.append(res)
        print(json.dumps(res), flush=True)


def levenshtein(workdir, quick, out):
    n = 5_000 if quick else 20_000
    seqs = load_sequences(ensure_log(workdir, f"lev-{n}", users=n, items=50_000, mean_len=40, seed=3), max_len=50)
    tile = prepare_features(seqs, resolve_metric("levenshtein")).tile(np.arange(seqs.n, dtype=np.int64))
    lens = np.diff(tile.indptr).astype(np.float64)
    cells = lens.sum() ** 2 - (lens ** 2).sum()
    _, el, cpp_figures = cuda_then_cpp_slice(tile, 10, warm=256, slice_rows=2000)
    res = dict(task="levenshtein top-10", n=seqs.n, mean_len=float(lens.mean()), simmine_s=el,
               cell_updates_per_s=cells / el, **cpp_figures)
    out.append(res)
    print(json.dumps(res), flush=True)


def bucketed(workdir, quick, out):
    n = 250_000 if quick else 2_500_000
    path = ensure_log(workdir, f"bucketed-{n}", users=n, items=276_000, mean_len=41, seed=5, cities=10, days=25)
    for backend in ("cuda",) + (("cpp",) if quick else ()):
        el, m = whole_build(path, os.path.join(workdir, f"out-{backend}"), backend=backend,
                            bucket_by=["city", "day"])
        res = dict(task="jaccard top-10, city×day buckets", n=n, backend=backend, seconds=el,
                   timings=m.get("elapsed_s"), buckets=m.get("n_buckets"), pairs=m.get("pairs"))
        out.append(res)
        print(json.dumps(res, default=str), flush=True)


def markdown(results, gpu):
    lines = [f"GPU: {gpu}; CPU threads: {os.cpu_count()}", "",
             "| task | N | simmine cuda | pairs/s | GEMM floor | torch fp32 (ratio) | torch fp16 (ratio) "
             "| cpp, all cores (est.) | equal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "pairs_per_s" in r:
            peer = lambda key: (f"{r[key]['seconds']:.2f} s ({r[key]['ratio']:.1f}×)" if "seconds" in r.get(key, {})
                                else "n/a")
            lines.append(f"| {r['task']} | {r['n']:,} | {r['simmine_s']:.2f} s | {r['pairs_per_s']:.2e} | "
                         f"{r['gemm_floor_s']:.2f} s | {peer('torch fp32')} | {peer('torch fp16')} | "
                         f"{r['cpp_full_estimate_s']:.1f} s | {r['equal_to_cpp']} |")
    for r in results:
        if "build_cuda_s" in r:
            lines.append(f"\nWhole build (`simmine.build`, parquet log to Arrow files), {r['task']}, N={r['n']:,}: "
                         f"cuda {r['build_cuda_s']:.1f} s, cpp {r['build_cpp_s']:.1f} s "
                         f"(stages, cuda: {r['build_cuda_stages']})")
        if "cell_updates_per_s" in r:
            lines.append(f"\nLevenshtein top-10, N={r['n']:,}: {r['simmine_s']:.2f} s, "
                         f"{r['cell_updates_per_s']:.2e} cell-updates/s; cpp on all cores (est.) "
                         f"{r['cpp_full_estimate_s']:.1f} s; equal to cpp: {r['equal_to_cpp']}")
        if "backend" in r:
            lines.append(f"\nBucketed build, N={r['n']:,}, {r['backend']}: {r['seconds']:.1f} s end to end "
                         f"(stages: {r['timings']})")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--work", default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    ap.add_argument("--only", nargs="*", default=["ml20m", "levenshtein", "bucketed"])
    args = ap.parse_args()
    if not cuda.available():
        sys.exit("bench_gpu needs a usable GPU and CuPy")
    os.makedirs(args.out, exist_ok=True)
    import cupy

    gpu = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    workdir = args.work or tempfile.mkdtemp(prefix="simmine-gpu-")
    os.makedirs(workdir, exist_ok=True)
    results = []
    for name, fn in (("ml20m", ml20m_scale), ("levenshtein", levenshtein), ("bucketed", bucketed)):
        if name in args.only:
            try:
                fn(workdir, args.quick, results)
            except Exception as e:
                import traceback

                traceback.print_exc()
                results.append(dict(task=name, error=repr(e)[:500]))
            with open(os.path.join(args.out, "gpu.json"), "w") as f:
                json.dump(dict(gpu=gpu, platform=platform.platform(), results=results), f, indent=1, default=str)
    md = markdown(results, gpu)
    with open(os.path.join(args.out, "gpu.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
