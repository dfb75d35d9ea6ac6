"""Every-position training for RecBole's causal sequential models: one row per user window, not per prefix.

Each user's training sequence T (rebuilt from RecBole's own training rows, so the same filtering and split)
is cut from its end into windows of at most MAX_ITEM_LIST_LENGTH + 1 items, overlapping by one item; a
window's inputs are its items but the last, right-padded like RecBole's ``item_id_list``, and its targets
the items one step ahead. Every t >= 1 of T is the target of exactly one window position, whose prefix
anchor (seq_id) is recorded beside it for contrastive terms. One causal forward pass of a window trains all
its positions (cross-entropy over all items), which is prefix training at the cost of one pass per window.
Validation and test data are RecBole's, untouched.
"""
from __future__ import annotations

import numpy as np
import torch

from .contrastive import EP_SEQ_IDS, EP_TARGETS, EP_WINDOW
from .positives import sequence_fields, config_value, training_sequences


def windows(offsets: np.ndarray, items: np.ndarray, max_len: int) -> dict:
    """Windows of every sequence items[offsets[u]:offsets[u+1]]: ``inputs``/``targets``/``seq_ids`` [W, L]
    right-padded (0, 0, -1), ``lengths`` [W], ``user`` [W]. The seq_id of user u's position t is
    (anchors of users before u) + t - 1, the numbering of simmine's prefix anchors.

    >>> w = windows(np.array([0, 4]), np.array([5, 6, 7, 8]), 2)
    >>> w["inputs"].tolist(), w["targets"].tolist(), w["seq_ids"].tolist()
    ([[5, 0], [6, 7]], [[6, 0], [7, 8]], [[0, -1], [1, 2]])
    """
    lengths = np.diff(offsets)
    first_seq = np.concatenate(([0], np.cumsum(np.maximum(lengths - 1, 0))))
    spans = []  # (user, begin, end) in T coordinates
    for u, n in enumerate(lengths.tolist()):
        end, found = n, []
        while end > 1:
            begin = max(0, end - (max_len + 1))
            found.append((u, begin, end))
            end = begin + 1
        spans.extend(reversed(found))
    w = len(spans)
    span = np.array(spans, dtype=np.int64).reshape(w, 3)
    count = span[:, 2] - span[:, 1] - 1
    inputs = np.zeros((w, max_len), dtype=np.int64)
    targets = np.zeros((w, max_len), dtype=np.int64)
    seq_ids = np.full((w, max_len), -1, dtype=np.int64)
    rows = np.repeat(np.arange(w), count)
    cols = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    start = offsets[span[:, 0]] + span[:, 1]
    at = np.repeat(start, count) + cols
    inputs[rows, cols] = items[at]
    targets[rows, cols] = items[at + 1]
    t = np.repeat(span[:, 1], count) + cols + 1
    seq_ids[rows, cols] = first_seq[span[:, 0]][rows] + t - 1
    return {"inputs": inputs, "targets": targets, "seq_ids": seq_ids, "lengths": count, "user": span[:, 0]}


def every_position_loader(train_data, config=None, shuffle: bool = True):
    """A RecBole TrainDataLoader over the windows of ``train_data``'s training sequences (one row per window),
    for a model made by ``with_contrastive(..., every_position=True)`` (or config ``every_position: True``).
    Windows per batch: config ``every_position_batch_size``, by default train_batch_size divided by the mean
    number of positions per window, so that a step trains about as many positions as a batch of prefix rows
    and an epoch takes as many steps.

    >>> train, valid, test = data_preparation(config, create_dataset(config))     # doctest: +SKIP
    >>> model = with_contrastive(SASRec, every_position=True)(config, train.dataset)  # doctest: +SKIP
    >>> Trainer(config, model).fit(every_position_loader(train), valid)          # doctest: +SKIP
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.interaction import Interaction

    dataset = train_data._dataset
    config = config or train_data.config
    uid_f, iid_f, list_f, len_f = sequence_fields(dataset)
    seqs = training_sequences(dataset)
    w = windows(seqs["offsets"], seqs["items"], int(config["MAX_ITEM_LIST_LENGTH"]))
    last = w["targets"][np.arange(len(w["lengths"])), w["lengths"] - 1]
    inter = Interaction({
        uid_f: torch.from_numpy(np.asarray(seqs["users"])[w["user"]].astype(np.int64)),
        list_f: torch.from_numpy(w["inputs"]), len_f: torch.from_numpy(w["lengths"]),
        iid_f: torch.from_numpy(last), EP_TARGETS: torch.from_numpy(w["targets"]),
        EP_SEQ_IDS: torch.from_numpy(w["seq_ids"]), EP_WINDOW: torch.arange(len(w["lengths"]))})
    windows_dataset = dataset.copy(inter)
    batch = config_value(config, "every_position_batch_size")
    if batch is None:  # as many target positions per step as a batch of prefix rows
        batch = max(1, round(int(config["train_batch_size"]) * len(w["lengths"]) / max(int(w["lengths"].sum()), 1)))

    class WindowLoader(TrainDataLoader):
        def _init_batch_size_and_step(self):
            self.step = int(batch)
            self.set_batch_size(int(batch))

    return WindowLoader(config, windows_dataset, None, shuffle=shuffle)
