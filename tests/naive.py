"""An independent, naive implementation of docs/input.md, docs/metrics.md and docs/selection.md for small
logs, written from the text alone.

rows: list of (user, item, time) in file order. Returns anchors, weak lists and strong lists.
"""
import functools
import math
from collections import Counter, OrderedDict
from fractions import Fraction

import numpy as np


def anchors_from_rows(rows, split="loo", max_len=50, compare="history", buckets=None, anchors="user"):
    """-> list of dicts {user, target, history, bucket, position} in seq_id order; skipped count. One anchor
    per user (target T[-1]) or, with anchors="prefix", one per t >= 1 (target T[t], history T[:t])."""
    per_user = OrderedDict()
    for pos, row in enumerate(rows):
        per_user.setdefault(row[0], []).append((row[2] if row[2] is not None else pos, pos, row))
    out, skipped = [], 0
    for user, events in per_user.items():
        events.sort(key=lambda e: (e[0], e[1]))
        seq = [e[2] for e in events]
        t = seq[:-2] if split == "loo" else seq
        if len(t) < 2:
            skipped += 1
            continue
        items = [r[1] for r in t]
        for pos in (range(1, len(t)) if anchors == "prefix" else [len(t) - 1]):
            compared = items[:pos][-max_len:] if compare == "history" else items[:pos + 1][-max_len:]
            bucket = None if buckets is None else buckets(t[pos])
            out.append({"user": user, "target": items[pos], "history": compared, "bucket": bucket,
                        "position": pos})
    return out, skipped


def similarity(metric, a, b, n_anchors=None, df=None, n=2):
    if metric == "jaccard":
        sa, sb = set(a), set(b)
        inter = len(sa & sb)
        return np.float32(inter / len(sa | sb)) if inter else np.float32(0)
    if metric == "ngram":
        ga = {tuple(a[i:i + n]) for i in range(len(a) - n + 1)}
        gb = {tuple(b[i:i + n]) for i in range(len(b) - n + 1)}
        inter = len(ga & gb)
        return np.float32(inter / len(ga | gb)) if inter else np.float32(0)
    if metric == "tfidf":
        ca, cb = Counter(a), Counter(b)
        wa = {v: c * math.log(n_anchors / df[v]) for v, c in ca.items()}
        wb = {v: c * math.log(n_anchors / df[v]) for v, c in cb.items()}
        na = math.sqrt(sum(w * w for w in wa.values()))
        nb = math.sqrt(sum(w * w for w in wb.values()))
        if na == 0 or nb == 0:
            return np.float32(0)
        return np.float32(min(sum(wa[v] * wb.get(v, 0.0) for v in wa) / (na * nb), 1.0))
    if metric == "levenshtein":
        return np.float32(1 - edit_distance(a, b) / max(len(a), len(b)))
    raise ValueError(metric)


def edit_distance(a, b):
    """Edit distance from its definition: the cheapest way to end both prefixes a[:i], b[:j] (drop a's last
    item, add b's last, or end both with one match or substitution), by memoised recursion on (i, j)."""

    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def cosine(u, v):
    """max(0, cosine) of two vectors, in Python floats, rounded to float32 (the embedding metric)."""
    nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(x * x for x in v))
    if nu == 0 or nv == 0:
        return np.float32(0)
    return np.float32(min(max(sum(x * y for x, y in zip(u, v)) / (nu * nv), 0.0), 1.0))


def mine(anchors, metric, alpha=None, alpha_scope="anchor", k=None, min_sim=None, max_per_anchor=None, n=2,
         embeddings=None, same_user="keep"):
    """Weak lists [(neighbors, scores)] and strong lists per docs/selection.md (``embeddings``: one vector per
    anchor, for the embedding metric). same_user="exclude": two anchors of one user are never compared, never
    each other's positives, and count in no n_u or P."""
    N = len(anchors)
    df = Counter(v for a in anchors for v in set(a["history"]))

    def comparable(i, j):
        return i != j and anchors[i]["bucket"] == anchors[j]["bucket"] and \
            (same_user == "keep" or anchors[i]["user"] != anchors[j]["user"])

    S = {}
    for i in range(N):
        for j in range(i + 1, N):
            if comparable(i, j):
                S[(i, j)] = S[(j, i)] = (cosine(embeddings[i], embeddings[j]) if metric == "embedding" else
                                         similarity(metric, anchors[i]["history"], anchors[j]["history"], N, df, n))
    tau = None
    if alpha is not None and alpha_scope == "global":
        pairs = sorted((S[(i, j)] for (i, j) in S if i < j), reverse=True)
        r = math.ceil(Fraction(repr(alpha)) * len(pairs))
        tau = pairs[r - 1] if r else None
    weak = []
    for i in range(N):
        peers = [j for j in range(N) if comparable(i, j)]
        cands = sorted(((S[(i, j)], j) for j in peers if S[(i, j)] > 0), key=lambda t: (-t[0], t[1]))
        if alpha is not None and alpha_scope == "anchor":
            cands = cands[: math.ceil(Fraction(repr(alpha)) * len(peers))]
        elif alpha is not None:
            cands = [] if tau is None else [c for c in cands if c[0] >= tau]
        elif k is not None:
            cands = cands[:k]
        else:
            cands = [c for c in cands if c[0] >= np.float32(min_sim)]
        if max_per_anchor is not None:
            cands = cands[:max_per_anchor]
        weak.append(([j for _, j in cands], [float(s) for s, _ in cands]))
    strong = [[j for j in range(N) if comparable(i, j) and anchors[j]["target"] == anchors[i]["target"]]
              for i in range(N)]
    return weak, strong, tau
