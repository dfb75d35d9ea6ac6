"""Command line (docs/cli.md): ``simmine build | items | inspect | verify | synth``.

Exit codes: 0 success, 2 bad usage or bad input (one line naming file/row/column), 1 internal error or a
failed verification.
"""
from __future__ import annotations

import argparse
import sys

from .config import parse_int, parse_number
from .errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, exit code 2."""

    def error(self, message):
        raise InputError(f"{self.prog}: {message}")


def _cli_type(parse):
    """argparse's type for a configuration field's parser: its ValueError message becomes the usage error."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


_int = _cli_type(parse_int)
_number = _cli_type(parse_number)


def _add_config_command(sub, cls, help: str) -> None:
    """A command whose flags are a configuration's fields (one flag per field, grouped as the docs are), plus
    --like and --config. Defaults are left out of the namespace (SUPPRESS), so only the flags given
    override a base configuration."""
    from dataclasses import fields

    from .config import cli_flag

    p = sub.add_parser(cls.COMMAND, help=help, argument_default=argparse.SUPPRESS)
    groups = {name: p.add_argument_group(title) for name, title in cls.GROUPS.items()}
    for f in fields(cls):
        meta = f.metadata
        group = groups[meta["group"]]
        if meta["parse"] is bool:
            group.add_argument(cli_flag(f), dest=f.name, action="store_true", help=meta["help"])
        else:
            group.add_argument(cli_flag(f), dest=f.name, type=_cli_type(meta["parse"]), help=meta["help"])
    base = p.add_argument_group("configuration (docs/cli.md): flags given here override these")
    base.add_argument("--like", metavar="OUT", help="start from the configuration an earlier output recorded")
    base.add_argument("--config", metavar="FILE", help="start from a TOML ([build] or [items] table) or JSON file")


def _add_build(sub) -> None:
    from .config import BuildConfig

    _add_config_command(sub, BuildConfig, "mine strong and weak positives into an output directory")


def _add_items(sub) -> None:
    from .graphs import ItemsConfig

    _add_config_command(sub, ItemsConfig, "build an item co-occurrence graph or item neighbours")


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="print a summary of a build")
    p.add_argument("out")
    p.add_argument("--plot", default=None, help="draw similarity and neighbour-count histograms to FILE.png")


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="re-check checksums and recompute a sample with the reference backend")
    p.add_argument("out")
    p.add_argument("--sample", type=_int, default=20, help="anchors to recompute (default 20)")
    p.add_argument("--seed", type=_int, default=0)


def _add_update(sub) -> None:
    p = sub.add_parser("update", help="fold new interactions into a build (the same files as rebuilding the logs "
                                      "concatenated; docs/update.md)")
    p.add_argument("out", help="the build to update")
    p.add_argument("--input", required=True, help="a log of interactions after those the build was made from "
                                                  "(same format and columns)")
    p.add_argument("--out", dest="new_out", default=None, help="write the result here (default: replace OUT)")
    p.add_argument("--rebuild", action="store_true", help="where the build's mode cannot be updated "
                                                          "incrementally, rebuild it from its logs and --input")
    p.add_argument("--threads", type=_int, default=None, help="CPU threads of the native backends")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")


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
    from .version import __version__

    parser.add_argument("--version", action="version", version=f"simmine {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_build(sub)
    _add_items(sub)
    _add_inspect(sub)
    _add_verify(sub)
    _add_update(sub)
    _add_synth(sub)
    return parser


def command_config(args, cls):
    """The configuration of a command: --like's or --config's options, then the flags given."""
    from .config import config_of_output, read_config_file

    given = vars(args).copy()
    for name in ("command", "like", "config"):
        given.pop(name, None)
    base, source = {}, "the command line"
    if getattr(args, "like", None) and getattr(args, "config", None):
        raise InputError("give one of --like and --config")
    if getattr(args, "like", None):
        base, source = config_of_output(args.like, cls.COMMAND), f"{args.like}/manifest.json"
    elif getattr(args, "config", None):
        base, source = read_config_file(args.config, cls.COMMAND), args.config
    return cls.from_dict({**base, **given}, source)


def build_config(args):
    """The BuildConfig of ``simmine build``."""
    from .config import BuildConfig

    return command_config(args, BuildConfig)


def _run_build(args) -> int:
    from .api import run_build

    config = build_config(args)
    out = run_build(config)
    if not config.quiet:
        from .report import summary_lines

        print("\n".join(summary_lines(out)))
    return 0


def _run_items(args) -> int:
    from .graphs import ItemsConfig
    from .graphs import items_summary, run_items

    config = command_config(args, ItemsConfig)
    out = run_items(config)
    if not config.quiet:
        print("\n".join(items_summary(out)))
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
    print(f"{args.out}: OK (checksums match; a sample of {args.sample} recomputed by a separate route)")
    return 0


def _run_update(args) -> int:
    from .api import update

    out = update(args.out, args.input, new_out=args.new_out, rebuild=args.rebuild, quiet=args.quiet,
                 threads=args.threads)
    if not args.quiet:
        from .report import summary_lines

        print("\n".join(summary_lines(out)))
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
        return {"build": _run_build, "items": _run_items, "inspect": _run_inspect, "verify": _run_verify,
                "update": _run_update, "synth": _run_synth}[args.command](args)
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
