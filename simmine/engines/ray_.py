"""The Ray engine: anchor ranges become Ray tasks; the output is identical to the local engine's.

The features (one CSR) and the plan go into the object store once; NumPy arrays are read zero-copy by
workers on the same node. Each task mines one range of anchors against their whole buckets
(engines.local.mine_weak_range) and returns its lists; the driver gathers them in seq_id order and writes
shards as the local engine does, so --resume and verify work unchanged. Ray retries a task whose worker
dies (max_retries), and a range's result does not depend on which attempt computed it.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..errors import InputError
from .local import WeakResult, mine_weak_range

TASK_MAX_RETRIES = 3


def task_resources(backend_name: str) -> dict:
    """What one mining task asks Ray for: a CPU, and a whole GPU when its tiles run on the cuda backend
    (the kernels size their launches for one device)."""
    return {"num_cpus": 1, "num_gpus": 1 if backend_name == "cuda" else 0}


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'simmine[ray]'") from None
    return ray


def _mine_task(features, plan, sel, backend_name, lo, hi, threshold, fail_marker):
    if fail_marker and not os.path.exists(fail_marker):  # fault injection for the retry test
        open(fail_marker, "w").close()
        os._exit(1)  # the worker process dies mid-task, as in a crash
    from ..backends import get_backend

    w = mine_weak_range(features, plan, sel, get_backend(backend_name), lo, hi, threshold)
    return w.offsets, w.neighbors, w.scores


class RayRunner:
    """Mines ranges of anchors on a Ray cluster (``address=None`` starts a local one, stopped by close()).
    ``load`` puts the features to mine in the object store; a bounded-memory build loads one group of
    buckets after another."""

    def __init__(self, features, plan, sel, backend_name: str, threshold=None, address: Optional[str] = None,
                 task_rows: Optional[int] = None):
        ray = self.ray = _ray()
        self.started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # unreachable address, bad cluster
                raise InputError(f"--ray-address {address}: cannot connect to a Ray cluster ({exc})") from None
            self.started = True
        self.sel, self.backend_name, self.fixed_task_rows = sel, backend_name, task_rows
        self.remote = ray.remote(max_retries=TASK_MAX_RETRIES, **task_resources(backend_name))(_mine_task)
        self.tasks = 0
        self.fail_marker = os.environ.get("SIMMINE_RAY_FAIL_ONCE")
        self.features_ref = self.plan_ref = None
        if features is not None:
            self.load(features, plan, threshold)

    def load(self, features, plan, threshold=None) -> None:
        """Makes ``features`` and ``plan`` the ones mined next (put in the object store once)."""
        features._last_tile = (None, None)  # ship the CSR, not a cached tile
        self.features_ref, self.plan_ref = None, None  # let the store free the previous group
        self.features_ref = self.ray.put(features)
        self.plan_ref = self.ray.put(plan)
        self.threshold = threshold
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self.task_rows = self.fixed_task_rows or max(256, -(-features.n // (4 * cpus)))

    def mine(self, lo: int, hi: int) -> WeakResult:
        """Weak lists of anchors lo..hi-1, computed as Ray tasks of at most task_rows anchors."""
        bounds = list(range(lo, hi, self.task_rows)) + [hi]
        futures = [self.remote.remote(self.features_ref, self.plan_ref, self.sel, self.backend_name, a, b,
                                      self.threshold, self.fail_marker) for a, b in zip(bounds[:-1], bounds[1:])]
        self.tasks += len(futures)
        parts = self.ray.get(futures)
        counts = np.concatenate([np.diff(p[0]) for p in parts]) if parts else np.zeros(0, np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        neighbors = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.uint32)
        scores = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
        return WeakResult(offsets, neighbors, scores, self.threshold)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
