"""One frozen configuration object per build: every CLI flag and ``simmine.build`` keyword is one field.

A field's metadata says how it appears on the command line (flag, help, group, parser) and whether it is a
*recorded* parameter: recorded fields go into the manifest's ``params`` and the ``--resume`` fingerprint,
the others (where to write, how loud, how many threads) change no output byte. Validation happens once, in
``BuildConfig.__post_init__``; the CLI parser, the manifest and ``--like``/``--config`` are derived from the
fields, so adding an option is adding a field (docs/architecture.md).
"""
from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Optional, Tuple

import numpy as np

from .anchors import ANCHORS, COMPARES, SPLITS
from .errors import InputError
from .readers import FORMATS

SAME_USER = ("exclude", "keep")
METHODS = ("exact", "minhash", "faiss")
ENGINES = ("local", "ray")
DEFAULT_SHARD_ROWS = 1_000_000

GROUPS = {
    "input": "input and anchors (docs/input.md)",
    "metric": "metric (docs/metrics.md)",
    "selection": "selection (docs/selection.md): exactly one of --alpha, --k, --min-sim",
    "execution": "execution (docs/approximate.md, docs/scale.md, docs/gpu.md)",
    "output": "output (docs/output.md, docs/scale.md)",
}


def option(default=None, help: str = "", group: str = "execution", parse=str, record: bool = True,
           flag: Optional[str] = None):
    """A BuildConfig field: its default, its CLI flag (``--name-with-dashes`` unless ``flag``), the parser of
    its CLI text (``bool``: a switch), and whether it is a recorded parameter."""
    return field(default=default, metadata={"help": help, "group": group, "parse": parse, "record": record,
                                            "flag": flag})


def parse_int(text: str) -> int:
    """An integer flag's value (ValueError names the text)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got '{text}'") from None


def parse_number(text: str) -> float:
    """A number flag's value (ValueError names the text)."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got '{text}'") from None


_int, _number = parse_int, parse_number


class Config:
    """What every configuration of a simmine command shares: recorded parameters, the recorded command
    line, ``--like``/``--config`` round trips. Subclasses are frozen dataclasses of ``option`` fields."""

    COMMAND = ""

    def applies(self, name: str) -> bool:
        """Whether a recorded field means anything here (those that do not are recorded as None)."""
        return True

    def _derived_params(self, out: dict) -> dict:
        return out

    def params(self, resolved: Optional[dict] = None) -> dict:
        """The manifest's ``params``: every recorded field (None where it does not apply), with the values
        resolved at run time (``resolved``: backend, format, time column, embeddings path) and the selection
        mode. The ``--resume`` fingerprint hashes exactly this."""
        resolved = resolved or {}
        out = {}
        for f in fields(self):
            if f.metadata["record"]:
                value = resolved.get(f.name, getattr(self, f.name))
                out[f.name] = _plain(value) if self.applies(f.name) else None
        return self._derived_params(out)

    def _resolves_to_itself(self, f) -> bool:
        """Whether the field's default resolves to the value it has here (shard_rows None is 1,000,000;
        same_user None is exclude with prefix anchors)."""
        try:
            return replace(self, **{f.name: f.default}) == self
        except InputError:  # the default alone is not a valid build (a selection flag)
            return False

    def to_dict(self) -> dict:
        """Every field, JSON-ready: what the manifest records as ``config`` and ``--like`` reads back."""
        return {k: _plain(v) for k, v in asdict(self).items()}

    def command_line(self) -> str:
        """A ``simmine`` command that makes this output: the fields whose default would change it."""
        words = ["simmine", self.COMMAND]
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default or self._resolves_to_itself(f):
                continue
            flag = cli_flag(f)
            if f.metadata["parse"] is bool:
                words.append(flag)
            else:
                words += [flag, ",".join(value) if f.name == "bucket_by" else str(value)]
        return " ".join(shlex.quote(w) for w in words)

    def replace(self, **changes):
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict, source: str = "configuration"):
        """A configuration from a dict of field names (or flag names with dashes); unknown keys are errors
        naming ``source``."""
        known = {f.name for f in fields(cls)}
        kw = {}
        for key, value in values.items():
            name = str(key).lstrip("-").replace("-", "_")
            if name not in known:
                raise InputError(f"{source}: unknown {cls.COMMAND} option '{key}' (options: "
                                 f"{', '.join(sorted(known))})")
            kw[name] = value
        return cls(**kw)


