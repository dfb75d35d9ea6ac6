"""``ItemsConfig``: every option of ``simmine items`` (docs/items.md), on the same ``Config`` base as ``build``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..anchors import SPLITS
from ..config import (LogConfig, check_choice, check_positive_int, is_int, is_number, option, parse_int, parse_number,
                      set_field)
from ..errors import InputError
from ..readers import FORMATS

WINDOW_COUNTS = ("set", "multiset")

EDGE_WEIGHTS = ("count", "binary", "inverse-distance", "iuf")

NORMALIZATIONS = ("none", "sym", "row", "cosine", "gcl4sr")

ITEM_METRICS = ("jaccard", "cosine")

ITEM_SIMILARITIES = ("cosine", "dot")

ITEM_GROUPS = {
    "input": "input (docs/input.md)",
    "graph": "co-occurrence graph (docs/items.md)",
    "neighbours": "item neighbours instead of a graph (docs/items.md)",
    "execution": "execution",
    "output": "output (docs/items.md)",
}


@dataclass(frozen=True)
class ItemsConfig(LogConfig):
    """Everything ``simmine items`` depends on (docs/items.md): the log and split as ``build`` reads them, and
    either a co-occurrence graph or item neighbours (by the items' user sets or by given embeddings)."""

    COMMAND = "items"
    GROUPS = ITEM_GROUPS

    split: str = option("loo", "loo (graphs from T = all but the last two) | none", "input")
    window: int = option(3, "pairs at most W positions apart in a user's sequence; 0: anywhere (default 3)",
                         "graph", parse_int)
    count: str = option("multiset", "multiset (every co-occurrence) | set (once per user)", "graph")
    directed: bool = option(False, "edges from the earlier item to the later only (default: both ways)", "graph",
                            bool)
    weight: str = option("count", "count | binary | inverse-distance | iuf (1/log(1+|S_u|))", "graph")
    self_loops: bool = option(False, "add the identity before normalising (every item an edge to itself)",
                              "graph", bool)
    normalize: str = option("none", "none | sym (D^-1/2 A D^-1/2) | row (D^-1 A) | cosine (ItemCF) | gcl4sr",
                            "graph")
    k: Optional[int] = option(None, "keep each item's top K edges (graph) or neighbours", "neighbours", parse_int)
    metric: Optional[str] = option(None, "jaccard | cosine: item top-k over the items' user sets (build's "
                                         "kernels)", "neighbours")
    embeddings: Optional[str] = option(None, "FILE.npy: item vectors, one row per item in sorted item order "
                                             "(or one more for padding first): item top-k", "neighbours")
    similarity: str = option("cosine", "cosine | dot (with --embeddings)", "neighbours")
    backend: Optional[str] = option(None, "auto|cpp|numba|python for --metric (default: $SIMMINE_BACKEND or auto)")
    threads: Optional[int] = option(None, "CPU threads of the native backends (default: all)", parse=parse_int,
                                    record=False)
    out: str = option("simmine-items", "output directory (default simmine-items)", "output", record=False)
    max_output_gb: float = option(8.0, "refuse an output larger than this (default 8)", "output", parse_number)
    quiet: bool = option(False, "no progress bars or summary", "output", bool, record=False)

    def __post_init__(self):
        _validate_items(self)

    @property
    def relation(self) -> str:
        """What an edge means: co-occurrence in a sequence, similar user sets, or similar embeddings."""
        return "embeddings" if self.embeddings is not None else ("users" if self.metric else "cooccurrence")

    @property
    def bucket_by(self) -> tuple:
        return ()

    def applies(self, name: str) -> bool:
        graph = ("window", "count", "directed", "weight", "self_loops", "normalize")
        if name in graph:
            return self.relation == "cooccurrence"
        if name == "similarity":
            return self.relation == "embeddings"
        if name == "backend":
            return self.relation == "users"
        return True

    def _derived_params(self, out: dict) -> dict:
        out["relation"] = self.relation
        return out


def _validate_items(c: ItemsConfig) -> None:
    check_choice("--format", c.format, FORMATS)
    check_choice("--split", c.split, SPLITS)
    if not is_int(c.window) or c.window < 0:
        raise InputError(f"--window must be a non-negative integer, got {c.window}")
    check_choice("--count", c.count, WINDOW_COUNTS)
    check_choice("--weight", c.weight, EDGE_WEIGHTS)
    check_choice("--normalize", c.normalize, NORMALIZATIONS)
    check_choice("--similarity", c.similarity, ITEM_SIMILARITIES)
    check_positive_int("--k", c.k, optional=True)
    check_positive_int("--threads", c.threads, optional=True)
    if not (is_number(c.max_output_gb) and c.max_output_gb > 0):
        raise InputError(f"--max-output-gb must be positive, got {c.max_output_gb}")
    if c.metric is not None:
        check_choice("--metric", c.metric, ITEM_METRICS)
    if c.metric is not None and c.embeddings is not None:
        raise InputError("give one of --metric and --embeddings")
    if (c.metric is not None or c.embeddings is not None) and c.k is None:
        raise InputError(f"--{'metric' if c.metric else 'embeddings'} finds each item's top --k neighbours: give --k")
    for name in ("input", "out", "embeddings"):
        value = getattr(c, name)
        if value is not None:
            set_field(c, name, os.fspath(value))
