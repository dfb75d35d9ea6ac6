"""Reading an items output: ``ItemGraph`` (memory-mapped edges by item code), ``verify`` and the summary
``simmine items`` and ``inspect`` print."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import pyarrow as pa

from ..anchors import training_sequences
from .config import ItemsConfig
from ..io import check_files, map_table, read_manifest, sha256_file
from ..positives import ListColumn
from .cooccurrence import cooccurrence, normalized, ranked_rows, user_set_neighbours
from .embedding import brute_force_neighbours, load_item_embeddings


class ItemGraph:
    """A finished ``simmine items`` output, memory-mapped: edges by item code, and the log's item ids.

    >>> g = simmine.open_items("simmine-items")     # doctest: +SKIP
    >>> src, dst, weight = g.edges()                 # doctest: +SKIP
    >>> items, scores = g.neighbors("B000052YAN")    # doctest: +SKIP
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.manifest = read_manifest(self.path, "items")
        self._edges = self._items = None

    def _open(self):
        if self._edges is None:
            t = map_table(os.path.join(self.path, "edges.arrow"))
            self._edges = (ListColumn(t.column("neighbors")), ListColumn(t.column("weights")))
            self._items = map_table(os.path.join(self.path, "items.arrow")).column("item").combine_chunks()

    @property
    def n_items(self) -> int:
        """V: item codes run 1..V (0 is padding)."""
        return int(self.manifest["n_items"])

    def items(self) -> pa.Array:
        """The log's item id of every code (index 0: padding, null)."""
        self._open()
        return self._items

    def codes(self, items) -> np.ndarray:
        """The codes of item ids (vectorised); 0 for an id the log does not hold."""
        import pyarrow.compute as pc

        self._open()
        try:
            query = pa.array(items, type=self._items.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # ids of another type: no such item
            return np.array([int(self.codes([x])[0]) if _fits(x, self._items.type) else 0 for x in items],
                            dtype=np.int64)
        at = pc.index_in(query, value_set=self._items.slice(1))
        return (at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1)

    def csr(self):
        """(offsets [V + 2], neighbour codes, weights): row c's edges are [offsets[c], offsets[c + 1])."""
        self._open()
        offsets, nbr = self._edges[0].gather(np.arange(self.n_items + 1))
        return offsets, nbr, self._edges[1].gather(np.arange(self.n_items + 1))[1]

    def edges(self, codes: bool = False):
        """(src, dst, weight) of every edge, in the log's item ids (codes with ``codes=True``)."""
        offsets, dst, w = self.csr()
        src = np.repeat(np.arange(self.n_items + 1, dtype=np.int64), np.diff(offsets))
        if codes:
            return src, dst.astype(np.int64), w
        ids = self.items()
        return (ids.take(pa.array(src)).to_numpy(zero_copy_only=False),
                ids.take(pa.array(dst.astype(np.int64))).to_numpy(zero_copy_only=False), w)

    def neighbors(self, item, codes: bool = False):
        """(items, scores) of one item (an id as given, or a code with ``codes=True``), best first (score
        descending, then code ascending), the item itself left out."""
        self._open()
        code = int(item) if codes else int(self.codes([item])[0])
        if code <= 0 or code > self.n_items:
            raise KeyError(f"{item!r} is not an item of this log")
        nbr, w = self._edges[0][code], self._edges[1][code]
        keep = nbr != code
        nbr, w = nbr[keep], w[keep]
        if codes:
            return nbr.astype(np.int64), w
        return self.items().take(pa.array(nbr.astype(np.int64))).to_numpy(zero_copy_only=False), w

    def neighbor_table(self, k: Optional[int] = None):
        """([V + 1, k] int64 codes, [V + 1, k] float32 scores): each code's best k neighbours (itself left
        out), 0 and score 0 where it has fewer; row 0 (padding) empty. k defaults to the longest row."""
        offsets, nbr, w = self.csr()
        src = np.repeat(np.arange(self.n_items + 1, dtype=np.int64), np.diff(offsets))
        keep = nbr.astype(np.int64) != src
        src, nbr, w = src[keep], nbr[keep].astype(np.int64), w[keep]
        counts = np.bincount(src, minlength=self.n_items + 1)
        k = int(counts.max(initial=0)) if k is None else int(k)
        rank = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < k
        table = np.zeros((self.n_items + 1, k), dtype=np.int64)
        scores = np.zeros((self.n_items + 1, k), dtype=np.float32)
        table[src[keep], rank[keep]] = nbr[keep]
        scores[src[keep], rank[keep]] = w[keep]
        return table, scores

    def __repr__(self) -> str:
        return f"ItemGraph({self.path!r}, items={self.n_items}, edges={self.manifest['edges']})"


def _fits(value, type_) -> bool:
    try:
        pa.array([value], type=type_)
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False


def open_items(path: str) -> ItemGraph:
    return ItemGraph(path)


def verify_items(out: str, sample: int = 20, seed: int = 0) -> list:
    """Problems found in an items output (empty: it verifies): checksums and rows; then, when the log (and
    the embeddings) it was made from are unchanged, a seeded sample of items' rows recomputed by a slower,
    separate route: the reference backend for --metric, every item scored in float64 for --embeddings, the
    graph assembled again for co-occurrence."""
    m = read_manifest(out)
    problems = check_files(out, m)
    if problems:
        return problems
    config = ItemsConfig.from_dict(m["config"], f"{out}/manifest.json")
    src = m["input"]
    if not src.get("demo") and (not os.path.isfile(src["path"]) or sha256_file(src["path"]) != src["sha256"]):
        return [f"{src['path']}: the log this output read is missing or changed: only checksums were checked"]
    from ..run import load_log

    seqs = training_sequences(load_log(config.replace(input=src["path"])).log, config.split)
    n = len(seqs.item_values)
    if config.relation == "cooccurrence":
        edges = normalized(cooccurrence(seqs, config), seqs, config)
    elif config.relation == "users":
        from ..backends import get_backend

        edges = user_set_neighbours(seqs, config, get_backend("python"))
    else:
        emb = src.get("embeddings", {})
        if not os.path.isfile(config.embeddings) or sha256_file(config.embeddings) != emb.get("sha256"):
            return [f"{config.embeddings}: the embeddings this output read are missing or changed"]
        vectors = load_item_embeddings(config.embeddings, n)
        edges = brute_force_neighbours(vectors, config.k, config.similarity,
                                        np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    offsets, neighbors, weights = ranked_rows(edges, n, config.k)
    graph = ItemGraph(out)
    got_off, got_nbr, got_w = graph.csr()
    codes = np.unique(edges.src) + 1 if config.relation == "embeddings" else np.arange(1, n + 1)
    for c in codes.tolist():
        a, b = got_off[c], got_off[c + 1]
        x, y = offsets[c], offsets[c + 1]
        if not (np.array_equal(got_nbr[a:b], neighbors[x:y]) and np.array_equal(got_w[a:b], weights[x:y])):
            problems.append(f"edges.arrow: item code {c}: edges differ from a recomputation")
    return problems


def items_summary(out: str) -> list:
    """What ``simmine items`` prints."""
    m = read_manifest(out)
    p = m["params"]
    if p["relation"] == "cooccurrence":
        how = (f"co-occurrence within {'the whole sequence' if p['window'] == 0 else str(p['window']) + ' positions'}"
               f", {p['count']}, {'directed' if p['directed'] else 'both ways'}, weight {p['weight']}"
               f"{', self-loops' if p['self_loops'] else ''}, normalize {p['normalize']}")
    elif p["relation"] == "users":
        how = f"{p['metric']} of the items' user sets"
    else:
        how = f"{p['similarity']} of the given embeddings"
    source = "built-in demo log" if m["input"].get("demo") else m["input"]["path"]
    return [f"simmine items: {out}",
            f"  input      {source}, split {p['split']}",
            f"  items      {m['n_items']:,} from {m['n_users']:,} users' training sequences",
            f"  edges      {m['edges']:,}: {how}" + (f", top {p['k']} per item" if p["k"] else ""),
            "  elapsed    " + ", ".join(f"{k} {v:.2f}s" for k, v in m["elapsed_s"].items())]
