"""Output layout (docs/output.md): Arrow IPC files (uncompressed, memory-mappable) and manifest.json.

Every file is written under a temporary name and renamed when complete. ``Positives`` opens a build
with memory maps and reaches anchor i in O(1) (O(log batches) when a table has several record batches).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
from typing import Optional

import numpy as np
import pyarrow as pa

from .csr import ranges
from .errors import InputError

FORMAT_VERSION = 2  # 2: strong positives as groups (strong.arrow: group; groups.arrow), positions
ROWS_PER_BATCH = 1 << 20


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def write_table(path: str, table: pa.Table) -> None:
    """Arrow IPC file format, uncompressed, written to ``path.tmp`` and renamed."""
    tmp = path + ".tmp"
    with pa.OSFile(tmp, "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=ROWS_PER_BATCH)
    os.replace(tmp, path)


def fault_point(variable: str, at) -> None:
    """Fault injection for the resume tests: SIGKILL this process when environment ``variable`` equals ``at``
    (SIMMINE_KILL_AFTER_SHARDS, _GROUPS: a count of finished ones; _STAGE: a streamed build's stage)."""
    if os.environ.get(variable) == str(at):
        os.kill(os.getpid(), signal.SIGKILL)


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def large_list(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values, value_type))


def weak_table(offsets, neighbors, scores) -> pa.Table:
    return pa.table({"neighbors": large_list(offsets, neighbors, pa.uint32()),
                     "scores": large_list(offsets, scores, pa.float32())})


def strong_table(group) -> pa.Table:
    """strong.arrow (or a shard of it): each anchor's strong group."""
    return pa.table({"group": pa.array(np.asarray(group, dtype=np.uint32))})


def groups_table(offsets, members) -> pa.Table:
    """groups.arrow: the members of each strong group, ascending seq_ids."""
    return pa.table({"members": large_list(offsets, members, pa.uint32())})


SEQUENCE_COLUMNS = ("seq_id", "user_id", "position", "target", "history", "bucket")


def sequences_table(seqs, labels: Optional[list]) -> pa.Table:
    n = seqs.n
    if seqs.bucket_codes is not None:
        bucket = pa.array(labels, pa.string()).take(pa.array(seqs.bucket_codes))
    else:
        bucket = pa.nulls(n, pa.string())
    return pa.table({
        "seq_id": pa.array(np.arange(n, dtype=np.uint32)),
        "user_id": seqs.user_values,
        "position": pa.array(np.asarray(seqs.positions, dtype=np.uint32)),
        "target": seqs.target_values,
        "history": seqs.history_lists(),
        "bucket": bucket,
    })


# the keys a manifest of each kind of output must hold to be read at all
MANIFEST_KEYS = {"build": ("format_version", "files", "n_anchors"), "items": ("format_version", "files", "n_items")}


def read_manifest(out: str, kind: Optional[str] = None) -> dict:
    """OUT's manifest, checked to be a simmine manifest (of ``kind``, "build" or "items", when given): a
    one-line InputError otherwise, naming the directory or file and what it is instead."""
    path = os.path.join(out, "manifest.json")
    if not os.path.isfile(path):
        raise InputError(f"{out}: not a simmine output (no manifest.json)")
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    found = m.get("kind", "build") if isinstance(m, dict) else None
    if found not in MANIFEST_KEYS:
        raise InputError(f"{path}: not a simmine manifest")
    missing = [key for key in MANIFEST_KEYS[found] if key not in m]
    if missing:
        raise InputError(f"{path}: not a simmine manifest (no '{missing[0]}')")
    if kind is not None and found != kind:
        opener = "simmine.open_items" if found == "items" else "simmine.open"
        raise InputError(f"{out}: made by simmine {found}, not by simmine {kind} (open it with {opener})")
    return m


def shard_files(manifest: dict) -> list:
    """The weak/strong files of a build with their anchor ranges: the manifest's shards, or one pair."""
    return manifest.get("shards") or [{"rows": [0, manifest["n_anchors"]], "weak": "weak.arrow",
                                       "strong": "strong.arrow"}]


def check_files(out: str, m: dict) -> list:
    """Problems of an output's files: missing, changed since they were written (sha256), or with another
    number of rows than the manifest lists."""
    problems = []
    for name, info in m["files"].items():
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            problems.append(f"{name}: missing")
        elif sha256_file(path) != info["sha256"]:
            problems.append(f"{name}: checksum mismatch (the file changed after it was written)")
    if problems:
        return problems
    for name, info in m["files"].items():
        rows = map_table(os.path.join(out, name)).num_rows
        lo, hi = info["rows"] if isinstance(info["rows"], list) else (0, info["rows"])
        if rows != hi - lo:
            problems.append(f"{name}: {rows} rows, manifest says {hi - lo} (rows {lo}..{hi - 1})")
    return problems


def map_table(path: str) -> pa.Table:
    """The table in an Arrow IPC file, memory-mapped (no copy of the data)."""
    try:
        return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({str(exc).splitlines()[0]})") from None


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
        self._member_keys = self._runs = self._index = None

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

            users = self.sequences().column("user_id").combine_chunks()
            n = len(users)
            change = pc.not_equal(users.slice(1), users.slice(0, max(n - 1, 0))).to_numpy(zero_copy_only=False)
            start = np.flatnonzero(np.concatenate(([n > 0], change))).astype(np.int64)
            self._index = {"users": users.take(pa.array(start)), "start": np.append(start, n),
                           "first_position": self.positions()[start]}
        return self._index

    def positions(self) -> np.ndarray:
        """Per seq_id, the target's position t in its user's training sequence T (int64)."""
        table = self.sequences()
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

    def sequences(self) -> pa.Table:
        return map_table(os.path.join(self.path, "sequences.arrow"))

    def __getstate__(self):
        return {"path": self.path, "manifest": self.manifest}

    def __setstate__(self, state):
        self.path, self.manifest = state["path"], state["manifest"]
        self._reset()

    def __repr__(self) -> str:
        return f"Positives({self.path!r}, n={len(self)}, metric={self.manifest['params']['metric']!r})"


def open_positives(path: str) -> Positives:
    return Positives(path)
