"""PyTorch integration (torch is imported here and nowhere else in simmine).

- ``PositiveSampler``: one strong positive (uniform) and one weak positive (∝ score) per anchor, fresh each
  epoch, deterministic for (seed, epoch, anchor), safe in DataLoader workers and across ranks.
- ``WithPositives``: wraps a dataset indexed by seq_id so that each item comes with its positives.
- ``RelativeContrastiveLoss``: the weighted RCL loss (RCL, Eq. 12-17) and its released variants.
- ``SupervisedContrastiveLoss``: DuoRec's 2N-way InfoNCE between anchor views and same-target positives.
- ``graph_tensor``, ``edge_index``, ``neighbor_tensors``, ``ItemSubstitution``: item graphs and item
  neighbours from ``simmine items`` for GNNs and augmentation (docs/items.md).
- ``key_inputs``: the inputs a trainer encodes for positive keys, as histories or with their target appended.
- ``batch_similarity``: the B×B similarity of two batches of padded histories, docs/metrics.md definitions.
"""
from .loss import RelativeContrastiveLoss, SupervisedContrastiveLoss, false_negatives, info_nce
from .sampler import AnchorSampler, PositiveBatch, PositiveSampler, WithPositives
from .similarity import batch_similarity, idf_from_build
from .items import ItemSubstitution, edge_index, graph_tensor, neighbor_tensors
from .views import key_inputs

__all__ = ["PositiveSampler", "PositiveBatch", "AnchorSampler", "WithPositives", "RelativeContrastiveLoss",
           "SupervisedContrastiveLoss",
           "info_nce", "false_negatives", "batch_similarity", "idf_from_build", "key_inputs", "ItemSubstitution",
           "edge_index", "graph_tensor", "neighbor_tensors"]
