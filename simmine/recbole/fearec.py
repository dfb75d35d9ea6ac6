"""FEARec's same-target sampling served by simmine's strong groups.

FEARec (RecBole 1.2.1) indexes, for every training row, all rows with the same target (one ``np.where`` over
the whole training set per row, O(N²)), then for each row of a batch picks uniformly among them, rejecting
rows whose ``item_id_list`` equals the anchor's; when every candidate is equal, the last one drawn (uniform
over all same-target rows, the anchor included) is kept. ``SameTargetSampler`` draws from exactly that
distribution, vectorised, from a simmine build with ``same_user="keep"`` (strong groups = same target), with
draws deterministic per (seed, epoch, row). ``with_simmine_same_target(FEARec)`` makes FEARec use it.
"""
from __future__ import annotations

import numpy as np

from ._hash import uniform
from .contrastive import register_class
from .positives import SEQ_ID, config_value, attach_positives, params_from_config

_ROUNDS = 32


class SameTargetSampler:
    """Same-target training rows per row, with FEARec's distribution.

    >>> sampler = SameTargetSampler(train_data.dataset, seed=0)     # doctest: +SKIP
    >>> partner_rows = sampler.sample(np.arange(8), epoch=0)       # doctest: +SKIP
    """

    def __init__(self, dataset, seed: int = 0, cache: str = None, **params):
        # only the strong groups are read: the cheapest weak selection (identical sets, by prefix filtering)
        params = dict({"min_sim": 1.0, "metric": "jaccard"}, **params, same_user="keep")
        self.rp = attach_positives(dataset, cache=cache, **params)
        self.pos, self.seed = self.rp.positives, int(seed)
        hist = self.rp.hist.numpy()
        rows = np.ascontiguousarray(hist).view(np.dtype((np.void, hist.dtype.itemsize * hist.shape[1])))
        _, self.hist_id = np.unique(rows.reshape(-1), return_inverse=True)  # one key per row: equal lists
        self.hist_id = self.hist_id.reshape(-1)
        targets = self.rp.targets.numpy()
        key = targets.astype(np.int64) * (int(self.hist_id.max(initial=0)) + 1) + self.hist_id
        _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
        self.same_key = counts[inv.reshape(-1)]  # rows (itself included) with its target and its history
        self.group = self.pos.strong_counts() + 1  # rows with its target, itself included

    def sample_seq_ids(self, anchors: np.ndarray, epoch: int) -> np.ndarray:
        """One same-target seq_id per anchor seq_id, as FEARec draws it."""
        a = np.asarray(anchors, dtype=np.int64)
        out = np.empty(len(a), dtype=np.int64)
        all_equal = self.same_key[a] == self.group[a]
        # every candidate has the anchor's history: uniform over the whole group, the anchor included
        if all_equal.any():
            e = a[all_equal]
            self_pick = uniform(self.seed, epoch, 20, e) * self.group[e] < 1.0
            other, _ = self.pos.draw_strong(e, uniform(self.seed, epoch, 21, e))
            out[all_equal] = np.where(self_pick, e, other)
        todo = np.flatnonzero(~all_equal)
        for r in range(_ROUNDS):  # uniform over the group's rows with another history, by rejection
            if not len(todo):
                break
            t = a[todo]
            drawn, _ = self.pos.draw_strong(t, uniform(self.seed, epoch, 22 + r, t))
            ok = self.hist_id[drawn] != self.hist_id[t]
            out[todo[ok]] = drawn[ok]
            todo = todo[~ok]
        for i in todo.tolist():  # rare: many equal histories in the group; exact draw from the list
            cand = self.pos.strong(int(a[i])).astype(np.int64)
            cand = cand[self.hist_id[cand] != self.hist_id[a[i]]]
            out[i] = cand[min(int(uniform(self.seed, epoch, 99, a[i:i + 1])[0] * len(cand)), len(cand) - 1)]
        return out

    def sample(self, rows: np.ndarray, epoch: int) -> np.ndarray:
        """One same-target training row per training row (indices into the dataset's ``inter_feat``)."""
        seq = self.rp.seq_of_row[np.asarray(rows, dtype=np.int64)]
        return self.rp.row_of_seq[self.sample_seq_ids(seq, epoch)]


class _Drawn:
    """Stands in for FEARec's ``same_item_index``: answers the batch's rows in order with one pre-drawn row
    each, so FEARec's own loop accepts it at once."""

    def __init__(self, rows: np.ndarray):
        self.rows, self.at = rows, 0

    def __getitem__(self, item_id):
        row = self.rows[self.at]
        self.at += 1
        return np.array([row])


def with_simmine_same_target(model_class):
    """FEARec (or a subclass) whose same-target rows come from ``SameTargetSampler`` instead of its O(N²)
    index; its losses are unchanged.

    >>> from recbole.model.sequential_recommender import FEARec
    >>> with_simmine_same_target(FEARec).__name__
    'FEARec'
    """

    class Served(model_class):
        def get_same_item_index(self, dataset):
            config = dataset.config
            params = {k: v for k, v in params_from_config(config).items() if k in ("backend", "threads")}
            self.simmine_same_target = SameTargetSampler(dataset, seed=int(config["seed"] or 0),
                                                         cache=config_value(config, "simmine_cache"), **params)
            self._train_calls = 0
            return None

        def train(self, mode: bool = True):
            if mode and hasattr(self, "_train_calls"):
                self._train_calls += 1
            return super().train(mode)

        def set_epoch(self, epoch: int) -> None:
            self._epoch_given = int(epoch)

        def calculate_loss(self, interaction):
            epoch = getattr(self, "_epoch_given", None)
            epoch = max(self._train_calls - 1, 0) if epoch is None else epoch
            seq = interaction[SEQ_ID].cpu().numpy()
            drawn = self.simmine_same_target.sample_seq_ids(seq, epoch)
            self.same_item_index = _Drawn(self.simmine_same_target.rp.row_of_seq[drawn])
            return super().calculate_loss(interaction)

    Served.__name__ = model_class.__name__
    return register_class(Served)
