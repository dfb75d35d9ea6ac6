"""Byte-level digests of simmine builds over every metric, selection, method and layout on real logs.

A refactor that promises "no behaviour change" runs this before and after and compares: every data file
(sequences, weak and strong tables, shards included) must have the same sha256.

    python benchmarks/output_digest.py --out before.json                   # record
    python benchmarks/output_digest.py --out after.json --compare before.json   # record and compare

Logs: Amazon Beauty (one user per line) and the Diginetica sample (bucketed by day) from ../shared/data,
or --beauty/--diginetica. Takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import simmine
import simmine.anchors

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")


def cases(beauty: str, diginetica: str, embeddings: str) -> list:
    """(name, build keywords) of every configuration compared."""
    b = {"input": beauty}
    d = {"input": diginetica, "user_col": "session_id", "time_col": "timeframe"}
    out = []
    for metric in ("jaccard", "tfidf", "ngram", "levenshtein"):
        out += [
            (f"beauty-{metric}-alpha", {**b, "metric": metric, "alpha": 0.001}),
            (f"beauty-{metric}-k", {**b, "metric": metric, "k": 10}),
            (f"beauty-{metric}-minsim", {**b, "metric": metric, "min_sim": 0.5}),
            (f"beauty-{metric}-global", {**b, "metric": metric, "alpha": 0.0001, "alpha_scope": "global"}),
            (f"digi-{metric}-bucket-alpha", {**d, "metric": metric, "alpha": 0.05, "bucket_by": "eventdate"}),
        ]
    out += [
        ("beauty-jaccard-k-cap", {**b, "k": 20, "max_per_anchor": 5}),
        ("beauty-jaccard-full-len20", {**b, "k": 10, "compare": "full", "max_len": 20}),
        ("beauty-jaccard-split-none", {**b, "k": 10, "split": "none"}),
        ("beauty-ngram3-k", {**b, "metric": "ngram", "ngram_n": 3, "k": 10}),
        ("beauty-jaccard-minhash-k", {**b, "k": 10, "method": "minhash"}),
        ("beauty-tfidf-minhash-minsim", {**b, "metric": "tfidf", "min_sim": 0.4, "method": "minhash"}),
        ("beauty-jaccard-minhash-bands", {**b, "k": 10, "method": "minhash", "bands": 32, "rows": 4}),
        ("beauty-jaccard-faiss-flat", {**b, "k": 10, "method": "faiss"}),
        ("beauty-tfidf-faiss-binary", {**b, "metric": "tfidf", "k": 10, "method": "faiss", "index": "binary"}),
        ("beauty-embedding-k", {**b, "metric": "embedding", "embeddings": embeddings, "k": 10}),
        ("beauty-embedding-faiss", {**b, "metric": "embedding", "embeddings": embeddings, "k": 10,
                                    "method": "faiss"}),
        ("beauty-jaccard-shards", {**b, "k": 10, "shard_rows": 5000}),
        ("beauty-jaccard-global-shards", {**b, "alpha": 0.0001, "alpha_scope": "global", "shard_rows": 5000}),
        ("beauty-minhash-shards", {**b, "k": 10, "method": "minhash", "shard_rows": 5000}),
        ("beauty-jaccard-streamed", {**b, "k": 10, "memory_gb": 0.02}),
        ("beauty-tfidf-streamed-shards", {**b, "metric": "tfidf", "k": 10, "memory_gb": 0.02, "shard_rows": 7000}),
        ("beauty-jaccard-global-streamed", {**b, "alpha": 0.0001, "alpha_scope": "global", "memory_gb": 0.02}),
        ("digi-jaccard-bucket-streamed", {**d, "k": 5, "bucket_by": "eventdate", "memory_gb": 0.002}),
        ("digi-levenshtein-numba", {**d, "metric": "levenshtein", "k": 5, "backend": "numba"}),
        ("digi-jaccard-python", {**d, "k": 5, "backend": "python", "bucket_by": "eventdate"}),
    ]
    return out


def digest(out: str) -> dict:
    m = simmine.open(out).manifest
    return {"files": {name: info["sha256"] for name, info in sorted(m["files"].items())},
            "n_anchors": m["n_anchors"], "pairs": m["pairs"], "tau": m.get("tau"),
            "recall": (m.get("recall") or {}).get("value")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="digest JSON to write")
    ap.add_argument("--compare", default=None, help="an earlier digest JSON: exit 1 on any difference")
    ap.add_argument("--beauty", default=os.path.join(DATA, "beauty.txt"))
    ap.add_argument("--diginetica", default=os.path.join(DATA, "diginetica-sample.csv"))
    ap.add_argument("--only", default=None, help="substring: run only the matching cases")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        n = len(simmine.anchors.load_sequences(args.beauty).target_codes)
        embeddings = os.path.join(work, "beauty-emb.npy")
        np.save(embeddings, np.random.default_rng(0).standard_normal((n, 32)).astype(np.float32))
        result = {}
        for name, kw in cases(args.beauty, args.diginetica, embeddings):
            if args.only and args.only not in name:
                continue
            t = time.perf_counter()
            out = simmine.build(out=os.path.join(work, name), quiet=True, **kw)
            result[name] = digest(out)
            print(f"{name:36s} {time.perf_counter() - t:6.2f} s", flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    if not args.compare:
        return 0
    with open(args.compare) as f:
        old = json.load(f)
    bad = [name for name in result if name in old and old[name] != result[name]]
    missing = [name for name in old if name not in result and not args.only]
    for name in bad:
        print(f"DIFFERENT {name}: {old[name]} != {result[name]}")
    for name in missing:
        print(f"MISSING {name}")
    print(f"{len(result) - len(bad)} of {len(result)} builds identical" + (f"; {len(missing)} missing" if missing
                                                                              else ""))
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
