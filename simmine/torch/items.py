"""Item graphs and neighbour tables in PyTorch (docs/items.md), in the model's item id space: codes 1..V in
the sorted order of the log's item ids, 0 for padding (``ItemGraph.items()`` maps codes back).

- ``graph_tensor``: the graph as a torch sparse [V + 1, V + 1] tensor (COO or CSR);
- ``edge_index``: PyTorch Geometric-style ``edge_index`` [2, E] and ``edge_weight`` [E] (PyG not needed);
- ``neighbor_tensors``: each item's best k neighbours [V + 1, k] and their scores;
- ``ItemSubstitution``: substitution and insertion augmentation from a neighbour table, vectorised over a
  padded batch, deterministic per (seed, epoch, row, position) like the positive sampler.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch

from ..graphs import ItemGraph

_SUBSTITUTE, _PICK, _INSERT = 11, 12, 13


def _graph(graph: Union[ItemGraph, str, os.PathLike]) -> ItemGraph:
    return graph if isinstance(graph, ItemGraph) else ItemGraph(os.fspath(graph))


def edge_index(graph: Union[ItemGraph, str, os.PathLike]):
    """(edge_index LongTensor [2, E], edge_weight FloatTensor [E]) over item codes, rows in code order and
    each row's edges best first, as PyTorch Geometric takes them."""
    src, dst, w = _graph(graph).edges(codes=True)
    return torch.from_numpy(np.stack((src, dst))), torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))


def graph_tensor(graph: Union[ItemGraph, str, os.PathLike], layout: str = "coo") -> torch.Tensor:
    """The graph as a sparse [V + 1, V + 1] float32 tensor: ``layout="coo"`` (coalesced) or ``"csr"``."""
    g = _graph(graph)
    index, weight = edge_index(g)
    size = (g.n_items + 1, g.n_items + 1)
    coo = torch.sparse_coo_tensor(index, weight, size, check_invariants=False).coalesce()  # indices are in range
    if layout == "coo":
        return coo
    if layout == "csr":
        import warnings

        with warnings.catch_warnings():  # torch calls its CSR support beta
            warnings.simplefilter("ignore", UserWarning)
            return coo.to_sparse_csr()
    raise ValueError(f"layout must be 'coo' or 'csr', got {layout!r}")


def neighbor_tensors(graph: Union[ItemGraph, str, os.PathLike], k: int = None):
    """(LongTensor [V + 1, k], FloatTensor [V + 1, k]): each item code's best k neighbours (itself left out,
    best first, 0 where it has fewer) and their scores; row 0 (padding) has none."""
    table, scores = _graph(graph).neighbor_table(k)
    return torch.from_numpy(table), torch.from_numpy(scores)


def _uniform(seed: int, epoch: int, stream: int, keys: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) floats from splitmix64 of (seed, epoch, stream, key), as the positive sampler draws."""
    from .sampler import uniform as draw

    return torch.from_numpy(draw(seed, epoch, stream, keys.reshape(-1).cpu().numpy())).reshape(keys.shape)


class ItemSubstitution:
    """Augments a left- or right-padded batch of item codes [B, L] with item neighbours (CoSeRec, SRA-CL).

    ``mode="substitute"``: each item is replaced, with probability p, by one of its neighbours drawn
    uniformly (an item without neighbours stays). ``mode="insert"``: after each item, with probability p, one
    of its neighbours is inserted; the sequence keeps its last L items, on its padding side. Draws are hashes
    of (seed, epoch, row, position), so a row's augmentation does not depend on the batch it is in.

    >>> table, _ = neighbor_tensors("simmine-items", k=10)               # doctest: +SKIP
    >>> aug = ItemSubstitution(table, p=0.2, seed=0)                      # doctest: +SKIP
    >>> view = aug(batch, rows=seq_ids, epoch=3)                          # doctest: +SKIP
    """

    def __init__(self, table: torch.Tensor, p: float = 0.2, seed: int = 0, mode: str = "substitute"):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if mode not in ("substitute", "insert"):
            raise ValueError(f"mode must be 'substitute' or 'insert', got {mode!r}")
        self.table = table.long()
        self.counts = (self.table > 0).sum(dim=1)
        self.p, self.seed, self.mode = float(p), int(seed), mode

    def _draws(self, rows: torch.Tensor, length: int, epoch: int, stream: int) -> torch.Tensor:
        keys = rows.reshape(-1, 1).long().cpu() * (1 << 20) + torch.arange(length)[None, :]
        return _uniform(self.seed, epoch, stream, keys)

    def _pick(self, items: torch.Tensor, rows: torch.Tensor, epoch: int):
        """(whether to act, the neighbour drawn) for every position."""
        table = self.table.to(items.device)
        counts = self.counts.to(items.device)[items]
        act = (self._draws(rows, items.shape[1], epoch, self.mode_stream).to(items.device) < self.p)
        act &= (items != 0) & (counts > 0)
        u = self._draws(rows, items.shape[1], epoch, _PICK).to(items.device)
        slot = torch.minimum((u * counts).long(), (counts - 1).clamp_min(0))
        return act, table[items, slot]

    @property
    def mode_stream(self) -> int:
        return _SUBSTITUTE if self.mode == "substitute" else _INSERT

    def __call__(self, batch: torch.Tensor, rows: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        """The augmented batch; ``rows`` identifies each row (e.g. its seq_id) for the draws."""
        act, nbr = self._pick(batch, rows, epoch)
        if self.mode == "substitute":
            return torch.where(act, nbr, batch)
        b, length = batch.shape
        both = torch.stack((batch, torch.where(act, nbr, torch.zeros_like(batch))), dim=2).reshape(b, 2 * length)
        keep = both != 0
        left = bool((batch[:, 0] == 0).any()) or not bool((batch[:, -1] == 0).any())  # left-padded (or full)
        order = torch.argsort((keep if left else ~keep).to(torch.int8), dim=1, stable=True)
        packed = torch.gather(both, 1, order)  # left: padding then items; right: items then padding
        if left:
            return packed[:, -length:]
        over = (keep.sum(dim=1) - length).clamp_min(0)  # right-padded: drop the oldest items past L
        return torch.gather(packed, 1, torch.arange(length, device=batch.device)[None, :] + over[:, None])