@dataclass(frozen=True)
class LogConfig(Config):
    """The log a command reads and how, the same for every command (docs/input.md)."""

    input: Optional[str] = option(None, "interaction log; the built-in demo log when omitted", "input",
                                  record=False)
    format: str = option("auto", "auto|parquet|csv|tsv|arrow|inter|lines|ml-dat (default: auto)", "input")
    user_col: str = option("user_id", "user column (default user_id)", "input")
    item_col: str = option("item_id", "item column (default item_id)", "input")
    time_col: Optional[str] = option(None, "default: 'timestamp' when present, else file order", "input")


@dataclass(frozen=True)
class BuildConfig(LogConfig):
    """Everything a build depends on. ``BuildConfig(**kw)`` validates (InputError, the CLI's exit code 2)."""

    COMMAND = "build"
    GROUPS = GROUPS

    # input and anchors (the log's fields come from LogConfig)
    bucket_by: Optional[Tuple[str, ...]] = option(None, "COL[,COL]: compare only anchors with equal keys "
                                                        "(a string or a sequence of names in Python)", "input")
    split: str = option("loo", "loo (hold out the last two) | none", "input")
    max_len: int = option(50, "items of history compared (default 50)", "input", _int)
    compare: str = option("history", "history (T[:-1]) | full (T)", "input")
    anchors: str = option("user", "user (one anchor per user: T[:-1] -> T[-1]) | prefix (one per t >= 1: "
                                  "T[:t] -> T[t], as trainers train)", "input")
    same_user: Optional[str] = option(None, "exclude | keep: whether two anchors of one user may be each other's "
                                            "positives (default: exclude with --anchors prefix)", "input")
    # metric
    metric: str = option("jaccard", "jaccard | tfidf | ngram | levenshtein | embedding", "metric")
    ngram_n: int = option(2, "n of --metric ngram (default 2)", "metric", _int)
    embeddings: Optional[str] = option(None, "FILE.npy [anchors, dims], row i for seq_id i (--metric embedding)",
                                       "metric")
    # selection
    alpha: Optional[float] = option(None, "keep the top ⌈A·(n_u − 1)⌉ per anchor (or a global τ)", "selection",
                                    _number)
    alpha_scope: str = option("anchor", "anchor (default) | global", "selection")
    k: Optional[int] = option(None, "keep the top K per anchor", "selection", _int)
    min_sim: Optional[float] = option(None, "keep every neighbour with s >= S", "selection", _number)
    max_per_anchor: Optional[int] = option(None, "cap any selection at M per anchor", "selection", _int)
    max_output_gb: float = option(8.0, "refuse a build whose output would be larger (default 8)", "selection",
                                  _number)
    # execution
    method: str = option("exact", "exact | minhash | faiss", "execution")
    num_perm: int = option(128, "MinHash permutations, or bits of --index binary (default 128)", parse=_int)
    bands: Optional[int] = option(None, "LSH bands (default: chosen from the selection)", parse=_int)
    rows: Optional[int] = option(None, "LSH rows per band (default: chosen)", parse=_int)
    index: str = option("flat", "faiss index: flat | hnsw | ivf | binary (default flat)")
    dim: int = option(256, "faiss: projection dimension (default 256)", parse=_int)
    candidates: Optional[int] = option(None, "faiss: neighbours asked per anchor (default max(4k, 64); 256 for "
                                             "--min-sim); minhash: most-colliding anchors kept per anchor "
                                             "(default: calibrated)", parse=_int)
    recall_sample: int = option(500, "anchors whose recall against exact search is estimated (default 500)",
                                parse=_int)
    seed: int = option(0, "seed of approximate methods (default 0)", parse=_int)
    backend: Optional[str] = option(None, "auto|cuda|cpp|numba|python (default: $SIMMINE_BACKEND or auto); "
                                          "embeddings use blas")
    engine: str = option("local", "local | ray")
    ray_address: Optional[str] = option(None, "Ray cluster address (default: start a local one)", record=False)
    threads: Optional[int] = option(None, "CPU threads of the native backends (default: all)", parse=_int,
                                    record=False)
    # output
    out: str = option("simmine-out", "output directory (default simmine-out)", "output", record=False)
    shard_rows: Optional[int] = option(None, "anchors per output shard (default 1,000,000; one shard writes "
                                             "weak.arrow)", "output", _int)
    resume: bool = option(False, "continue an interrupted build from its finished shards", "output", bool,
                          record=False)
    memory_gb: Optional[float] = option(None, "stream the log through spill files, holding about this much "
                                              "(plus ~40 B per anchor); same output", "output", _number)
    quiet: bool = option(False, "no progress bars or summary", "output", bool, record=False)

    def __post_init__(self):
        _validate(self)

    # ------------------------------------------------------------------ derived values
    @property
    def selection(self):
        """The weak-positive selection (select.Selection) these flags ask for."""
        return self._selection

    @property
    def metric_def(self):
        from .metrics import resolve_metric

        return resolve_metric(self.metric)

    @property
    def streamed(self) -> bool:
        return self.memory_gb is not None

    @property
    def excludes_same_user(self) -> bool:
        """Whether anchors of one user are never paired (only prefix anchors share a user)."""
        return self.anchors == "prefix" and self.same_user == "exclude"

    def _derived_params(self, out: dict) -> dict:
        out["bucket_by"] = list(self.bucket_by) or None
        out["selection"] = self.selection.mode
        return out

    def applies(self, name: str) -> bool:
        """Whether a recorded field means anything for this build (those that do not are recorded as None)."""
        if name == "alpha_scope":
            return self.alpha is not None
        if name == "ngram_n":
            return self.metric == "ngram"
        if name in ("bands", "rows"):
            return self.method == "minhash"
        if name in ("index", "dim"):
            return self.method == "faiss"
        if name in ("num_perm", "candidates", "recall_sample", "seed"):
            return self.method != "exact"
        return True


