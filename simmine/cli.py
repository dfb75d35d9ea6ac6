"""Command line (SPEC §7): ``simmine build | inspect | verify | synth``.

Exit codes: 0 success, 2 bad usage or bad input (one line naming file/row/column), 1 internal error or a
failed verification.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from .errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, exit code 2."""

    def error(self, message):
        raise InputError(f"{self.prog}: {message}")


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="mine strong and weak positives into an output directory")
    src = p.add_argument_group("input (SPEC §2)")
    src.add_argument("--input", help="interaction log; the built-in demo log when omitted")
    src.add_argument("--format", default="auto",
                     help="auto|parquet|csv|tsv|arrow|inter|lines|ml-dat (default: auto)")
    src.add_argument("--user-col", default="user_id")
    src.add_argument("--item-col", default="item_id")
    src.add_argument("--time-col", default=None, help="default: 'timestamp' when present, else file order")
    src.add_argument("--bucket-by", default=None, help="COL[,COL]: compare only anchors with equal keys")
    src.add_argument("--split", default="loo", help="loo (hold out the last two) | none")
    src.add_argument("--max-len", type=_int, default=50)
    src.add_argument("--compare", default="history", help="history (T[:-1]) | full (T)")
    met = p.add_argument_group("metric (SPEC §3)")
    met.add_argument("--metric", default="jaccard", help="jaccard | tfidf | ngram | levenshtein | embedding")
    met.add_argument("--ngram-n", type=_int, default=2)
    met.add_argument("--embeddings", default=None,
                     help="FILE.npy [anchors, dims], row i for seq_id i (--metric embedding)")
    sel = p.add_argument_group("selection (SPEC §4): exactly one of --alpha, --k, --min-sim")
    sel.add_argument("--alpha", type=_number)
    sel.add_argument("--alpha-scope", default="anchor", help="anchor (default) | global")
    sel.add_argument("--k", type=_int)
    sel.add_argument("--min-sim", type=_number)
    sel.add_argument("--max-per-anchor", type=_int)
    sel.add_argument("--max-output-gb", type=_number, default=8.0)
    run = p.add_argument_group("execution (SPEC §5)")
    run.add_argument("--method", default="exact", help="exact | minhash | faiss")
    run.add_argument("--num-perm", type=_int, default=128,
                     help="MinHash permutations, or bits of --index binary (default 128)")
    run.add_argument("--bands", type=_int, default=None, help="LSH bands (default: chosen from the selection)")
    run.add_argument("--rows", type=_int, default=None, help="LSH rows per band (default: chosen)")
    run.add_argument("--index", default="flat", help="faiss index: flat | hnsw | ivf | binary (default flat)")
    run.add_argument("--dim", type=_int, default=256, help="faiss: projection dimension (default 256)")
    run.add_argument("--candidates", type=_int, default=None,
                     help="faiss: neighbours asked per anchor (default max(4k, 64); 256 for --min-sim); "
                          "minhash: most-colliding anchors kept per anchor (default: calibrated)")
    run.add_argument("--recall-sample", type=_int, default=500,
                     help="anchors whose recall against exact search is estimated (default 500)")
    run.add_argument("--seed", type=_int, default=0)
    run.add_argument("--backend", default=None,
                     help="auto|cuda|cpp|numba|python (default: $SIMMINE_BACKEND or auto); embeddings use blas")
    run.add_argument("--engine", default="local", help="local | ray")
    run.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    run.add_argument("--threads", type=_int, default=None)
    p.add_argument("--out", default="simmine-out")
    p.add_argument("--shard-rows", type=_int, default=None,
                   help="anchors per output shard (default 1,000,000; one shard writes weak.arrow)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build from its finished shards")
    p.add_argument("--memory-gb", type=_number, default=None,
                   help="stream the log through spill files, holding about this much (plus ~40 B per anchor); "
                        "same output")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="print a summary of a build")
    p.add_argument("out")
    p.add_argument("--plot", default=None, help="draw similarity and neighbour-count histograms to FILE.png")


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="re-check checksums and recompute a sample with the reference backend")
    p.add_argument("out")
    p.add_argument("--sample", type=_int, default=20, help="anchors to recompute (default 20)")
    p.add_argument("--seed", type=_int, default=0)


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic log (Zipf items, log-normal lengths) to Parquet")
    p.add_argument("out", help="output .parquet file")
    p.add_argument("--users", type=_int, required=True)
    p.add_argument("--items", type=_int, default=50_000)
    p.add_argument("--mean-len", type=_number, default=40.0)
    p.add_argument("--zipf", type=_number, default=1.0, help="popularity exponent s (default 1.0)")
    p.add_argument("--cities", type=_int, default=0, help="add a city column with this many cities (Zipf)")
    p.add_argument("--days", type=_int, default=0, help="add a day column with this many days")
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--chunk-users", type=_int, default=200_000,
                   help="users generated and written at a time: bounds memory (about 5 KB per user); the log "
                        "is deterministic for a given seed and chunk size")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simmine", description="Similarity mining of positives for contrastive sequential "
                                                 "recommendation.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"simmine {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_build(sub)
    _add_inspect(sub)
    _add_verify(sub)
    _add_synth(sub)
    return parser


def _run_build(args) -> int:
    from .api import build

    command = "simmine " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = build(input=args.input, out=args.out, metric=args.metric, alpha=args.alpha,
                alpha_scope=args.alpha_scope, k=args.k, min_sim=args.min_sim,
                max_per_anchor=args.max_per_anchor, method=args.method, backend=args.backend,
                engine=args.engine, bucket_by=args.bucket_by, split=args.split, max_len=args.max_len,
                compare=args.compare, ngram_n=args.ngram_n, format=args.format, user_col=args.user_col,
                item_col=args.item_col, time_col=args.time_col, max_output_gb=args.max_output_gb,
                threads=args.threads, quiet=args.quiet, num_perm=args.num_perm, bands=args.bands,
                rows=args.rows, recall_sample=args.recall_sample, seed=args.seed, embeddings=args.embeddings,
                index=args.index, dim=args.dim, candidates=args.candidates, shard_rows=args.shard_rows,
                resume=args.resume, ray_address=args.ray_address, memory_gb=args.memory_gb,
                command=command)
    if not args.quiet:
        from .report import summary_lines

        print("\n".join(summary_lines(out)))
    return 0


def _run_inspect(args) -> int:
    from .report import plot_histograms, summary_lines

    print("\n".join(summary_lines(args.out)))
    if args.plot:
        plot_histograms(args.out, args.plot)
        print(f"plot: {args.plot}")
    return 0


def _run_verify(args) -> int:
    from .report import verify

    problems = verify(args.out, sample=args.sample, seed=args.seed)
    if problems:
        for line in problems:
            print(f"simmine verify: {line}", file=sys.stderr)
        return 1
    print(f"{args.out}: OK (checksums match; {args.sample} sampled anchors recomputed with the reference backend)")
    return 0


def _run_synth(args) -> int:
    from .synth import synth

    stats = synth(args.out, users=args.users, items=args.items, mean_len=args.mean_len, zipf=args.zipf,
                  cities=args.cities, days=args.days, seed=args.seed, chunk_users=args.chunk_users)
    print(f"{stats['path']}: {stats['users']:,} users, {stats['rows']:,} interactions "
          f"(mean length {stats['mean_len']:.1f}), {stats['items']:,} items, Zipf s={stats['zipf']}")
    return 0


def main(argv=None) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return {"build": _run_build, "inspect": _run_inspect, "verify": _run_verify,
                "synth": _run_synth}[args.command](args)
    except InputError as exc:
        message = str(exc).replace("\n", " ")
        print(f"simmine: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simmine: interrupted; finished shards are kept: rerun the same command with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
