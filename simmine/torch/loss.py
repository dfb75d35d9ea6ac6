"""Contrastive losses over simmine's positives: the relative contrastive loss of RCL (arXiv 2504.19178, Eq.
12-17), with the choices of its released code one option away, and DuoRec's supervised contrastive loss.

RelativeContrastiveLoss, for anchor representations h_u, strong keys k^s_u and weak keys k^w_u ([B, d] each):

    L_pair(u) = −log softmax_c(h_u·k^s_c / τ)[u]                  over the batch's valid strong keys c
    L_max(u)  = L_pair(u)                                         (one strong positive sampled per step)
    L_w(u)    = −log( s(u,u)·e^{h_u·k^w_u/τ} / Σ_c s(u,c)·e^{h_u·k^w_c/τ} )   over valid weak keys c,
                s(u,c) = max(sim[u,c], eps)
    L = (1/B) Σ_u [ m^s_u·L_pair(u) + m^w_u·( m^s_u·max(L_w(u), L_max(u)) + (1 − m^s_u)·L_w(u) ) ]

The max makes the weak term relative: a weak pair already closer than the strong boundary (L_w < L_max)
gets no gradient of its own. eps is the floor that keeps keys of zero similarity in the denominator (with
weight eps) instead of removing them. The training loss is L_rec + λ·L (Eq. 18).

Options (the paper's formula is ``logits="dot", relative="eq17", weak_weights="eq16"``):
- ``logits="cosine"``: representations are L2-normalised first, so h·k is a cosine in [-1, 1] (then / τ);
  the released code does this with τ = 0.1.
- ``relative="clamp"``: the released code's relative term: each weak logit is clamped from above to the
  batch's smallest strong-positive logit (h_v·k^s_v over anchors v with a strong positive), and L_w(u) is the
  plain weak InfoNCE, without the max against L_max.
- ``weak_weights="uniform"``: s(u, c) = 1 for every key (plain InfoNCE over weak keys).

Optionally, ``exclude_strong`` / ``exclude_weak`` ([B, B] bool) leave key c out of anchor u's denominator in
L_pair / L_w: in-batch false negatives, such as a key that is u's own sequence or has u's target (DuoRec masks
same-target negatives the same way). ``false_negatives`` builds them from seq_ids and targets. Without them
the formulas above hold exactly.

SupervisedContrastiveLoss is DuoRec's: the 2N-way InfoNCE between an anchor view z_u and its positive view
p_u (for DuoRec, a second dropout pass of the anchor and the encoding of a same-target sequence):

    L(u) = −log( e^{z_u·p_u/τ} / Σ_{x ≠ z_u} e^{z_u·x/τ} ),  x over the 2N views {z, p}; likewise for p_u,

averaged over the 2N rows of anchors with a positive (mask); dot products (or cosines with
``logits="cosine"``), τ = 1 as DuoRec's default.
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


LOGITS = ("dot", "cosine")
RELATIVE = ("eq17", "clamp")
WEAK_WEIGHTS = ("eq16", "uniform")


def _check(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _logits(a: torch.Tensor, b: torch.Tensor, kind: str, tau: float) -> torch.Tensor:
    if kind == "cosine":
        a, b = nn.functional.normalize(a, dim=1), nn.functional.normalize(b, dim=1)
    return a @ b.T / tau


class RelativeContrastiveLoss(nn.Module):
    """Weighted RCL loss (Eq. 12-17) and its released variants; see the module docstring for the formulas.

    >>> loss_fn = RelativeContrastiveLoss(temperature=0.1)
    >>> h, ks, kw = torch.randn(3, 4, 8).unbind(0)
    >>> sim = torch.rand(4, 4)
    >>> mask = torch.ones(4, dtype=torch.bool)
    >>> loss = loss_fn(h, ks, kw, sim.diagonal(), mask, mask, sim)
    """

    def __init__(self, temperature: float = 0.1, eps: float = 1e-3, logits: str = "dot", relative: str = "eq17",
                 weak_weights: str = "eq16"):
        super().__init__()
        if temperature <= 0 or eps <= 0:
            raise ValueError("temperature and eps must be positive")
        _check("logits", logits, LOGITS)
        _check("relative", relative, RELATIVE)
        _check("weak_weights", weak_weights, WEAK_WEIGHTS)
        self.temperature = float(temperature)
        self.eps = float(eps)
        self.logits, self.relative, self.weak_weights = logits, relative, weak_weights

    def forward(self, anchor: torch.Tensor, strong: torch.Tensor, weak: torch.Tensor, weak_score: torch.Tensor,
                strong_mask: torch.Tensor, weak_mask: torch.Tensor, sim: torch.Tensor,
                exclude_strong: torch.Tensor = None, exclude_weak: torch.Tensor = None) -> torch.Tensor:
        """anchor, strong, weak: [B, d]; weak_score, masks: [B]; sim: [B, B] with sim[u, c] the similarity of
        anchor u's history and key c's history (its diagonal is weak_score; unused with uniform weights);
        exclude_*: optional [B, B] bool, keys left out of anchor u's denominator (never the diagonal)."""
        ms = strong_mask.to(torch.bool)
        mw = weak_mask.to(torch.bool)
        tau = self.temperature
        strong_logits = _logits(anchor, strong, self.logits, tau)
        l_pair = info_nce(strong_logits, ms, exclude=exclude_strong)
        weak_logits = _logits(anchor, weak, self.logits, tau)
        log_w = None
        if self.weak_weights == "eq16":
            weights = sim.to(anchor.dtype).clamp_min(self.eps)
            eye = torch.eye(len(weights), dtype=torch.bool, device=weights.device)
            log_w = torch.where(eye, weak_score.to(anchor.dtype).clamp_min(self.eps).diag_embed(), weights).log()
        zero = torch.zeros_like(l_pair)
        if self.relative == "clamp":
            if ms.any():
                weak_logits = torch.minimum(weak_logits, strong_logits.diagonal()[ms].min())
            weak_term = info_nce(weak_logits, mw, log_w, exclude_weak)
        else:
            l_w = info_nce(weak_logits, mw, log_w, exclude_weak)
            weak_term = torch.where(ms, torch.maximum(l_w, l_pair), l_w)
        per_anchor = torch.where(ms, l_pair, zero) + torch.where(mw, weak_term, zero)
        return per_anchor.mean()


