"""Positive sampling for contrastive training (RCL Eq. 10), stateless given (seed, epoch, anchor).

Every draw is a counter-based hash of (seed, epoch, anchor, stream), so a batch's draws do not depend on
which other anchors it holds, on the worker or rank that computes it, or on what was drawn before: resuming
needs only (seed, epoch), and distributed ranks agree without communicating.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np
import torch

from ..hashing import unit_uniform
from ..positives import Positives

_STRONG, _WEAK, _ORDER = 1, 2, 3


def uniform(seed: int, epoch: int, stream: int, keys: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) floats from splitmix64 of (seed, epoch, stream, key), vectorised over keys."""
    return unit_uniform(keys, seed * 0x632BE59BD9B4E019 + epoch * 0x85157AF5 + stream * 0x94D049BB133111EB)


@dataclass
class PositiveBatch:
    """Per anchor of a batch: one strong and one weak positive (seq_ids), the weak one's score, and masks.
    Where an anchor has none, the index is the anchor itself and the mask is False (score 0)."""

    strong: torch.Tensor
    strong_mask: torch.Tensor
    weak: torch.Tensor
    weak_score: torch.Tensor
    weak_mask: torch.Tensor

    def to(self, device) -> "PositiveBatch":
        return PositiveBatch(*(t.to(device) for t in (self.strong, self.strong_mask, self.weak, self.weak_score,
                                                       self.weak_mask)))


class PositiveSampler:
    """Draws positives for batches of anchors from a simmine build.

    >>> sampler = PositiveSampler(simmine.open("simmine-out"), seed=0)   # doctest: +SKIP
    >>> sampler.set_epoch(3)                                             # doctest: +SKIP
    >>> pb = sampler.sample(torch.tensor([0, 5, 9]))                     # doctest: +SKIP
    >>> pb.weak, pb.weak_score, pb.weak_mask                             # doctest: +SKIP
    """

    def __init__(self, positives: Union[Positives, str, os.PathLike], seed: int = 0):
        self.positives = positives if isinstance(positives, Positives) else Positives(os.fspath(positives))
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.positives)

    def sample(self, anchors) -> PositiveBatch:
        """Positives for a 1-D tensor (or array) of seq_ids; deterministic for (seed, epoch, anchors)."""
        a = anchors.detach().cpu().numpy() if isinstance(anchors, torch.Tensor) else np.asarray(anchors)
        a = a.astype(np.int64).reshape(-1)
        # strong: uniform over strong(i), drawn from its group without building the list
        strong, has_strong = self.positives.draw_strong(a, uniform(self.seed, self.epoch, _STRONG, a))
        # weak: P(j) = score_j / Σ scores (Eq. 10), by inverse CDF over the concatenated lists
        w_off, w_nbr, w_score = self.positives.gather_weak(a)
        w_len = np.diff(w_off)
        has_weak = w_len > 0
        weak, weak_score = a.copy(), np.zeros(len(a), dtype=np.float32)
        if has_weak.any():
            cum = np.cumsum(w_score, dtype=np.float64)
            base = np.where(w_off[:-1] > 0, cum[np.maximum(w_off[:-1] - 1, 0)], 0.0)
            total = cum[np.maximum(w_off[1:] - 1, 0)] - base
            target = base + uniform(self.seed, self.epoch, _WEAK, a) * total
            idx = np.searchsorted(cum, target, side="right")
            idx = np.clip(idx, w_off[:-1], np.maximum(w_off[1:] - 1, w_off[:-1]))
            weak = np.where(has_weak, w_nbr[np.minimum(idx, len(w_nbr) - 1)].astype(np.int64), a)
            weak_score = np.where(has_weak, w_score[np.minimum(idx, len(w_nbr) - 1)], 0.0).astype(np.float32)
        return PositiveBatch(torch.from_numpy(strong.astype(np.int64)), torch.from_numpy(has_strong),
                             torch.from_numpy(weak.astype(np.int64)), torch.from_numpy(weak_score),
                             torch.from_numpy(has_weak))

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "path": self.positives.path}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


class AnchorSampler(torch.utils.data.Sampler):
    """A per-epoch shuffle of seq_ids, sharded across distributed ranks, resumable mid-epoch.

    Rank r of w takes every w-th anchor of the epoch's permutation (padded by wrapping so ranks get equal
    counts, as torch's DistributedSampler does). ``state_dict`` records the epoch and how many indices this
    rank has already yielded, so a restarted job continues where it stopped.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        if rank is None or world_size is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if ready and rank is None else (rank or 0)
            world_size = dist.get_world_size() if ready and world_size is None else (world_size or 1)
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch, self.position = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def _indices(self) -> np.ndarray:
        if self.shuffle:
            order = np.argsort(uniform(self.seed, self.epoch, _ORDER, np.arange(self.n)), kind="stable")
        else:
            order = np.arange(self.n)
        per_rank = -(-self.n // self.world_size)
        padded = np.resize(order, per_rank * self.world_size)
        return padded[self.rank::self.world_size]

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self) -> Iterator[int]:
        indices = self._indices()
        while self.position < len(indices):
            i = int(indices[self.position])
            self.position += 1
            yield i

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])


class WithPositives(torch.utils.data.Dataset):
    """Wraps a dataset whose index i is seq_id i: item i comes with one strong and one weak positive.

    Returns a dict: ``anchor`` (dataset[i]), ``strong`` (dataset[strong]), ``weak`` (dataset[weak]),
    ``strong_index``, ``weak_index``, ``weak_score``, ``strong_mask``, ``weak_mask``, ``index``. Call
    ``set_epoch`` each epoch; the positives file is opened lazily in each DataLoader worker.
    """

    def __init__(self, dataset, positives: Union[Positives, str, os.PathLike], seed: int = 0):
        self.dataset = dataset
        self.sampler = PositiveSampler(positives, seed)
        if len(dataset) != len(self.sampler):
            raise ValueError(f"dataset has {len(dataset)} items but the build has {len(self.sampler)} anchors")

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        pb = self.sampler.sample(np.array([i]))
        s, w = int(pb.strong[0]), int(pb.weak[0])
        return {"index": i, "anchor": self.dataset[i], "strong": self.dataset[s], "weak": self.dataset[w],
                "strong_index": s, "weak_index": w, "weak_score": float(pb.weak_score[0]),
                "strong_mask": bool(pb.strong_mask[0]), "weak_mask": bool(pb.weak_mask[0])}
