"""Item graphs and item neighbours (docs/items.md), from the same loaders and split as ``simmine build``:

- co-occurrence graphs over the users' training sequences (the graph view of MVCrec and GCL4SR, ItemCF's
  co-occurrence counts): pairs within ``window`` positions or anywhere, weights, normalisations, top-k;
- item top-k by the items' user sets (Jaccard, cosine), with the same exact kernels as ``build``;
- item top-k by given item embeddings (SRA-CL's text neighbours), exact.

Items are coded 1..V in the sorted order of the log's item ids (0 is padding, the model's id space); the
output is ``items.arrow`` (row c: item c), ``edges.arrow`` (row c: its edges, best first) and a manifest,
written as ``build`` writes (temporary directory, then renamed).

Modules: cooccurrence (graphs over sequences and user sets, ranking), embedding (neighbours by given
vectors), command (the ``simmine items`` run), output (reading, verify, summary).
"""
from .command import items, run_items
from .config import ItemsConfig
from .output import ItemGraph, items_summary, open_items, verify_items

__all__ = ["ItemGraph", "ItemsConfig", "items", "items_summary", "open_items", "run_items", "verify_items"]
