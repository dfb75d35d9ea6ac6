"""PyTorch integration (torch is imported here and nowhere else in simmine).

- ``PositiveSampler``: one strong positive (uniform) and one weak positive (∝ score) per anchor, fresh each
  epoch, deterministic for (seed, epoch, anchor), safe in DataLoader workers and across ranks.
- ``WithPositives``: wraps a dataset indexed by seq_id so that each item comes with its positives.
- ``RelativeContrastiveLoss``: the weighted RCL loss (RCL, Eq. 12-17).
- ``batch_similarity``: the B×B similarity of two batches of padded histories, docs/metrics.md definitions.
"""
from .loss import RelativeContrastiveLoss, false_negatives, info_nce
from .sampler import AnchorSampler, PositiveBatch, PositiveSampler, WithPositives
from .similarity import batch_similarity, idf_from_build

__all__ = ["PositiveSampler", "PositiveBatch", "AnchorSampler", "WithPositives", "RelativeContrastiveLoss",
           "info_nce", "false_negatives", "batch_similarity", "idf_from_build"]
