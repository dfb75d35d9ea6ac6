"""A contrastive term for any RecBole sequential model with ``forward(item_seq, item_seq_len)``.

``with_contrastive(SASRec, kind="rcl", weight=0.1)`` returns a subclass (same name, so RecBole still loads the
model's own YAML defaults) whose ``calculate_loss`` is the model's loss + λ·term:
- ``rcl``: simmine's RelativeContrastiveLoss over one strong (same target) and one weak (most similar history)
  positive per anchor, drawn by PositiveSampler (deterministic per seed and epoch);
- ``duorec``: SupervisedContrastiveLoss (DuoRec's) between the anchor and a same-target positive;
- ``random``: the placebo: the same term (``cl_placebo_of``, RCL by default) with positives drawn uniformly
  at random among all anchors.
Options come from RecBole config keys first (``contrastive``, ``cl_weight``, ...; docs/recbole.md), then from
the arguments of ``with_contrastive``, then the defaults below. With ``every_position: True`` the loss is
cross-entropy at every position of a window batch (``every_position_loader``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from simmine.torch import (PositiveSampler, RelativeContrastiveLoss, SupervisedContrastiveLoss, batch_similarity,
                           false_negatives, idf_from_build)

from ._hash import uniform
from .positives import BUILD_KEYS, SEQ_ID, config_value, attach_positives, params_from_config

KINDS = ("none", "rcl", "duorec", "random")
DEFAULTS = {
    "contrastive": "none",        # none | rcl | duorec | random
    "cl_weight": 0.1,             # λ
    "cl_temperature": 1.0,        # τ
    "cl_logits": "dot",           # dot | cosine
    "cl_relative": "eq17",        # eq17 | clamp (rcl)
    "cl_weak_weights": "eq16",    # eq16 | uniform (rcl)
    "cl_eps": 1e-3,               # floor of Eq. 16's weights (rcl)
    "cl_anchor_pass": "separate",  # separate | shared: the anchor's own dropout pass or the recommendation pass
    "cl_key_view": "history",     # history | full: keys with their target appended
    "cl_positions": "sampled",    # every-position mode: sampled | last window position contrasted
    "cl_false_negatives": False,  # leave same-target / same-sequence keys out of the denominators
    "cl_placebo_of": "rcl",       # random: the term it replaces positives of (rcl | duorec)
    "every_position": False,
}
EP_TARGETS, EP_SEQ_IDS, EP_WINDOW = "simmine_targets", "simmine_seq_ids", "simmine_window"
_RANDOM_STRONG, _RANDOM_WEAK, _POSITION = 11, 12, 13


def resolve_options(config, defaults: dict) -> dict:
    """Config keys first, then ``defaults`` (with_contrastive's arguments), then DEFAULTS; validated.

    >>> resolve_options({"contrastive": "rcl"}, {})["cl_weight"]
    0.1
    """
    opts = {}
    for key, value in DEFAULTS.items():
        given = config_value(config, key)
        opts[key] = given if given is not None else defaults.get(key, value)
    if opts["contrastive"] not in KINDS:
        raise ValueError(f"contrastive must be one of {', '.join(KINDS)}, got {opts['contrastive']!r}")
    choices = {"cl_anchor_pass": ("separate", "shared"), "cl_key_view": ("history", "full"),
               "cl_positions": ("sampled", "last"), "cl_placebo_of": ("rcl", "duorec")}
    for key, allowed in choices.items():
        if opts[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {opts[key]!r}")
    return opts


class ContrastiveMixin:
    """Placed before a RecBole sequential model class by ``with_contrastive``; see the module docstring."""

    simmine_defaults: dict = {}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.cl = resolve_options(config, self.simmine_defaults)
        self.simmine_seed = int(config["seed"] or 0)
        self._epoch_given, self._train_calls = None, 0
        self._all_positions, self._captured = False, None
        if self.cl["every_position"] and config["loss_type"] != "CE":
            raise ValueError("every_position trains with cross-entropy over all items: set loss_type: CE")
        self.simmine = None
        if self.cl["contrastive"] != "none":
            d = self.simmine_defaults
            params = dict(d.get("simmine_build") or {})
            params.update({k[8:]: v for k, v in d.items() if k.startswith("simmine_") and k[8:] in
                           BUILD_KEYS + ("same_user", "threads")})
            params.update(params_from_config(config))
            cache = config_value(config, "simmine_cache") or self.simmine_defaults.get("simmine_cache")
            self.simmine = attach_positives(dataset, cache=cache, **params)
            self.simmine_sampler = PositiveSampler(self.simmine.positives, seed=self.simmine_seed)
            metric = self.simmine.params.get("metric", "jaccard")
            self._sim_args = {"metric": metric, "ngram_n": int(self.simmine.params.get("ngram_n") or 2)}
            if metric == "tfidf":
                self._sim_args["idf"] = idf_from_build(self.simmine.path)
            c = self.cl
            self.rcl_loss = RelativeContrastiveLoss(c["cl_temperature"], c["cl_eps"], c["cl_logits"],
                                                    c["cl_relative"], c["cl_weak_weights"])
            self.duorec_loss = SupervisedContrastiveLoss(c["cl_temperature"], c["cl_logits"])
        self._tensors = {}

    # ------------------------------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds this epoch's positives (simmine.recbole.Trainer calls it; RecBole's own Trainer
        calls ``model.train()`` once per epoch, which is counted instead)."""
        self._epoch_given = int(epoch)

    @property
    def simmine_epoch(self) -> int:
        return self._epoch_given if self._epoch_given is not None else max(self._train_calls - 1, 0)

    def train(self, mode: bool = True):
        if mode and getattr(self, "_epoch_given", 0) is None:
            self._train_calls += 1
        return super().train(mode)

    # ------------------------------------------------------------------------------------------ passes
    def gather_indexes(self, output, gather_index):
        if self._all_positions:
            return output
        return super().gather_indexes(output, gather_index)

    def forward(self, item_seq, item_seq_len):
        out = super().forward(item_seq, item_seq_len)
        if self._captured is not None and not self._captured:
            self._captured.append(out)
        return out

    def all_positions(self, item_seq, item_seq_len) -> torch.Tensor:
        """Every position's state [B, L, d] from the model's own forward (its gather of the last position is
        skipped); needs a causal model whose forward ends with ``gather_indexes`` (SASRec, GRU4Rec, ...)."""
        self._all_positions = True
        try:
            out = super().forward(item_seq, item_seq_len)
        finally:
            self._all_positions = False
        if out.dim() != 3:
            raise TypeError(f"{type(self).__name__}.forward does not end with gather_indexes, so every-position "
                            f"training cannot read its per-position states")
        return out

    def _tensor(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            self._tensors[name] = getattr(self.simmine, name).to(self.device)
        return self._tensors[name]

    # ------------------------------------------------------------------------------------------ losses
    def calculate_loss(self, interaction):
        if self.cl["every_position"]:
            rec, anchors, h = self._every_position_loss(interaction)
        else:
            rec, anchors, h = self._prefix_loss(interaction)
        if self.cl["contrastive"] == "none":
            return rec
        return rec + float(self.cl["cl_weight"]) * self.contrastive_term(anchors, h)

    def _prefix_loss(self, interaction):
        shared = self.cl["contrastive"] != "none" and self.cl["cl_anchor_pass"] == "shared"
        self._captured = [] if shared else None
        try:
            rec = super().calculate_loss(interaction)
            h = self._captured[0] if shared else None
        finally:
            self._captured = None
        if self.cl["contrastive"] == "none":
            return rec, None, None
        if SEQ_ID not in interaction.interaction:
            raise KeyError(f"the batch has no {SEQ_ID} column: build the model on the training dataset "
                           f"(train_data.dataset) before iterating it")
        anchors = interaction[SEQ_ID]
        if h is None:
            h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return rec, anchors, h

    def _every_position_loss(self, interaction):
        if EP_TARGETS not in interaction.interaction:
            raise KeyError("every_position: train on simmine.recbole.every_position_loader(train_data)")
        seq, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        states = self.all_positions(seq, length)
        nxt = interaction[EP_TARGETS]
        real = nxt != 0
        logits = states[real] @ self.item_embedding.weight.T  # every item, padding included, as RecBole's CE
        rec = nn.functional.cross_entropy(logits, nxt[real])
        if self.cl["contrastive"] == "none":
            return rec, None, None
        rows = torch.arange(len(seq), device=seq.device)
        if self.cl["cl_positions"] == "last":
            p = length - 1
        else:
            u = uniform(self.simmine_seed, self.simmine_epoch, _POSITION, interaction[EP_WINDOW].cpu().numpy())
            p = torch.from_numpy(np.floor(u * length.cpu().numpy()).astype(np.int64)).to(seq.device)
            p = torch.minimum(p, length - 1)
        anchors = interaction[EP_SEQ_IDS][rows, p]
        if self.cl["cl_anchor_pass"] == "shared":
            h = states[rows, p]
        else:
            h = self.all_positions(seq, length)[rows, p]
        return rec, anchors, h

    def encode_keys(self, ids: torch.Tensor) -> torch.Tensor:
        """Representations of anchors ``ids`` (seq_ids) from their histories, or with ``cl_key_view: full``
        their history with the target appended (the oldest item dropped when the history is full)."""
        ids = ids.to(self.device)
        seq, length = self._tensor("hist")[ids], self._tensor("hist_len")[ids]
        if self.cl["cl_key_view"] == "full":
            width = seq.shape[1]
            target = self._tensor("targets")[ids]
            full = length >= width
            seq = torch.where(full[:, None], seq.roll(-1, dims=1), seq)
            at = torch.where(full, torch.full_like(length, width - 1), length)
            seq = seq.scatter(1, at[:, None], target[:, None])
            length = torch.clamp(length + 1, max=width)
        return self.forward(seq, length)

    def _draw(self, anchors: torch.Tensor):
        """(strong ids, strong mask, weak ids, weak score, weak mask) on the model's device."""
        a = anchors.detach().cpu()
        kind = self.cl["contrastive"]
        if kind == "random":
            n = len(self.simmine)
            keys = a.numpy()
            ids = []
            for stream in (_RANDOM_STRONG, _RANDOM_WEAK):  # uniform over the other anchors
                pick = np.floor(uniform(self.simmine_seed, self.simmine_epoch, stream, keys) * (n - 1)).astype(np.int64)
                ids.append(torch.from_numpy(np.where(pick >= keys, pick + 1, pick)))
            ones = torch.ones(len(a), dtype=torch.bool)
            return ids[0], ones, ids[1], None, ones
        self.simmine_sampler.set_epoch(self.simmine_epoch)
        pb = self.simmine_sampler.sample(a)
        return pb.strong, pb.strong_mask, pb.weak, pb.weak_score, pb.weak_mask

    def contrastive_term(self, anchors: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The unweighted term for anchors (seq_ids [B]) with representations h [B, d]."""
        strong, ms, weak, w_score, mw = self._draw(anchors)
        dev = h.device
        anchors = anchors.to(dev)
        strong, ms, weak, mw = strong.to(dev), ms.to(dev), weak.to(dev), mw.to(dev)
        kind = self.cl["cl_placebo_of"] if self.cl["contrastive"] == "random" else self.cl["contrastive"]
        targets = self._tensor("targets")
        if kind == "duorec":
            ex = false_negatives(anchors, anchors, targets) if self.cl["cl_false_negatives"] else None
            return self.duorec_loss(h, self.encode_keys(strong), ms, ex)
        ks, kw = self.encode_keys(strong), self.encode_keys(weak)
        hist = self._tensor("hist")
        sim = batch_similarity(hist[anchors], hist[weak], **self._sim_args).to(dev)
        if w_score is None:  # placebo: the random weak key's own similarity
            w_score = sim.diagonal().clone()
        ex_s = ex_w = None
        if self.cl["cl_false_negatives"]:
            ex_s, ex_w = false_negatives(anchors, strong, targets), false_negatives(anchors, weak, targets)
        return self.rcl_loss(h, ks, kw, w_score.to(dev), ms, mw, sim, ex_s, ex_w)


def with_contrastive(model_class, kind: str = None, weight: float = None, temperature: float = None,
                     every_position: bool = None, **options):
    """A subclass of a RecBole sequential model whose loss adds λ·(contrastive term) over simmine's positives.

    ``options``: the ``cl_*`` keys without their prefix (logits, relative, weak_weights, eps, anchor_pass,
    key_view, positions, false_negatives, placebo_of) and simmine.build keywords (metric, k, alpha, min_sim,
    ngram_n, same_user, cache, ...), stored as the config keys ``simmine_<name>``. RecBole config keys of the
    same names take precedence. The subclass keeps the model's name, so its YAML defaults still apply.

    >>> from recbole.model.sequential_recommender import SASRec
    >>> model_class = with_contrastive(SASRec, kind="rcl", weight=0.1, temperature=1.0, metric="jaccard")
    >>> model_class.__name__
    'SASRec'
    """
    defaults = {}
    for key, value in (("contrastive", kind), ("cl_weight", weight), ("cl_temperature", temperature),
                       ("every_position", every_position)):
        if value is not None:
            defaults[key] = value
    for key, value in options.items():
        if f"cl_{key}" in DEFAULTS:
            defaults[f"cl_{key}"] = value
        elif key in BUILD_KEYS + ("same_user", "cache", "threads", "build"):
            defaults[f"simmine_{key}"] = value
        else:
            raise TypeError(f"with_contrastive got an unknown option {key!r}")
    resolve_options({}, defaults)  # validate early
    cls = type(model_class.__name__, (ContrastiveMixin, model_class),
               {"simmine_defaults": defaults, "__doc__": f"{model_class.__name__} + simmine contrastive term"})
    return register_class(cls)


_made = []


def register_class(cls):
    """Makes a class made at run time picklable in this process (RecBole pickles its config, which holds the
    model class, into every checkpoint): a unique module-level name, its ``__name__`` unchanged."""
    qualname = f"_{cls.__name__}_simmine_{len(_made)}"
    _made.append(cls)
    cls.__module__, cls.__qualname__ = __name__, qualname
    globals()[qualname] = cls
    return cls
