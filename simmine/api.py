"""The public build: validate → load → plan → estimate → dispatch → write. No kernels here."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Optional, Sequence, Union

import numpy as np

import pyarrow as pa

from . import __version__
from .approx.faiss_ import FaissParams, check_params, mine_faiss
from .approx.minhash import MinHashParams, mine_minhash
from .backends import get_backend, set_num_threads
from .engines.local import (WeakResult, check_threshold_output, global_threshold_of, make_plan, mine_weak,
                            mine_weak_range, select_anchors, strong_entries, strong_positives)
from .errors import InputError
from .io import (FORMAT_VERSION, fault_point, sequences_table, sha256_file, strong_table, weak_table, write_json,
                 write_table)
from .metrics import Features, dense_features, load_embeddings, prepare_features, resolve_metric
from .progress import make_progress
from .select import (GlobalThreshold, Selection, check_output_size, make_selection, output_bytes,
                     weak_entries_bound)
from .sequences import Log, SequenceSet, build_sequences, read_log

METHODS = ("exact", "minhash", "faiss")
ENGINES = ("local", "ray")
ESTIMATE_SAMPLE = 256


def _bucket_list(bucket_by: Union[None, str, Sequence[str]]) -> tuple:
    if bucket_by is None:
        return ()
    if isinstance(bucket_by, str):
        bucket_by = bucket_by.split(",")
    cols = tuple(c.strip() for c in bucket_by if c.strip())
    if not cols:
        raise InputError("--bucket-by needs at least one column name")
    return cols


def _check_out(out: str) -> None:
    """Refuses to replace anything that is not an earlier simmine output."""
    if os.path.isfile(out):
        raise InputError(f"{out}: exists and is a file; --out must name a directory")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, "manifest.json")):
        raise InputError(f"{out}: exists and is not a simmine output; refusing to overwrite it")


def _estimate_bytes(seqs: SequenceSet, features: Features, plan, sel: Selection, backend) -> int:
    """Output size before computing: exact for k/alpha modes, sampled for min-sim, a lower bound for
    global alpha (its exact size is checked again once τ is known)."""
    weak = weak_entries_bound(sel, plan.bucket_size, plan.compared_pairs)
    if weak is None:
        weak = _sampled_min_sim_entries(features, plan, sel, backend)
    return output_bytes(weak, strong_entries(seqs.target_codes, seqs.bucket_codes), int(seqs.indptr[-1]), seqs.n)


def _sampled_min_sim_entries(features, plan, sel, backend) -> int:
    """Weak entries of a min-sim build, extrapolated from ESTIMATE_SAMPLE anchors selected exactly."""
    comparable = np.flatnonzero(plan.bucket_size > 1)
    if not len(comparable):
        return 0
    rng = np.random.default_rng(0)
    sample = rng.choice(comparable, size=min(len(comparable), ESTIMATE_SAMPLE), replace=False)
    lists = select_anchors(features, plan, sel, backend, sample)
    return int(round(sum(len(nbrs) for nbrs, _ in lists.values()) / len(sample) * len(comparable)))


def build(input: Optional[str] = None, out: str = "simmine-out", metric: str = "jaccard",
          alpha: Optional[float] = None, alpha_scope: str = "anchor", k: Optional[int] = None,
          min_sim: Optional[float] = None, max_per_anchor: Optional[int] = None, method: str = "exact",
          backend: Optional[str] = None, engine: str = "local", bucket_by=None, split: str = "loo",
          max_len: int = 50, compare: str = "history", ngram_n: int = 2, format: str = "auto",
          user_col: str = "user_id", item_col: str = "item_id", time_col: Optional[str] = None,
          max_output_gb: float = 8.0, threads: Optional[int] = None, quiet: bool = False,
          num_perm: int = 128, bands: Optional[int] = None, rows: Optional[int] = None,
          recall_sample: int = 500, seed: int = 0, embeddings: Optional[str] = None, index: str = "flat",
          dim: int = 256, candidates: Optional[int] = None, shard_rows: Optional[int] = None, resume: bool = False,
          ray_address: Optional[str] = None, memory_gb: Optional[float] = None,
          command: Optional[str] = None) -> str:
    """Mines strong and weak positives and writes them to ``out``; returns ``out``.

    Keyword names are the CLI flags with underscores. With ``input=None`` the built-in demo log is used.
    Raises InputError (the CLI's exit code 2) on bad input or flags, before anything is written.

    >>> import simmine
    >>> path = simmine.build(metric="jaccard", alpha=0.05, out="simmine-out", quiet=True)  # doctest: +SKIP
    >>> simmine.open(path).weak(0)                                                        # doctest: +SKIP
    """
    t0 = time.perf_counter()
    timings = {}
    m = resolve_metric(metric)
    sel = make_selection(alpha, alpha_scope, k, min_sim, max_per_anchor)
    if method not in METHODS:
        raise InputError(f"unknown --method '{method}' (available: {', '.join(METHODS)})")
    if engine not in ENGINES:
        raise InputError(f"unknown --engine '{engine}' (available: {', '.join(ENGINES)})")
    if not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise InputError(f"--max-len must be a positive integer, got {max_len}")
    if not isinstance(ngram_n, (int, np.integer)) or ngram_n < 1:
        raise InputError(f"--ngram-n must be a positive integer, got {ngram_n}")
    if not (isinstance(max_output_gb, (int, float)) and max_output_gb > 0):
        raise InputError(f"--max-output-gb must be positive, got {max_output_gb}")
    if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
        raise InputError(f"--threads must be a positive integer, got {threads}")
    for flag, value in (("--num-perm", num_perm), ("--bands", bands), ("--rows", rows), ("--dim", dim),
                        ("--candidates", candidates)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise InputError(f"{flag} must be a positive integer, got {value}")
    if not isinstance(recall_sample, (int, np.integer)) or recall_sample < 0:
        raise InputError(f"--recall-sample must be a non-negative integer, got {recall_sample}")
    shard_rows = DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows
    if not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1:
        raise InputError(f"--shard-rows must be a positive integer, got {shard_rows}")
    if engine == "ray" and method != "exact":
        raise InputError("--engine ray runs --method exact; approximate builds run on --engine local")
    if method != "exact" and sel.mode == "alpha_global":
        raise InputError("--alpha-scope global needs every pair's score: use --method exact")
    fp = FaissParams(index, int(dim), candidates, num_perm, seed, recall_sample)
    if method == "faiss":
        check_params(fp)
    if (m.name == "embedding") != (embeddings is not None):
        raise InputError("--metric embedding needs --embeddings FILE.npy" if embeddings is None else
                         "--embeddings is read only by --metric embedding")
    if m.name == "embedding" and method == "minhash":
        raise InputError("--method minhash sketches item sets; embeddings use --method exact or faiss")
    be = get_backend(backend)
    if be.name == "blas" and m.name != "embedding":
        raise InputError("--backend blas scores only --metric embedding")
    if m.name == "embedding":
        be = get_backend("blas")
    if memory_gb is not None:
        _check_streamed(memory_gb, input, method, m.name)
    if threads:
        set_num_threads(threads)
    buckets = _bucket_list(bucket_by)
    out = os.fspath(out)
    _check_out(out)
    progress = make_progress(quiet)

    seqs = log = src = None
    if input is None:
        from .demo import demo_table

        log = Log("<demo>", "demo", demo_table(), "user_id", "item_id", "timestamp", buckets, 0)
        missing = [c for c in buckets if c not in log.table.column_names]
        if missing:
            raise InputError(f"<demo>: no column '{missing[0]}' (columns: {', '.join(log.table.column_names)})")
        input_info = {"path": None, "demo": True, "bytes": None, "sha256": None}
    else:
        input = os.fspath(input)
        if memory_gb is None:
            log = read_log(input, format, user_col, item_col, time_col, buckets)
        else:
            from .stream import describe_log

            src = describe_log(input, format, user_col, item_col, time_col, buckets)
        input_info = {"path": os.path.abspath(input), "demo": False, "bytes": os.path.getsize(input),
                      "sha256": sha256_file(input)}
    if log is not None:
        seqs = build_sequences(log, split, max_len, compare)
        if seqs.n == 0:
            raise InputError(f"{log.path}: no user has a non-empty history after --split {split} "
                             f"(every one of {seqs.n_users} users was skipped)")
        src = {"fmt": log.fmt, "user_col": log.user_col, "item_col": log.item_col, "time_col": log.time_col}
    vectors = None
    if embeddings is not None:
        embeddings = os.fspath(embeddings)
        vectors = load_embeddings(embeddings, seqs.n)
        input_info["embeddings"] = {"path": os.path.abspath(embeddings), "sha256": sha256_file(embeddings)}
    timings["load"] = time.perf_counter() - t0

    params = {
        "metric": m.name, "alpha": sel.alpha, "alpha_scope": alpha_scope if sel.alpha is not None else None,
        "k": sel.k, "min_sim": sel.min_sim, "max_per_anchor": sel.max_per_anchor, "selection": sel.mode,
        "method": method, "backend": be.name, "engine": engine, "bucket_by": list(buckets) or None,
        "split": split, "max_len": int(max_len), "compare": compare,
        "ngram_n": int(ngram_n) if m.name == "ngram" else None, "format": src["fmt"],
        "user_col": src["user_col"], "item_col": src["item_col"], "time_col": src["time_col"],
        "max_output_gb": max_output_gb, "shard_rows": int(shard_rows), "memory_gb": memory_gb,
        "embeddings": input_info.get("embeddings", {}).get("path"),
        **({"num_perm": num_perm, "bands": bands, "rows": rows, "candidates": candidates}
           if method == "minhash" else {}),
        **({"index": index, "dim": int(dim), "candidates": candidates, "num_perm": num_perm}
           if method == "faiss" else {}),
        **({"recall_sample": recall_sample, "seed": seed} if method != "exact" else {}),
    }
    fingerprint = hashlib.sha256(json.dumps({"input": input_info, "params": params, "version": __version__},
                                            sort_keys=True, default=str).encode()).hexdigest()
    if seqs is None:
        from .stream import build_streamed

        partial = _open_partial(out, fingerprint, None, resume)
        try:
            res, files = build_streamed(partial, src, m, sel, be, engine, split, max_len, compare, ngram_n,
                                        memory_gb, max_output_gb, shard_rows, ray_address, progress, timings)
        except InputError:
            shutil.rmtree(partial, ignore_errors=True)  # bad input leaves nothing behind
            raise
        shutil.rmtree(os.path.join(partial, "spill"))
        shards = [{"rows": rows_, "weak": w_, "strong": s_} for w_, s_, rows_ in files] if len(files) > 1 else None
        counts = {"n_anchors": res.n, "n_users": res.n_users, "skipped": res.skipped, "n_buckets": res.n_buckets,
                  "pairs": {"compared": res.compared, "weak_kept": res.weak_kept, "strong_kept": res.strong_kept}}
        extra = {"ray": res.tasks, "recall": None, "approximate": None,
                 "streamed": {"partitions": res.partitions, "groups": res.groups}}
        return _finish(out, partial, command, input, input_info, params, counts, res.threshold, method, be.name,
                       engine, extra, shards, timings, t0)

    t = time.perf_counter()
    features = dense_features(vectors) if vectors is not None else prepare_features(seqs, m, ngram_n)
    plan = make_plan(seqs.n, seqs.bucket_codes)
    check_output_size(_estimate_bytes(seqs, features, plan, sel, be), max_output_gb)
    timings["prepare"] = time.perf_counter() - t

    ranges = [(lo, min(lo + shard_rows, seqs.n)) for lo in range(0, seqs.n, shard_rows)]
    partial = _open_partial(out, fingerprint, ranges, resume)
    runner = None
    try:
        write_t = 0.0
        t = time.perf_counter()
        path = os.path.join(partial, "sequences.arrow")
        if not os.path.exists(path):
            write_table(path, sequences_table(seqs, seqs.bucket_labels))
        write_t += time.perf_counter() - t
        t = time.perf_counter()
        mh = MinHashParams(num_perm, bands, rows, seed, recall_sample, candidates)
        sharded = len(ranges) > 1
        # exact mining by anchor range (shards, Ray tasks) needs global alpha's τ before it starts
        thr = _shard_threshold(partial, features, plan, sel, be, progress, max_output_gb, seqs.n) \
            if method == "exact" and (sharded or engine == "ray") else None
        if engine == "ray":
            from .engines.ray_ import RayRunner

            runner = RayRunner(features, plan, sel, be.name, thr, ray_address)
        if not sharded:
            weak = runner.mine(0, seqs.n) if runner else \
                _mine_all(features, plan, sel, be, method, seqs.bucket_codes, progress, max_output_gb, mh, fp)
            timings["score"] = time.perf_counter() - t
            t = time.perf_counter()
            write_table(os.path.join(partial, "weak.arrow"), weak_table(weak.offsets, weak.neighbors, weak.scores))
            write_t += time.perf_counter() - t
            strong_off, strong_nbr = _strong(seqs, timings)  # after mining: the two never share memory
            t = time.perf_counter()
            write_table(os.path.join(partial, "strong.arrow"), strong_table(strong_off, strong_nbr))
            write_t += time.perf_counter() - t
            shards, thr, stats = None, weak.threshold, weak.stats
            kept_weak = int(len(weak.neighbors))
        else:
            whole = None  # approximate candidates come from the whole build: mine once, write slices
            if method != "exact":
                whole = _mine_all(features, plan, sel, be, method, seqs.bucket_codes, progress, max_output_gb,
                                  mh, fp)
            stats = whole.stats if whole is not None else {}
            strong_off, strong_nbr = _strong(seqs, timings)
            t_strong = timings["strong"]
            kept_weak, shard_write = _mine_shards(partial, ranges, features, plan, sel, be, thr, whole, strong_off,
                                                  strong_nbr, progress, runner)
            write_t += shard_write
            timings["score"] = time.perf_counter() - t - shard_write - t_strong
            shards = [{"rows": [lo, hi], "weak": f"weak-{s_:05d}.arrow", "strong": f"strong-{s_:05d}.arrow"}
                      for s_, (lo, hi) in enumerate(ranges)]
        timings["write"] = write_t
        counts = {"n_anchors": seqs.n, "n_users": seqs.n_users, "skipped": seqs.skipped,
                  "n_buckets": len(plan.members),
                  "pairs": {"compared": plan.compared_pairs, "weak_kept": kept_weak,
                            "strong_kept": int(len(strong_nbr))}}
        extra = {"ray": {"tasks": runner.tasks, "task_rows": runner.task_rows} if runner else None,
                 "recall": stats.get("recall"),
                 "approximate": {k_: v for k_, v in stats.items() if k_ != "recall"} or None}
        return _finish(out, partial, command, input, input_info, params, counts, thr, method, be.name, engine,
                       extra, shards, timings, t0)
    except InputError:
        shutil.rmtree(partial, ignore_errors=True)  # bad input leaves nothing behind
        raise
    finally:
        if runner is not None:
            runner.close()


def _strong(seqs: SequenceSet, timings: dict):
    """Strong positives (same target item, same bucket), timed into ``timings``."""
    t = time.perf_counter()
    off, nbr = strong_positives(seqs.target_codes, seqs.bucket_codes)
    timings["strong"] = time.perf_counter() - t
    return off, nbr


def _check_streamed(memory_gb, input, method: str, metric: str) -> None:
    """What a bounded-memory build (--memory-gb) accepts."""
    if not (isinstance(memory_gb, (int, float)) and not isinstance(memory_gb, bool) and memory_gb > 0):
        raise InputError(f"--memory-gb must be positive, got {memory_gb}")
    if input is None:
        raise InputError("--memory-gb streams an --input file; the demo log is built in memory")
    if method != "exact":
        raise InputError("--memory-gb runs --method exact; approximate builds hold their sketches in memory")
    if metric == "embedding":
        raise InputError("--memory-gb streams interaction logs; --metric embedding reads its .npy whole")


def _finish(out, partial, command, input, input_info, params, counts, thr, method, backend, engine, extra, shards,
            timings, t0) -> str:
    """Writes the manifest (SPEC §6) into ``partial`` and renames it to ``out``."""
    n = counts["n_anchors"]
    compared = counts["pairs"]["compared"]
    names = ["sequences.arrow"] + ([f for sh in shards for f in (sh["weak"], sh["strong"])] if shards else
                                   ["weak.arrow", "strong.arrow"])
    rows_of = {"sequences.arrow": [0, n]}
    for sh in shards or [{"rows": [0, n], "weak": "weak.arrow", "strong": "strong.arrow"}]:
        rows_of[sh["weak"]] = rows_of[sh["strong"]] = sh["rows"]
    manifest = {
        "format_version": FORMAT_VERSION,
        "simmine_version": __version__,
        "command": command if command is not None else _api_command(input, out, params),
        "input": input_info,
        "params": params,
        **counts,
        "tau": None if thr is None else thr.tau,
        "realised_fraction": (thr.pairs_at_or_above / compared if thr is not None and compared else None),
        "method": method,
        "backend": backend,
        "engine": engine,
        **extra,
        "shards": shards,
        "elapsed_s": {**{k_: round(v, 6) for k_, v in timings.items()},
                      "total": round(time.perf_counter() - t0, 6)},
        "files": {name: {"sha256": sha256_file(os.path.join(partial, name)),
                         "bytes": os.path.getsize(os.path.join(partial, name)),
                         "rows": rows_of[name]} for name in names},
    }
    write_json(os.path.join(partial, "manifest.json"), manifest)
    os.remove(os.path.join(partial, PLAN_FILE))
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.replace(partial, out)
    return out


PLAN_FILE = "plan.json"
DEFAULT_SHARD_ROWS = 1_000_000


def _open_partial(out: str, fingerprint: str, ranges, resume: bool) -> str:
    """The build's work directory OUT.partial: kept from an interrupted build of the same input and
    parameters when resuming, started afresh otherwise."""
    partial = f"{out.rstrip(os.sep)}.partial"
    plan_path = os.path.join(partial, PLAN_FILE)
    if os.path.isdir(partial):
        same = False
        if resume and os.path.isfile(plan_path):
            with open(plan_path) as f:
                same = json.load(f).get("fingerprint") == fingerprint
        if not same:
            shutil.rmtree(partial)
    os.makedirs(partial, exist_ok=True)
    if not os.path.isfile(plan_path):
        write_json(plan_path, {"fingerprint": fingerprint, "ranges": ranges})
    return partial


def _mine_all(features, plan, sel, be, method, bucket_codes, progress, max_output_gb, mh: MinHashParams,
              fp: FaissParams):
    if method == "minhash":
        return mine_minhash(features, plan, sel, be, bucket_codes, mh, progress)
    if method == "faiss":
        return mine_faiss(features, plan, sel, be, fp, progress)
    return mine_weak(features, plan, sel, be, progress, max_output_gb)


def _shard_threshold(partial, features, plan, sel, be, progress, max_output_gb, n):
    """Global alpha's τ, computed once and kept in the plan so a resumed build does not recompute it."""
    if sel.mode != "alpha_global":
        return None
    plan_path = os.path.join(partial, PLAN_FILE)
    with open(plan_path) as f:
        state = json.load(f)
    if "threshold" not in state:
        thr = global_threshold_of(features, plan, sel, be, progress)
        state["threshold"] = {"tau": thr.tau, "rank": thr.rank, "pairs_at_or_above": thr.pairs_at_or_above}
        write_json(plan_path, state)
    thr = GlobalThreshold(**state["threshold"])
    check_threshold_output(thr, sel, n, max_output_gb)
    return thr


def _mine_shards(partial, ranges, features, plan, sel, be, thr, whole, strong_off, strong_nbr, progress,
                 runner=None):
    """Mines (or slices from ``whole``) and writes every shard not already complete in ``partial``; returns
    (weak entries, seconds spent writing)."""
    kept, write_t = 0, 0.0
    tick = progress("shards", len(ranges)) if progress else None
    for s_, (lo, hi) in enumerate(ranges):
        weak_path = os.path.join(partial, f"weak-{s_:05d}.arrow")
        strong_path = os.path.join(partial, f"strong-{s_:05d}.arrow")
        if os.path.exists(weak_path) and os.path.exists(strong_path):
            kept += len(pa.ipc.open_file(pa.memory_map(weak_path)).read_all().column("neighbors")
                        .combine_chunks().values)
        else:
            if whole is not None:
                a, b = whole.offsets[lo], whole.offsets[hi]
                w = WeakResult(whole.offsets[lo:hi + 1] - a, whole.neighbors[a:b], whole.scores[a:b])
            elif runner is not None:
                w = runner.mine(lo, hi)
            else:
                w = mine_weak_range(features, plan, sel, be, lo, hi, thr)
            kept += len(w.neighbors)
            t = time.perf_counter()
            write_table(weak_path, weak_table(w.offsets, w.neighbors, w.scores))
            a, b = strong_off[lo], strong_off[hi]
            write_table(strong_path, strong_table(strong_off[lo:hi + 1] - a, strong_nbr[a:b]))
            write_t += time.perf_counter() - t
            fault_point("SIMMINE_KILL_AFTER_SHARDS", s_ + 1)
        if tick:
            tick(1)
    if tick:
        tick(0, done=True)
    return kept, write_t


def _api_command(input, out, params: dict) -> str:
    """The call that made a build, for the manifest (its parameters with their values)."""
    args = {"input": input, "out": out, **{k: v for k, v in params.items() if v is not None and k != "selection"}}
    return "simmine.build(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
