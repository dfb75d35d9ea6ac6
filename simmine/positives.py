"""Reading a build: ``Positives``, memory-mapped (docs/output.md), every format version."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import pyarrow as pa

from .csr import ranges
from .errors import InputError
from .io import map_table, read_manifest, shard_files


class ListColumn:
    """O(1) access to row i of a (large_)list column, zero-copy over its record batches."""

    def __init__(self, column: pa.ChunkedArray):
        self.offsets, self.values = [], []
        starts = [0]
        for chunk in column.chunks:
            offs = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if pa.types.is_large_list(chunk.type) else
                                 np.int32)[chunk.offset:chunk.offset + len(chunk) + 1]
            self.offsets.append(offs)
            self.values.append(chunk.values.to_numpy(zero_copy_only=True))
            starts.append(starts[-1] + len(chunk))
        self.starts = np.asarray(starts, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def lengths(self) -> np.ndarray:
        """Every row's list length (int64), from the offsets alone."""
        return np.concatenate([np.diff(o).astype(np.int64) for o in self.offsets]) if self.offsets else \
            np.zeros(0, np.int64)

    def gather(self, rows: np.ndarray):
        """Rows ``rows`` at once: (offsets int64 [len(rows)+1], concatenated values)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"anchor out of range [0, {len(self)})")
        if len(self.offsets) != 1:  # several record batches: row by row
            parts = [self[int(i)] for i in rows]
            lengths = np.array([len(p) for p in parts], dtype=np.int64)
            values = np.concatenate(parts) if parts else self.values[0][:0]
            return np.concatenate(([0], np.cumsum(lengths))), values
        offs = self.offsets[0]
        starts, ends = offs[rows].astype(np.int64), offs[rows + 1].astype(np.int64)
        lengths = ends - starts

        return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), self.values[0][ranges(starts, lengths)]

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"anchor {i} out of range [0, {len(self)})")
        b = 0 if len(self.offsets) == 1 else int(np.searchsorted(self.starts, i, side="right")) - 1
        offs = self.offsets[b]
        r = i - int(self.starts[b])
        return self.values[b][offs[r]:offs[r + 1]]


class Positives:
    """A finished build, memory-mapped: ``weak(i) -> (neighbors, scores)``, ``strong(i) -> neighbors``.

    Pickles as its path only, so DataLoader workers reopen the maps lazily. Opens every format version:
    strong positives stored per anchor (version 1) or as groups (version 2, docs/output.md).

    >>> pos = simmine.open("simmine-out")          # doctest: +SKIP
    >>> nbrs, scores = pos.weak(0)                 # doctest: +SKIP
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.manifest = read_manifest(self.path, "build")
        self._reset()

    def _reset(self) -> None:
        self._weak_n = self._weak_s = self._strong = self._group = self._goff = self._members = None
        self._member_keys = self._runs = self._index = self._users = None

    def _open(self) -> None:
        if self._weak_n is None:
            shards = shard_files(self.manifest)
            weak = [map_table(os.path.join(self.path, sh["weak"])) for sh in shards]
            strong = [map_table(os.path.join(self.path, sh["strong"])) for sh in shards]

            def column(tables, name):
                return pa.chunked_array([c for t in tables for c in t.column(name).chunks],
                                        type=tables[0].schema.field(name).type)

            self._weak_n = ListColumn(column(weak, "neighbors"))
            self._weak_s = ListColumn(column(weak, "scores"))
            if "group" in strong[0].column_names:
                self._group = np.concatenate([c.to_numpy(zero_copy_only=True) for t in strong
                                              for c in t.column("group").chunks]).astype(np.int64)
                members = map_table(os.path.join(self.path, "groups.arrow")).column("members").combine_chunks()
                offsets = members.offsets.to_numpy().astype(np.int64)
                self._goff = offsets - offsets[0]
                self._members = members.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]].astype(np.int64)
            else:  # format 1: a list per anchor
                self._strong = ListColumn(column(strong, "neighbors"))

    def __len__(self) -> int:
        return int(self.manifest["n_anchors"])

    def weak(self, i: int):
        """(neighbors uint32, scores float32) of anchor i, best first."""
        self._open()
        return self._weak_n[i], self._weak_s[i]

    def strong(self, i: int) -> np.ndarray:
        """The other anchors with the same target (and bucket), ascending; with same-user exclusion, not
        those of anchor i's user."""
        self._open()
        if self._strong is not None:
            return self._strong[i]
        if not 0 <= i < len(self):
            raise IndexError(f"anchor {i} out of range [0, {len(self)})")
        return self.gather_strong(np.array([i]))[1]

    def gather_weak(self, anchors: np.ndarray):
        """Weak lists of many anchors: (offsets, neighbors, scores), offsets of length len(anchors) + 1."""
        self._open()
        offsets, neighbors = self._weak_n.gather(anchors)
        return offsets, neighbors, self._weak_s.gather(anchors)[1]

    def gather_strong(self, anchors: np.ndarray):
        """Strong lists of many anchors: (offsets, neighbors). Their total length is Σ|strong(i)|: large
        for popular targets; ``draw_strong`` samples without building them."""
        self._open()
        anchors = np.asarray(anchors, dtype=np.int64)
        if self._strong is not None:
            return self._strong.gather(anchors)

        first, last, cut_lo, cut_hi = self._group_spans(anchors)
        before, after = cut_lo - first, last - cut_hi
        starts = np.stack((first, cut_hi), axis=1).reshape(-1)
        lengths = np.stack((before, after), axis=1).reshape(-1)
        offsets = np.concatenate(([0], np.cumsum(before + after))).astype(np.int64)
        return offsets, self._members[ranges(starts, lengths)]

    def strong_counts(self, anchors: Optional[np.ndarray] = None) -> np.ndarray:
        """|strong(i)| of the given anchors (all by default), without building the lists."""
        self._open()
        anchors = np.arange(len(self)) if anchors is None else np.asarray(anchors, dtype=np.int64)
        if self._strong is not None:
            return np.diff(self._strong.gather(anchors)[0])
        first, last, cut_lo, cut_hi = self._group_spans(anchors)
        return (last - first) - (cut_hi - cut_lo)

    def draw_strong(self, anchors: np.ndarray, u: np.ndarray):
        """One strong positive per anchor, strong(i)[floor(u·|strong(i)|)] for uniforms u in [0, 1):
        (seq_ids, whether it has one); an anchor with none gets itself."""
        self._open()
        anchors = np.asarray(anchors, dtype=np.int64)
        if self._strong is not None:
            off, nbr = self._strong.gather(anchors)
            length = np.diff(off)
            pick = off[:-1] + np.minimum((u * length).astype(np.int64), np.maximum(length - 1, 0))
            has = length > 0
            return np.where(has, nbr[np.minimum(pick, max(len(nbr) - 1, 0))] if len(nbr) else anchors, anchors), has
        first, last, cut_lo, cut_hi = self._group_spans(anchors)
        length = (last - first) - (cut_hi - cut_lo)
        at = first + np.minimum((u * length).astype(np.int64), np.maximum(length - 1, 0))
        at = np.where(at >= cut_lo, at + (cut_hi - cut_lo), at)  # step over the excluded run
        has = length > 0
        picked = self._members[np.minimum(at, max(len(self._members) - 1, 0))].astype(np.int64) if \
            len(self._members) else anchors
        return np.where(has, picked, anchors), has

    def _group_spans(self, anchors: np.ndarray):
        """Per anchor, in the concatenated members of every group: its group's [first, last) and the
        [cut_lo, cut_hi) of the anchors it never pairs with (itself, or its user's run) inside it. Members
        are ascending within a group, so (group, seq_id) keys ascend over the whole array."""
        if self._member_keys is None:
            n = len(self)
            sizes = np.diff(self._goff)
            self._member_keys = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes) * n + self._members
        n = len(self)
        g = self._group[anchors]
        lo, hi = self._excluded(anchors)
        cut_lo = np.searchsorted(self._member_keys, g * n + lo)
        cut_hi = np.searchsorted(self._member_keys, g * n + hi)
        return self._goff[g], self._goff[g + 1], cut_lo, cut_hi

    def _excludes_same_user(self) -> bool:
        p = self.manifest["params"]
        return p.get("anchors") == "prefix" and p.get("same_user") == "exclude"

    def _excluded(self, anchors: np.ndarray):
        """(lo, hi) per anchor: the seq_ids it never pairs with, its user's run or itself."""
        anchors = np.asarray(anchors, dtype=np.int64)
        if not self._excludes_same_user():
            return anchors, anchors + 1
        if self._runs is None:
            starts = self.anchor_index()["start"]
            user = np.searchsorted(starts, np.arange(len(self)), side="right") - 1
            self._runs = (starts[user], starts[user + 1])
        return self._runs[0][anchors], self._runs[1][anchors]

    # ---------------------------------------------------------------------------------------- positions
    def anchor_index(self) -> dict:
        """Where each user's anchors are: ``users`` (Arrow array, one per user with anchors, in seq_id
        order), ``start`` (int64 [U + 1]: user u's anchors are seq_ids start[u]..start[u+1]-1, consecutive)
        and ``first_position`` (int64 [U]: the position t of its first anchor)."""
        if self._index is None:
            import pyarrow.compute as pc

            users = self.user_ids()
            n = len(users)
            change = pc.not_equal(users.slice(1), users.slice(0, max(n - 1, 0))).to_numpy(zero_copy_only=False)
            start = np.flatnonzero(np.concatenate(([n > 0], change))).astype(np.int64)
            self._index = {"users": users.take(pa.array(start)), "start": np.append(start, n),
                           "first_position": self.positions()[start]}
        return self._index

    def positions(self) -> np.ndarray:
        """Per seq_id, the target's position t in its user's training sequence T (int64)."""
        table = self._anchor_table()
        if "position" not in table.column_names:
            raise InputError(f"{self.path}: made by simmine format {self.manifest.get('format_version')}, "
                             f"which records no positions; rebuild it")
        return table.column("position").to_numpy().astype(np.int64)

    def seq_ids(self, users, positions) -> np.ndarray:
        """The seq_id of each (user as given, position t) pair, vectorised; -1 where that anchor does not
        exist (the user was skipped, or t is not one of its anchors)."""
        import pyarrow.compute as pc

        index = self.anchor_index()
        positions = np.asarray(positions, dtype=np.int64)
        at = pc.index_in(pa.array(users, type=index["users"].type), value_set=index["users"])
        found = at.is_valid().to_numpy(zero_copy_only=False)
        u = at.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        start, first = index["start"], index["first_position"]
        seq = start[u] + positions - first[u]
        ok = found & (seq >= start[u]) & (seq < start[u + 1])
        return np.where(ok, seq, -1)

    def _anchor_table(self) -> pa.Table:
        return map_table(os.path.join(self.path, "sequences.arrow"))

    def _compact(self):
        """A prefix build's (user per anchor, window starts and ends, T offsets per user, T codes, items), or
        None where every history is stored (format 2, user anchors)."""
        table = self._anchor_table()
        if "user" not in table.column_names:
            return None
        if self._users is None:
            seq = map_table(os.path.join(self.path, "users.arrow")).column("sequence").combine_chunks()
            self._users = (table.column("user").to_numpy().astype(np.int64),
                           table.column("start").to_numpy().astype(np.int64),
                           table.column("end").to_numpy().astype(np.int64),
                           seq.offsets.to_numpy().astype(np.int64), seq.values.to_numpy(zero_copy_only=False),
                           map_table(os.path.join(self.path, "vocabulary.arrow")).column("item").combine_chunks())
        return self._users

    def user_ids(self, rows: Optional[np.ndarray] = None) -> pa.Array:
        """The user (as given) of every anchor in seq_id order, or of the seq_ids ``rows``."""
        compact = self._compact()
        if compact is None:
            users = self._anchor_table().column("user_id").combine_chunks()
            return users if rows is None else users.take(pa.array(rows))
        users = map_table(os.path.join(self.path, "users.arrow")).column("user_id").combine_chunks()
        return users.take(pa.array(compact[0] if rows is None else compact[0][rows]))

    def history(self, i: int) -> pa.Array:
        """The items (as given) anchor i was compared on, in order."""
        compact = self._compact()
        if compact is None:
            return self._anchor_table().column("history")[int(i)].values
        user, start, end, uptr, codes, items = compact
        at = uptr[user[i]]
        return items.take(pa.array(codes[at + start[i]:at + end[i]]))

    def sequences(self, rows: Optional[np.ndarray] = None) -> pa.Table:
        """One row per anchor (docs/output.md), or per seq_id of ``rows``: seq_id, user_id, position, target,
        history, bucket. A prefix build stores each user's training sequence once; its histories and targets
        are derived here."""
        table = self._anchor_table()
        if rows is not None:
            table = table.take(pa.array(np.asarray(rows, dtype=np.int64)))
        compact = self._compact()
        if compact is None:
            return table
        user, start, end, uptr, codes, items = compact
        users = self.user_ids(rows)
        if rows is not None:
            user, start, end = user[rows], start[rows], end[rows]
        at = uptr[user]
        history = codes[ranges(at + start, end - start)]
        offsets = np.concatenate(([0], np.cumsum(end - start))).astype(np.int64)
        position = table.column("position").to_numpy().astype(np.int64)
        return pa.table({
            "seq_id": table.column("seq_id"),
            "user_id": users,
            "position": table.column("position"),
            "target": items.take(pa.array(codes[at + position])),
            "history": pa.LargeListArray.from_arrays(pa.array(offsets), items.take(pa.array(history))),
            "bucket": table.column("bucket"),
        })

    def __getstate__(self):
        return {"path": self.path, "manifest": self.manifest}

    def __setstate__(self, state):
        self.path, self.manifest = state["path"], state["manifest"]
        self._reset()

    def __repr__(self) -> str:
        return f"Positives({self.path!r}, n={len(self)}, metric={self.manifest['params']['metric']!r})"


def open_positives(path: str) -> Positives:
    return Positives(path)
