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

from .errors import InputError

FORMAT_VERSION = 1
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


def strong_table(offsets, neighbors) -> pa.Table:
    return pa.table({"neighbors": large_list(offsets, neighbors, pa.uint32())})


def sequences_table(seqs, labels: Optional[list]) -> pa.Table:
    n = seqs.n
    if seqs.bucket_codes is not None:
        bucket = pa.array(labels, pa.string()).take(pa.array(seqs.bucket_codes))
    else:
        bucket = pa.nulls(n, pa.string())
    return pa.table({
        "seq_id": pa.array(np.arange(n, dtype=np.uint32)),
        "user_id": seqs.user_values,
        "target": seqs.target_values,
        "history": seqs.history_lists(),
        "bucket": bucket,
    })


def read_manifest(out: str) -> dict:
    path = os.path.join(out, "manifest.json")
    if not os.path.isfile(path):
        raise InputError(f"{out}: not a simmine output (no manifest.json)")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None


def shard_files(manifest: dict) -> list:
    """The weak/strong files of a build with their anchor ranges: the manifest's shards, or one pair."""
    return manifest.get("shards") or [{"rows": [0, manifest["n_anchors"]], "weak": "weak.arrow",
                                       "strong": "strong.arrow"}]


def map_table(path: str) -> pa.Table:
    """The table in an Arrow IPC file, memory-mapped (no copy of the data)."""
    try:
        return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Arrow file ({str(exc).splitlines()[0]})") from None


class _ListColumn:
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
        from .sequences import _ranges

        return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), self.values[0][_ranges(starts, lengths)]

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"anchor {i} out of range [0, {len(self)})")
        b = 0 if len(self.offsets) == 1 else int(np.searchsorted(self.starts, i, side="right")) - 1
        offs = self.offsets[b]
        r = i - int(self.starts[b])
        return self.values[b][offs[r]:offs[r + 1]]


class Positives:
    """A finished build, memory-mapped: ``weak(i) -> (neighbors, scores)``, ``strong(i) -> neighbors``.

    Pickles as its path only, so DataLoader workers reopen the maps lazily.

    >>> pos = simmine.open("simmine-out")          # doctest: +SKIP
    >>> nbrs, scores = pos.weak(0)                 # doctest: +SKIP
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.manifest = read_manifest(self.path)
        self._weak_n = self._weak_s = self._strong = None

    def _open(self) -> None:
        if self._weak_n is None:
            shards = shard_files(self.manifest)
            weak = [map_table(os.path.join(self.path, sh["weak"])) for sh in shards]
            strong = [map_table(os.path.join(self.path, sh["strong"])) for sh in shards]

            def column(tables, name):
                return pa.chunked_array([c for t in tables for c in t.column(name).chunks],
                                        type=tables[0].schema.field(name).type)

            self._weak_n = _ListColumn(column(weak, "neighbors"))
            self._weak_s = _ListColumn(column(weak, "scores"))
            self._strong = _ListColumn(column(strong, "neighbors"))

    def __len__(self) -> int:
        return int(self.manifest["n_anchors"])

    def weak(self, i: int):
        """(neighbors uint32, scores float32) of anchor i, best first."""
        self._open()
        return self._weak_n[i], self._weak_s[i]

    def strong(self, i: int) -> np.ndarray:
        """The other anchors with the same target (and bucket), ascending."""
        self._open()
        return self._strong[i]

    def gather_weak(self, anchors: np.ndarray):
        """Weak lists of many anchors: (offsets, neighbors, scores), offsets of length len(anchors) + 1."""
        self._open()
        offsets, neighbors = self._weak_n.gather(anchors)
        return offsets, neighbors, self._weak_s.gather(anchors)[1]

    def gather_strong(self, anchors: np.ndarray):
        """Strong lists of many anchors: (offsets, neighbors)."""
        self._open()
        return self._strong.gather(anchors)

    def sequences(self) -> pa.Table:
        return map_table(os.path.join(self.path, "sequences.arrow"))

    def __getstate__(self):
        return {"path": self.path, "manifest": self.manifest}

    def __setstate__(self, state):
        self.path, self.manifest = state["path"], state["manifest"]
        self._weak_n = self._weak_s = self._strong = None

    def __repr__(self) -> str:
        return f"Positives({self.path!r}, n={len(self)}, metric={self.manifest['params']['metric']!r})"


def open_positives(path: str) -> Positives:
    return Positives(path)
