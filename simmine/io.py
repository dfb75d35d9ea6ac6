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

FORMAT_VERSION = 3  # 2: strong positives as groups (strong.arrow: group; groups.arrow), positions;
# 3: prefix builds store each user's training sequence once (users.arrow, vocabulary.arrow) and every anchor as
# (user, position, window) in sequences.arrow; histories are derived on read
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
    (SIMMINE_KILL_AFTER_SHARDS, _GROUPS: a count of finished ones; _STAGE: a streamed build's stage, or
    ``update`` once an update's files are written; SIMMINE_KILL_IN_PUBLISH: between moving an earlier OUT aside
    and renaming the new one into place)."""
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


PREFIX_COLUMNS = ("seq_id", "user", "position", "start", "end", "bucket")


def bucket_column(codes: Optional[np.ndarray], labels: Optional[list], n: int) -> pa.Array:
    """The bucket label of every anchor (null without --bucket-by)."""
    if codes is None or labels is None:
        return pa.nulls(n, pa.string())
    return pa.array(labels, pa.string()).take(pa.array(codes))


def sequence_tables(seqs, labels: Optional[list]) -> dict:
    """The tables that describe the anchors (docs/output.md), by file name: ``sequences.arrow`` with every
    history; for prefix anchors ``sequences.arrow`` as (user, position, window) with each user's training
    sequence once in ``users.arrow`` (item codes) and the items in ``vocabulary.arrow``."""
    if seqs.stream is None:
        return {"sequences.arrow": sequences_table(seqs, labels)}
    n, stream = seqs.n, seqs.stream
    first = stream.user_ptr[seqs.owners]
    return {
        "sequences.arrow": pa.table({
            "seq_id": pa.array(np.arange(n, dtype=np.uint32)),
            "user": pa.array(seqs.owners.astype(np.uint32)),
            "position": pa.array(np.asarray(seqs.positions, dtype=np.uint32)),
            "start": pa.array((stream.windows[:, 0] - first).astype(np.uint32)),
            "end": pa.array((stream.windows[:, 1] - first).astype(np.uint32)),
            "bucket": bucket_column(seqs.bucket_codes, labels, n),
        }),
        "users.arrow": users_table(seqs.user_values.take(pa.array(np.searchsorted(seqs.owners, np.arange(
            len(stream.user_ptr) - 1)))), stream.user_ptr, stream.codes),
        "vocabulary.arrow": pa.table({"item": seqs.item_values}),
    }


def users_table(users: pa.Array, user_ptr: np.ndarray, codes: np.ndarray) -> pa.Table:
    """users.arrow: each anchor user's id (as given) and training sequence T (item codes of vocabulary.arrow)."""
    return pa.table({"user_id": users, "sequence": large_list(user_ptr, codes.astype(np.uint32), pa.uint32())})


def sequences_table(seqs, labels: Optional[list]) -> pa.Table:
    n = seqs.n
    bucket = bucket_column(seqs.bucket_codes, labels, n)
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
