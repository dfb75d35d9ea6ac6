"""What a contrastive term encodes: the inputs of positive keys, in the view the trainer chooses."""
from __future__ import annotations

import torch

KEY_VIEWS = ("history", "full")


def key_inputs(histories: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor = None,
               view: str = "history") -> torch.Tensor:
    """The model inputs of keys ``ids`` (seq_ids): their histories [len(ids), L] (left-padded, as the build
    compared them), or with ``view="full"`` their full sequence T[:t+1], the target appended and the oldest
    item dropped to keep length L (RCL's released code encodes positives this way: a strong key then ends
    with the anchor's own target). ``targets`` [N] holds every seq_id's target item."""
    if view not in KEY_VIEWS:
        raise ValueError(f"view must be one of {', '.join(KEY_VIEWS)}, got {view!r}")
    ids = ids.to(histories.device)
    keys = histories[ids]
    if view == "history":
        return keys
    if targets is None:
        raise ValueError("view='full' needs the targets")
    return torch.cat((keys[:, 1:], targets.to(histories.device)[ids][:, None]), dim=1)
