"""Similarity of two batches of padded histories, on any device, by the definitions of docs/metrics.md.

Histories are LongTensors [B, L] of item ids with ``pad`` (default 0) where there is no item; padding may sit
on either side. Everything is computed from item-equality masks, so it runs unchanged on CPU and GPU.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
import torch


def _compact(x: torch.Tensor, pad: int):
    """Non-pad items moved to the front in order: (items [B, L], lengths [B])."""
    valid = x != pad
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    return torch.gather(x, 1, order), valid.sum(dim=1)


def _grams(x: torch.Tensor, lengths: torch.Tensor, n: int):
    """n-grams as [B, G, n] with a validity mask [B, G] (a gram must lie inside the history)."""
    g = max(x.shape[1] - n + 1, 0)
    grams = torch.stack([x[:, t:t + g] for t in range(n)], dim=2) if g else x.new_zeros(x.shape[0], 0, n)
    valid = torch.arange(g, device=x.device)[None, :] + n <= lengths[:, None]
    return grams, valid


def _set_jaccard(ea: torch.Tensor, first_a, first_b) -> torch.Tensor:
    """Jaccard from an element-equality tensor ea [Ba, Bb, La, Lb] and first-occurrence masks."""
    inter = (ea & first_b[None, :, None, :]).any(dim=3)
    inter = (inter & first_a[:, None, :]).sum(dim=2).to(torch.float64)
    size_a = first_a.sum(dim=1).to(torch.float64)
    size_b = first_b.sum(dim=1).to(torch.float64)
    union = size_a[:, None] + size_b[None, :] - inter
    return torch.where(inter > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def _levenshtein(a, la, b, lb) -> torch.Tensor:
    """Edit distances [Ba, Bb] by the dynamic programme, vectorised over all pairs."""
    ba, bb, lmax_b = a.shape[0], b.shape[0], b.shape[1]
    col = torch.arange(lmax_b + 1, device=a.device, dtype=torch.int64)
    row = col.expand(ba, bb, lmax_b + 1).clone()
    dist = row[:, :, 0].clone()
    dist = torch.where(la[:, None] == 0, lb[None, :].expand(ba, bb), dist)
    for i in range(1, a.shape[1] + 1):
        cost = (a[:, None, i - 1:i] != b[None, :, :]).to(torch.int64)  # [Ba, Bb, Lb]
        new = torch.empty_like(row)
        new[:, :, 0] = i
        sub = row[:, :, :-1] + cost
        dele = row[:, :, 1:] + 1
        best = torch.minimum(sub, dele)
        for j in range(1, lmax_b + 1):  # insertion depends on the left neighbour
            new[:, :, j] = torch.minimum(best[:, :, j - 1], new[:, :, j - 1] + 1)
        row = new
        done = la == i
        if done.any():
            d = torch.gather(row, 2, lb[None, :, None].expand(ba, bb, 1)).squeeze(2)
            dist = torch.where(done[:, None], d, dist)
    return dist


MULTI_HOT_MAX = 1 << 26  # entries of the two batches' 0/1 matrices over their items: up to 256 MB in float32


def _set_counts(a, va, b, vb):
    """|A_u ∩ B_c| [Ba, Bb], |A_u| [Ba] and |B_c| [Bb] as float64, items valid where va / vb. The batches'
    items are numbered 0..U-1 and the intersections are one product of 0/1 matrices (exact: counts are
    small integers); past MULTI_HOT_MAX entries, a sorted lookup per pair instead."""
    items, inverse = torch.unique(torch.cat((a[va], b[vb])), return_inverse=True)
    u = len(items)
    if (a.shape[0] + b.shape[0]) * u > MULTI_HOT_MAX:
        a_items, a_counts = _unique_counts(a, va)
        b_items, b_counts = _unique_counts(b, vb)
        inter = (_lookup_counts(a_items, a_counts, b_items) > 0).sum(dim=2).to(torch.float64)
        return inter, (a_items >= 0).sum(dim=1).to(torch.float64), (b_items >= 0).sum(dim=1).to(torch.float64)
    n_a = int(va.sum())
    hot_a = torch.zeros(a.shape[0], u, dtype=torch.float32, device=a.device)
    hot_b = torch.zeros(b.shape[0], u, dtype=torch.float32, device=a.device)
    hot_a[torch.nonzero(va)[:, 0], inverse[:n_a]] = 1.0  # repeats land on the same entry: sets
    hot_b[torch.nonzero(vb)[:, 0], inverse[n_a:]] = 1.0
    inter = (hot_a @ hot_b.T).to(torch.float64)
    return inter, hot_a.sum(dim=1).to(torch.float64), hot_b.sum(dim=1).to(torch.float64)


def _unique_counts(x: torch.Tensor, valid: torch.Tensor):
    """Per row: ascending unique items (invalid slots = -1, first) and their counts, [B, L] each."""
    v = torch.where(valid, x, torch.full_like(x, -1))
    v, _ = torch.sort(v, dim=1)
    first = torch.ones_like(v, dtype=torch.bool)
    first[:, 1:] = v[:, 1:] != v[:, :-1]
    first &= v >= 0
    # count of each unique item = distance to the next "first" position (or the row end)
    pos = torch.arange(v.shape[1], device=v.device).expand_as(v)
    nxt = torch.where(first, pos, torch.full_like(pos, v.shape[1]))
    nxt = torch.flip(torch.cummin(torch.flip(torch.cat([nxt[:, 1:], torch.full_like(nxt[:, :1], v.shape[1])], 1),
                                             [1]), dim=1).values, [1])
    counts = torch.where(first, nxt - pos, torch.zeros_like(pos))
    return torch.where(first, v, torch.full_like(v, -1)), counts


def _lookup_counts(a_items, a_counts, b_items):
    """For every (u, c, j): how often b_items[c, j] occurs in row u of a ([Ba, Bb, L]; 0 for b's -1 slots)."""
    ba, bb, lb = a_items.shape[0], b_items.shape[0], b_items.shape[1]
    keys, order = torch.sort(a_items, dim=1)  # -1 slots first; unique items ascending
    cnt = torch.gather(a_counts, 1, order)
    query = b_items.reshape(1, -1).expand(ba, -1).contiguous()
    idx = torch.searchsorted(keys, query).clamp(max=keys.shape[1] - 1)
    hit = (torch.gather(keys, 1, idx) == query) & (query >= 0)
    return torch.where(hit, torch.gather(cnt, 1, idx), torch.zeros_like(idx)).reshape(ba, bb, lb)


def _gram_ids(x: torch.Tensor, lengths: torch.Tensor, n: int, base: int):
    """Each contiguous n-gram as one exact integer (base-``base`` digits); validity mask."""
    grams, valid = _grams(x, lengths, n)
    ids = torch.zeros(grams.shape[:2], dtype=torch.int64, device=x.device)
    for t in range(n):
        ids = ids * base + grams[:, :, t]
    return ids, valid


def batch_similarity(a: torch.Tensor, b: torch.Tensor, metric: str = "jaccard", pad: int = 0, ngram_n: int = 2,
                     idf: Optional[torch.Tensor] = None, chunk: int = 64) -> torch.Tensor:
    """sim[u, c] = s(a[u], b[c]) as float32 [Ba, Bb] on a's device, for metric jaccard, tfidf (needs ``idf``,
    indexed by item id, e.g. from ``idf_from_build``), ngram or levenshtein (docs/metrics.md). Item ids must be
    non-negative.

    >>> a = torch.tensor([[1, 2, 3], [0, 4, 5]])
    >>> batch_similarity(a, a, "jaccard")
    tensor([[1., 0.],
            [0., 1.]])
    """
    from ..metrics import resolve_metric

    name = resolve_metric(metric).name
    if name == "embedding":
        raise ValueError("embedding similarities come from the embeddings, not the histories: use "
                         "clamp(normalize(e_a) @ normalize(e_b).T, 0, 1)")
    if name == "tfidf" and idf is None:
        raise ValueError("tfidf needs idf (a tensor indexed by item id): see simmine.torch.idf_from_build")
    a, la = _compact(a.long(), pad)
    b, lb = _compact(b.long().to(a.device), pad)
    va = torch.arange(a.shape[1], device=a.device)[None, :] < la[:, None]
    vb = torch.arange(b.shape[1], device=a.device)[None, :] < lb[:, None]
    if name == "levenshtein":
        out = []
        for lo in range(0, a.shape[0], chunk):
            d = _levenshtein(a[lo:lo + chunk], la[lo:lo + chunk], b, lb).to(torch.float64)
            m = torch.maximum(la[lo:lo + chunk, None], lb[None, :]).to(torch.float64)
            out.append(torch.where(m > 0, 1.0 - d / m.clamp_min(1), torch.zeros_like(d)))
        return torch.cat(out, dim=0).to(torch.float32)
    if name == "ngram":
        base = int(max(int(a.max()) if a.numel() else 0, int(b.max()) if b.numel() else 0)) + 1
        if ngram_n * math.log2(max(base, 2)) >= 62:
            return _ngram_by_equality(a, la, b, lb, ngram_n, chunk)
        a, va = _gram_ids(a, la, ngram_n, base)
        b, vb = _gram_ids(b, lb, ngram_n, base)
    if name in ("jaccard", "ngram"):
        inter, size_a, size_b = _set_counts(a, va, b, vb)
        union = size_a[:, None] + size_b[None, :] - inter
        return torch.where(inter > 0, inter / union.clamp_min(1), torch.zeros_like(inter)).to(torch.float32)
    a_items, a_counts = _unique_counts(a, va)
    b_items, b_counts = _unique_counts(b, vb)
    in_a = _lookup_counts(a_items, a_counts, b_items)       # tf_u(v) for each unique v of b_c
    w = idf.to(a.device, torch.float64)
    w2_b = torch.where(b_items >= 0, w[b_items.clamp_min(0)] ** 2, torch.zeros((), dtype=torch.float64,
                                                                                device=a.device))
    dot = (in_a.to(torch.float64) * (b_counts.to(torch.float64) * w2_b)[None, :, :]).sum(dim=2)
    w2_a = torch.where(a_items >= 0, w[a_items.clamp_min(0)] ** 2, torch.zeros((), dtype=torch.float64,
                                                                                device=a.device))
    na = (a_counts.to(torch.float64) ** 2 * w2_a).sum(dim=1).sqrt()
    nb = (b_counts.to(torch.float64) ** 2 * w2_b).sum(dim=1).sqrt()
    denom = na[:, None] * nb[None, :]
    return torch.where((denom > 0) & (dot > 0), (dot / denom.clamp_min(1e-300)).clamp(max=1.0),
                       torch.zeros_like(dot)).to(torch.float32)


def _ngram_by_equality(a, la, b, lb, n, chunk):
    """n-gram Jaccard from gram-equality tensors, for ids too large to pack exactly into one integer."""
    ga, gva = _grams(a, la, n)
    gb, gvb = _grams(b, lb, n)
    fb = _first_occurrence_grams(gb, gvb)
    out = []
    for lo in range(0, a.shape[0], chunk):
        gac, gvac = ga[lo:lo + chunk], gva[lo:lo + chunk]
        eq = (gac[:, None, :, None, :] == gb[None, :, None, :, :]).all(dim=4)
        eq &= gvac[:, None, :, None] & gvb[None, :, None, :]
        out.append(_set_jaccard(eq, _first_occurrence_grams(gac, gvac), fb))
    return torch.cat(out, dim=0).to(torch.float32)


def _first_occurrence_grams(g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    eq = (g[:, :, None, :] == g[:, None, :, :]).all(dim=3) & valid[:, None, :]
    earlier = torch.ones(g.shape[1], g.shape[1], dtype=torch.bool, device=g.device).tril(-1)
    return valid & ~(eq & earlier).any(dim=2)


def idf_from_build(positives, size: Optional[int] = None) -> torch.Tensor:
    """ln(N / df) per integer item id from a build's sequences.arrow (0 for items in no history)."""
    from ..positives import Positives

    pos = positives if isinstance(positives, Positives) else Positives(os.fspath(positives))
    hist = pos.sequences().column("history").combine_chunks()
    n = len(hist)
    owner = np.repeat(np.arange(n), np.diff(hist.offsets.to_numpy()))
    items = hist.values.to_numpy().astype(np.int64)
    pairs = np.unique(owner * (int(items.max()) + 1) + items) % (int(items.max()) + 1)
    df = np.bincount(pairs, minlength=size or int(items.max()) + 1)
    idf = np.zeros(len(df), dtype=np.float64)
    idf[df > 0] = np.log(n / df[df > 0])
    return torch.from_numpy(idf)
