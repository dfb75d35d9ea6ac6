"""The weighted relative contrastive loss of RCL (arXiv 2504.19178, Eq. 12-17).

For anchor representations h_u, strong keys k^s_u and weak keys k^w_u ([B, d] each):

    L_pair(u) = −log softmax_c(h_u·k^s_c / τ)[u]                  over the batch's valid strong keys c
    L_max(u)  = L_pair(u)                                         (one strong positive sampled per step)
    L_w(u)    = −log( s(u,u)·e^{h_u·k^w_u/τ} / Σ_c s(u,c)·e^{h_u·k^w_c/τ} )   over valid weak keys c,
                s(u,c) = max(sim[u,c], eps)
    L = (1/B) Σ_u [ m^s_u·L_pair(u) + m^w_u·( m^s_u·max(L_w(u), L_max(u)) + (1 − m^s_u)·L_w(u) ) ]

The max makes the weak term relative: a weak pair already closer than the strong boundary (L_w < L_max)
gets no gradient of its own. eps is the floor that keeps keys of zero similarity in the denominator (with
weight eps) instead of removing them. The training loss is L_rec + λ·L (Eq. 18).

Optionally, ``exclude_strong`` / ``exclude_weak`` ([B, B] bool) leave key c out of anchor u's denominator in
L_pair / L_w: in-batch false negatives, such as a key that is u's own sequence or has u's target (DuoRec masks
same-target negatives the same way). ``false_negatives`` builds them from seq_ids and targets. Without them
the formulas above hold exactly.
"""
from __future__ import annotations

import torch
from torch import nn


def info_nce(logits: torch.Tensor, valid_keys: torch.Tensor, log_weights: torch.Tensor = None,
             exclude: torch.Tensor = None) -> torch.Tensor:
    """Per row u: −log( w_uu e^{logits_uu} / Σ_{valid c, not exclude[u, c]} w_uc e^{logits_uc} ), diagonal
    always included so every row is finite (rows whose own key is invalid are discarded by the caller)."""
    b = logits.shape[0]
    if log_weights is not None:
        logits = logits + log_weights
    eye = torch.eye(b, dtype=torch.bool, device=logits.device)
    keep = valid_keys.reshape(1, -1).expand(b, b)
    if exclude is not None:
        keep = keep & ~exclude.to(torch.bool)
    keep = keep | eye
    masked = logits.masked_fill(~keep, float("-inf"))
    return torch.logsumexp(masked, dim=1) - logits.diagonal()


class RelativeContrastiveLoss(nn.Module):
    """Weighted RCL loss (Eq. 12-17); see the module docstring for the formulas.

    >>> loss_fn = RelativeContrastiveLoss(temperature=0.1)
    >>> h, ks, kw = torch.randn(3, 4, 8).unbind(0)
    >>> sim = torch.rand(4, 4)
    >>> mask = torch.ones(4, dtype=torch.bool)
    >>> loss = loss_fn(h, ks, kw, sim.diagonal(), mask, mask, sim)
    """

    def __init__(self, temperature: float = 0.1, eps: float = 1e-3):
        super().__init__()
        if temperature <= 0 or eps <= 0:
            raise ValueError("temperature and eps must be positive")
        self.temperature = float(temperature)
        self.eps = float(eps)

    def forward(self, anchor: torch.Tensor, strong: torch.Tensor, weak: torch.Tensor, weak_score: torch.Tensor,
                strong_mask: torch.Tensor, weak_mask: torch.Tensor, sim: torch.Tensor,
                exclude_strong: torch.Tensor = None, exclude_weak: torch.Tensor = None) -> torch.Tensor:
        """anchor, strong, weak: [B, d]; weak_score, masks: [B]; sim: [B, B] with sim[u, c] the similarity of
        anchor u's history and key c's history (its diagonal is weak_score); exclude_*: optional [B, B] bool,
        keys left out of anchor u's denominator (the diagonal is never left out)."""
        ms = strong_mask.to(torch.bool)
        mw = weak_mask.to(torch.bool)
        tau = self.temperature
        l_pair = info_nce(anchor @ strong.T / tau, ms, exclude=exclude_strong)
        weights = sim.to(anchor.dtype).clamp_min(self.eps)
        eye = torch.eye(len(weights), dtype=torch.bool, device=weights.device)
        weights = torch.where(eye, weak_score.to(anchor.dtype).clamp_min(self.eps).diag_embed(), weights)
        l_w = info_nce(anchor @ weak.T / tau, mw, weights.log(), exclude_weak)
        zero = torch.zeros_like(l_pair)
        weak_term = torch.where(ms, torch.maximum(l_w, l_pair), l_w)
        per_anchor = torch.where(ms, l_pair, zero) + torch.where(mw, weak_term, zero)
        return per_anchor.mean()


def false_negatives(anchor_ids: torch.Tensor, key_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: key c is anchor u's own sequence or has u's target (seq_ids index ``targets``)."""
    same_seq = key_ids.reshape(1, -1) == anchor_ids.reshape(-1, 1)
    same_target = targets[key_ids].reshape(1, -1) == targets[anchor_ids].reshape(-1, 1)
    return same_seq | same_target
