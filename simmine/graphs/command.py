"""``simmine items``: load → training sequences → graph or neighbours → items.arrow, edges.arrow and a
manifest, published as ``build`` publishes (docs/items.md)."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import pyarrow as pa

from ..anchors import TrainingSequences, training_sequences
from .config import ItemsConfig
from ..errors import InputError
from ..io import large_list, sha256_file, write_table
from .cooccurrence import (cooccurrence, is_itemcf, iuf_weights, kernel_neighbours, normalized, ranked_rows,
                           user_set_neighbours, users_with)
from .embedding import embedding_neighbours, load_item_embeddings

ITEMS_FORMAT_VERSION = 1


def items_table(seqs: TrainingSequences) -> pa.Table:
    """items.arrow: row c is item code c (row 0: padding, null), with its users and occurrences in training."""
    n = len(seqs.item_values)
    counts = np.bincount(seqs.codes, minlength=n)
    return pa.table({
        "code": pa.array(np.arange(n + 1, dtype=np.uint32)),
        "item": pa.concat_arrays([pa.nulls(1, seqs.item_values.type), seqs.item_values]),
        "users": pa.array(np.concatenate(([0], users_with(seqs))).astype(np.uint32)),
        "occurrences": pa.array(np.concatenate(([0], counts)).astype(np.uint32)),
    })


def edges_table(offsets, neighbors, weights) -> pa.Table:
    return pa.table({"neighbors": large_list(offsets, neighbors, pa.uint32()),
                     "weights": large_list(offsets, weights, pa.float32())})


def run_items(config: ItemsConfig) -> str:
    """``simmine items``: load → training sequences → graph or neighbours → items.arrow, edges.arrow, manifest."""
    from ..backends import get_backend, set_num_threads
    from ..run import Run, check_out, load_log, resolved_input
    from ..progress import make_progress

    backend = get_backend(config.backend)
    if config.threads:
        set_num_threads(config.threads)
    check_out(config.out)
    run = Run(config, backend, make_progress(config.quiet))
    loaded = run.stage("load", load_log, config)
    run.input_info = loaded.input_info
    run.resolved.update(resolved_input(config, loaded.log.fmt, loaded.log.time_col))
    seqs = run.stage("sequences", training_sequences, loaded.log, config.split)
    n = len(seqs.item_values)
    if config.relation == "cooccurrence" and is_itemcf(config) and hasattr(backend, "item_topk"):
        weight = iuf_weights(seqs) if config.weight == "iuf" else None
        edges = run.stage("edges", kernel_neighbours, seqs, config.k, True, backend, weight)  # no pairs held
    elif config.relation == "cooccurrence":
        raw = run.stage("edges", cooccurrence, seqs, config)
        edges = run.stage("normalize", normalized, raw, seqs, config)
    elif config.relation == "users":
        edges = run.stage("edges", user_set_neighbours, seqs, config, backend)
    else:
        vectors = run.stage("load", load_item_embeddings, config.embeddings, n)
        run.input_info["embeddings"] = {"path": os.path.abspath(config.embeddings),
                                        "sha256": sha256_file(config.embeddings)}
        edges = run.stage("edges", embedding_neighbours, vectors, config.k, config.similarity)
    offsets, neighbors, weights = run.stage("rank", ranked_rows, edges, n, config.k)
    run.open_checkpoint()
    try:
        run.stage("write", write_table, run.path("items.arrow"), items_table(seqs))
        run.stage("write", write_table, run.path("edges.arrow"), edges_table(offsets, neighbors, weights))
        return finish_items(run, seqs, offsets)
    except InputError:
        run.discard()
        raise


def finish_items(run, seqs: TrainingSequences, offsets: np.ndarray) -> str:
    """Publishes the items output: its manifest (docs/items.md) into the checkpoint directory, renamed to OUT."""
    n = len(seqs.item_values)
    body = {"format_version": ITEMS_FORMAT_VERSION, "n_items": n, "n_users": len(seqs.indptr) - 1,
            "edges": int(offsets[-1])}
    return run.publish(body, {"items.arrow": [0, n + 1], "edges.arrow": [0, n + 1]}, kind="items")


def items(input: Optional[str] = None, out: str = "simmine-items", **kwargs) -> str:
    """Builds an item graph or item neighbours (docs/items.md) into ``out``; keywords are ``simmine items``'
    flags with underscores (fields of ``simmine.ItemsConfig``). Returns ``out``."""
    return run_items(ItemsConfig(input=input, out=out, **kwargs))
