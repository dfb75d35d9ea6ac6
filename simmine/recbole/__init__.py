"""RecBole integration: simmine's positives for RecBole's training rows, a contrastive term for any RecBole
sequential model, FEARec's same-target sampling from simmine's strong groups, and an every-position training
mode (docs/recbole.md). This package is the only part of simmine that imports RecBole.

    from recbole.model.sequential_recommender import SASRec
    import simmine.recbole as sr

    config = Config(model=sr.with_contrastive(SASRec, kind="rcl", weight=0.1), dataset="ml-100k")

Compatibility (each shim is contained here and in the classes below, never applied globally):
- RecBole 1.2.1 uses ``np.float_`` and other NumPy 1 names, so it needs numpy<2; importing this package with
  numpy 2 (or without RecBole) raises ImportError with the fix in one line.
- torch >= 2.6 loads checkpoints with ``weights_only=True``, which refuses RecBole's checkpoints (they hold
  its Config). ``trusted_torch_load()`` turns ``weights_only=False`` back on for the duration of a ``with``
  block only; ``simmine.recbole.Trainer`` uses it around RecBole's own checkpoint loads (best model at test
  time, ``resume_checkpoint``). Use it only for checkpoints this process or you wrote.
- ``recbole.quick_start`` imports an old ``ray.tune``; nothing here imports it.
"""
from __future__ import annotations

from .compat import trusted_torch_load  # first: checks numpy and RecBole
from .positives import RecBolePositives, attach_positives, training_sequences
from .contrastive import with_contrastive
from .every_position import every_position_loader
from .fearec import SameTargetSampler, with_simmine_same_target
from .trainer import Trainer, lines_to_atomic, run

__all__ = ["trusted_torch_load", "RecBolePositives", "attach_positives", "training_sequences",
           "with_contrastive", "every_position_loader", "SameTargetSampler", "with_simmine_same_target",
           "Trainer", "run", "lines_to_atomic"]