class SupervisedContrastiveLoss(nn.Module):
    """DuoRec's supervised contrastive loss: 2N-way in-batch InfoNCE between anchor views and positive views
    (see the module docstring). Rows whose anchor has no positive (mask False) are left out of the loss and
    of every other row's denominator.

    >>> loss_fn = SupervisedContrastiveLoss(temperature=1.0)
    >>> z, p = torch.randn(2, 4, 8).unbind(0)
    >>> loss = loss_fn(z, p, torch.ones(4, dtype=torch.bool))
    """

    def __init__(self, temperature: float = 1.0, logits: str = "dot"):
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        _check("logits", logits, LOGITS)
        self.temperature, self.logits = float(temperature), logits

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor = None,
                exclude: torch.Tensor = None) -> torch.Tensor:
        """anchor, positive: [B, d]; mask: [B] bool (anchors with a positive); exclude: optional [B, B] bool,
        anchor c (with both its views) left out of anchor u's denominators, e.g. a same-target anchor."""
        b = anchor.shape[0]
        mask = torch.ones(b, dtype=torch.bool, device=anchor.device) if mask is None else mask.to(torch.bool)
        if not mask.any():
            return anchor.sum() * 0.0
        z = torch.cat((anchor, positive))
        logits = _logits(z, z, self.logits, self.temperature)
        keep = mask.repeat(2)
        eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
        out = ~keep[None, :] | eye  # other anchors' views without a positive, and each row's own view
        if exclude is not None:
            ex = exclude.to(torch.bool) & ~torch.eye(b, dtype=torch.bool, device=z.device)
            out = out | ex.repeat(2, 2)
        pair = torch.arange(2 * b, device=z.device).roll(b)  # row r's positive: r ± b
        logits = logits.masked_fill(out, float("-inf"))
        per_row = torch.logsumexp(logits, dim=1) - logits.gather(1, pair[:, None]).squeeze(1)
        return per_row[keep].mean()


def false_negatives(anchor_ids: torch.Tensor, key_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: key c is anchor u's own sequence or has u's target (seq_ids index ``targets``)."""
    same_seq = key_ids.reshape(1, -1) == anchor_ids.reshape(-1, 1)
    same_target = targets[key_ids].reshape(1, -1) == targets[anchor_ids].reshape(-1, 1)
    return same_seq | same_target
