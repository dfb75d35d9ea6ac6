"""The run every command shares (``build``, its streamed route, ``items``): stages timed into the manifest's
``elapsed_s``, the checkpoint ``OUT.partial/plan.json`` (resume fingerprint and saved state), the load stage,
and ``publish``, the one way an output appears: files written into ``OUT.partial``, then the manifest with
every file's sha256, bytes and rows, then one rename to ``OUT`` (docs/output.md)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Optional

from .errors import InputError
from .io import fault_point, sha256_file, write_json
from .readers import Log, read_log
from .version import __version__

PLAN_FILE = "plan.json"
REPLACED = ".replaced"  # an earlier OUT while the new one is renamed into place


@dataclass
class Run:
    """One build in progress: its configuration, what was resolved on this machine (backend, the log's
    format and time column), per-stage seconds, and its checkpoint once opened."""

    config: object              # BuildConfig or ItemsConfig
    backend: ModuleType
    progress: Optional[Callable]
    started: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)
    input_info: dict = field(default_factory=dict)
    partial: Optional[str] = None
    state: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # what stages read once and reuse (a streamed build's columns)
    routes_before: dict = field(default_factory=dict)

    def __post_init__(self):
        self.routes_before = dict(getattr(self.backend, "routes", {}))

    def routes(self) -> Optional[dict]:
        """Rows the backend scored per route during this run (None where it does not count them, or where
        Ray workers scored them)."""
        if not hasattr(self.backend, "routes") or getattr(self.config, "engine", "local") == "ray":
            return None
        now = self.backend.routes
        diff = {k: v - self.routes_before.get(k, 0) for k, v in now.items() if v != self.routes_before.get(k, 0)}
        return diff or None

    def stage(self, name: str, fn: Callable, *args):
        """``fn(*args)``, its seconds added to stage ``name`` (a stage may run in several pieces)."""
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t

    def params(self) -> dict:
        return self.config.params({"backend": self.backend.name, **self.resolved})

    def fingerprint(self) -> str:
        """What a resumed build must share with the interrupted one: input, recorded parameters, version."""
        blob = json.dumps({"input": self.input_info, "params": self.params(), "version": __version__},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def open_checkpoint(self) -> str:
        """OUT.partial: kept from an interrupted build of the same input and parameters when resuming
        (its plan.json holds the state saved so far), started afresh otherwise."""
        out = self.config.out
        partial = f"{out.rstrip(os.sep)}.partial"
        plan_path = os.path.join(partial, PLAN_FILE)
        fingerprint = self.fingerprint()
        state = None
        if os.path.isdir(partial):
            if getattr(self.config, "resume", False) and os.path.isfile(plan_path):
                with open(plan_path) as f:
                    state = json.load(f)
                if state.get("fingerprint") != fingerprint:
                    state = None
            if state is None:
                shutil.rmtree(partial)
        os.makedirs(partial, exist_ok=True)
        self.partial, self.state = partial, state or {"fingerprint": fingerprint}
        self.save()
        return partial

    def save(self, **changes) -> None:
        """Updates the checkpoint's state and writes it (atomically)."""
        self.state.update(changes)
        write_json(os.path.join(self.partial, PLAN_FILE), self.state)

    def path(self, name: str) -> str:
        return os.path.join(self.partial, name)

    def publish(self, body: dict, rows_of: dict, kind: Optional[str] = None, stage_order=None) -> str:
        """Writes manifest.json into the checkpoint directory, then renames it to OUT (replacing an earlier
        output): what every output records (format version, versions, command, input, parameters), ``body``,
        the stages' seconds (in ``stage_order`` when given) and, per file of ``rows_of`` (name -> [lo, hi]
        rows), its sha256, bytes and rows."""
        out = self.config.out
        timings = sorted(self.timings, key=stage_order.index) if stage_order else list(self.timings)
        manifest = {
            **({"kind": kind} if kind else {}),
            "format_version": body.pop("format_version"),
            "simmine_version": __version__,
            "command": self.config.command_line(),
            "input": self.input_info,
            "params": self.params(),
            "config": self.config.to_dict(),
            **body,
            **({} if kind else {"routes": self.routes()}),
            "elapsed_s": {**{k: round(self.timings[k], 6) for k in timings},
                          "total": round(time.perf_counter() - self.started, 6)},
            "files": {name: {"sha256": sha256_file(self.path(name)), "bytes": os.path.getsize(self.path(name)),
                             "rows": rows} for name, rows in rows_of.items()},
        }
        write_json(self.path("manifest.json"), manifest)
        os.remove(self.path(PLAN_FILE))
        replaced = out.rstrip(os.sep) + REPLACED
        if os.path.isdir(out):  # moved aside, not deleted first: OUT is never absent with nothing to restore
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(out, replaced)
            fault_point("SIMMINE_KILL_IN_PUBLISH", 1)
        os.replace(self.partial, out)
        shutil.rmtree(replaced, ignore_errors=True)
        return out

    def discard(self) -> None:
        """Bad input: nothing is left behind."""
        if self.partial is not None:
            shutil.rmtree(self.partial, ignore_errors=True)


def recover_publish(out: str) -> None:
    """Finishes a publish that was interrupted between moving the earlier OUT aside and renaming the complete
    OUT.partial (it holds its manifest.json) into place."""
    partial, replaced = f"{out.rstrip(os.sep)}.partial", out.rstrip(os.sep) + REPLACED
    if not os.path.isdir(out) and os.path.isfile(os.path.join(partial, "manifest.json")) and \
            not os.path.isfile(os.path.join(partial, PLAN_FILE)):
        os.replace(partial, out)
    if os.path.isdir(out):
        shutil.rmtree(replaced, ignore_errors=True)


def check_out(out: str) -> None:
    """Refuses to replace anything that is not an earlier simmine output."""
    recover_publish(out)
    if os.path.isfile(out):
        raise InputError(f"{out}: exists and is a file; --out must name a directory")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, "manifest.json")):
        raise InputError(f"{out}: exists and is not a simmine output; refusing to overwrite it")


@dataclass
class Loaded:
    """The log as read, and what the manifest records of its files."""

    log: Log
    input_info: dict


def load_log(config) -> Loaded:
    """Stage load: the log (or the built-in demo), its path, size and sha256."""
    if config.input is None:
        from .demo import demo_table

        log = Log("<demo>", "demo", demo_table(), "user_id", "item_id", "timestamp", config.bucket_by, 0)
        missing = [c for c in config.bucket_by if c not in log.table.column_names]
        if missing:
            raise InputError(f"<demo>: no column '{missing[0]}' (columns: {', '.join(log.table.column_names)})")
        info = {"path": None, "demo": True, "bytes": None, "sha256": None}
    else:
        log = read_log(config.input, config.format, config.user_col, config.item_col, config.time_col,
                       config.bucket_by)
        info = input_info(config.input)
    return Loaded(log, info)


def input_info(path: str) -> dict:
    return {"path": os.path.abspath(path), "demo": False, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def resolved_input(config, fmt: str, time_col: Optional[str]) -> dict:
    """The recorded parameters only known once the log is open."""
    out = {"format": fmt, "time_col": time_col}
    if config.embeddings is not None:
        out["embeddings"] = os.path.abspath(config.embeddings)
    return out
