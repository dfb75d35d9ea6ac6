"""python -m simmine.recbole --model SASRec --dataset ml-100k [--config-files F ...] [--contrastive rcl]
[--every-position] [--epochs 1 --train_batch_size 512 ...]: trains and evaluates with RecBole's Trainer and
evaluator and prints RecBole's metrics. Options it does not know are RecBole config keys (``--key value``,
values read as Python literals when they parse, else as strings)."""
from __future__ import annotations

import argparse
import ast
import json
import sys


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def config_overrides(extra: list) -> dict:
    """RecBole config keys from ``--key value`` / ``--key=value`` pairs (a bare ``--flag`` is True).

    >>> config_overrides(["--epochs", "1", "--cl_logits=cosine", "--show_progress"])
    {'epochs': 1, 'cl_logits': 'cosine', 'show_progress': True}
    """
    out, i = {}, 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise SystemExit(f"unexpected argument {token!r}: RecBole options are --key value")
        key = token[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            out[key] = _value(text)
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            out[key] = _value(extra[i + 1])
            i += 1
        else:
            out[key] = True
        i += 1
    return out


def main(argv=None) -> int:
    """Entry point of ``python -m simmine.recbole``."""
    ap = argparse.ArgumentParser(prog="python -m simmine.recbole", description=__doc__)
    ap.add_argument("--model", default="SASRec")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--config-files", nargs="*", default=None)
    ap.add_argument("--contrastive", choices=("none", "rcl", "duorec", "random"), default=None)
    ap.add_argument("--every-position", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--json", default=None, help="also write the result as JSON here")
    args, extra = ap.parse_known_args(argv)
    overrides = config_overrides(extra)
    if args.contrastive:
        overrides["contrastive"] = args.contrastive
    if args.every_position:
        overrides["every_position"] = True
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from .trainer import run

    result = run(args.model, args.dataset, args.config_files, overrides)
    result["command"] = "python -m simmine.recbole " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"best valid ({result['model']}, epoch {result['best_epoch']}): "
          + "    ".join(f"{k} : {v:.4f}" for k, v in result["best_valid"].items()))
    print("test result: " + "    ".join(f"{k} : {v:.4f}" for k, v in result["test"].items()))
    print(f"seconds per epoch: {sum(result['epoch_seconds']) / max(len(result['epoch_seconds']), 1):.2f} "
          f"({result['train_rows']} training rows); setup incl. mining {result['setup_seconds']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