def cli_flag(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def default_of(name: str):
    f = next(f for f in fields(BuildConfig) if f.name == name)
    return f.default if f.default is not MISSING else None


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------- validation
def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def check_choice(flag: str, value, choices, what: str = "choose from") -> None:
    if value not in choices:
        raise InputError(f"unknown {flag} '{value}' ({what} {', '.join(choices)})")


def check_positive_int(flag: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not is_int(value) or value < 1:
        raise InputError(f"{flag} must be a positive integer, got {value}")


def set_field(config: BuildConfig, name: str, value) -> None:
    object.__setattr__(config, name, value)


def _validate(c: BuildConfig) -> None:
    """Every check of a build's flags, in the order their messages are documented (docs/cli.md)."""
    from .metrics import resolve_metric

    set_field(c, "metric", resolve_metric(c.metric).name)
    _validate_selection(c)
    check_choice("--method", c.method, METHODS, "available:")
    check_choice("--engine", c.engine, ENGINES, "available:")
    if not is_int(c.max_len) or c.max_len < 1:
        raise InputError(f"--max-len must be a positive integer, got {c.max_len}")
    check_positive_int("--ngram-n", c.ngram_n)
    if not (is_number(c.max_output_gb) and c.max_output_gb > 0):
        raise InputError(f"--max-output-gb must be positive, got {c.max_output_gb}")
    check_positive_int("--threads", c.threads, optional=True)
    for name in ("num_perm", "bands", "rows", "dim", "candidates"):
        check_positive_int("--" + name.replace("_", "-"), getattr(c, name),
                           optional=name != "num_perm" and name != "dim")
    if not is_int(c.recall_sample) or c.recall_sample < 0:
        raise InputError(f"--recall-sample must be a non-negative integer, got {c.recall_sample}")
    set_field(c, "shard_rows", DEFAULT_SHARD_ROWS if c.shard_rows is None else c.shard_rows)
    check_positive_int("--shard-rows", c.shard_rows)
    if c.engine == "ray" and c.method != "exact":
        raise InputError("--engine ray runs --method exact; approximate builds run on --engine local")
    if c.method != "exact" and c.alpha is not None and c.alpha_scope == "global":
        raise InputError("--alpha-scope global needs every pair's score: use --method exact")
    if c.method == "faiss" and c.index == "binary" and c.num_perm % 8:
        raise InputError(f"--index binary packs --num-perm bits into bytes: give a multiple of 8, got {c.num_perm}")
    if c.method == "faiss":
        from .approx.faiss_ import INDEXES

        check_choice("--index", c.index, INDEXES)
    if (c.metric == "embedding") != (c.embeddings is not None):
        raise InputError("--metric embedding needs --embeddings FILE.npy" if c.embeddings is None else
                         "--embeddings is read only by --metric embedding")
    if c.metric == "embedding" and c.method == "minhash":
        raise InputError("--method minhash sketches item sets; embeddings use --method exact or faiss")
    if c.memory_gb is not None:
        _validate_streamed(c)
    _validate_input(c)


def _validate_selection(c: BuildConfig) -> None:
    from .select import make_selection

    sel = make_selection(c.alpha, c.alpha_scope, c.k, c.min_sim, c.max_per_anchor)
    set_field(c, "alpha", sel.alpha)
    set_field(c, "k", sel.k)
    set_field(c, "min_sim", sel.min_sim)
    set_field(c, "_selection", sel)


def _validate_streamed(c: BuildConfig) -> None:
    """What a bounded-memory build (--memory-gb) accepts."""
    if not (is_number(c.memory_gb) and c.memory_gb > 0):
        raise InputError(f"--memory-gb must be positive, got {c.memory_gb}")
    if c.input is None:
        raise InputError("--memory-gb streams an --input file; the demo log is built in memory")
    if c.method != "exact":
        raise InputError("--memory-gb runs --method exact; approximate builds hold their sketches in memory")
    if c.metric == "embedding":
        raise InputError("--memory-gb streams interaction logs; --metric embedding reads its .npy whole")


def _validate_input(c: BuildConfig) -> None:
    bucket_by = c.bucket_by
    if bucket_by is None:
        bucket_by = ()
    elif isinstance(bucket_by, str):
        bucket_by = bucket_by.split(",")
    cols = tuple(str(col).strip() for col in bucket_by if str(col).strip())
    if bucket_by and not cols:
        raise InputError("--bucket-by needs at least one column name")
    set_field(c, "bucket_by", cols)
    check_choice("--format", c.format, FORMATS)
    check_choice("--split", c.split, SPLITS)
    check_choice("--compare", c.compare, COMPARES)
    check_choice("--anchors", c.anchors, ANCHORS)
    if c.same_user is None:
        set_field(c, "same_user", "exclude" if c.anchors == "prefix" else "keep")
    check_choice("--same-user", c.same_user, SAME_USER)
    for name in ("input", "out", "embeddings"):
        value = getattr(c, name)
        if value is not None:
            set_field(c, name, os.fspath(value))


# ---------------------------------------------------------------------------------------------- --config, --like
def read_config_file(path: str, command: str = "build") -> dict:
    """The options of a ``--config`` file: TOML (a ``[build]`` or ``[items]`` table, or top-level keys) or
    JSON."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: --config file not found")
    try:
        if path.endswith(".json"):
            with open(path) as f:
                values = json.load(f)
        else:
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib
            with open(path, "rb") as f:
                values = tomllib.load(f)
    except ImportError:
        raise InputError(f"{path}: reading TOML needs Python 3.11 or 'pip install tomli'; or give a .json "
                         f"file") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a readable configuration ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a table of build options")
    values = values.get(command, values)
    if not isinstance(values, dict):
        raise InputError(f"{path}: [{command}] must be a table of {command} options")
    return values


def config_of_output(out: str, command: str = "build") -> dict:
    """The options of an earlier output of ``command`` (``--like OUT``): its recorded configuration."""
    from .io import read_manifest

    manifest = read_manifest(out, command)
    if "config" not in manifest:
        raise InputError(f"{out}: this output records no configuration (made by simmine "
                         f"{manifest.get('simmine_version', '?')}); rebuild it with its recorded command: "
                         f"{manifest.get('command', '?')}")
    return dict(manifest["config"])
