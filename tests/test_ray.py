"""--engine ray on a real local Ray cluster: identical output, a dead worker retried, resume after kill -9."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import simmine  # noqa: E402
from conftest import load_weak  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _same(a, b):
    (wa, sa), (wb, sb) = load_weak(a), load_weak(b)
    return all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(wa, wb)) and \
        all(np.array_equal(x, y) for x, y in zip(sa, sb))


def _tables(path):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(os.path.join(path, "*.arrow")))}


@pytest.mark.parametrize("sel", [dict(k=5), dict(min_sim=0.3, metric="tfidf"), dict(alpha=0.01, alpha_scope="global"),
                                 dict(alpha=0.05, bucket_by="city"), dict(k=5, anchors="prefix", max_len=10),
                                 dict(k=5, anchors="prefix", max_len=10, metric="tfidf")], ids=str)
def test_ray_equals_local(tmp_path, sel):
    local = simmine.build(out=str(tmp_path / "local"), quiet=True, **sel)
    remote = simmine.build(out=str(tmp_path / "ray"), quiet=True, engine="ray", **sel)
    m = simmine.open(remote).manifest
    assert m["engine"] == "ray" and m["ray"]["tasks"] >= 2
    assert _tables(local) == _tables(remote)


def test_ray_sharded_equals_local(tmp_path):
    local = simmine.build(out=str(tmp_path / "local"), quiet=True, k=4, shard_rows=1000)
    remote = simmine.build(out=str(tmp_path / "ray"), quiet=True, k=4, shard_rows=1000, engine="ray")
    assert _tables(local) == _tables(remote)


@pytest.mark.parametrize("sel", [dict(k=4), dict(alpha=0.02, alpha_scope="global", metric="tfidf"),
                                 dict(k=4, anchors="prefix")], ids=str)
def test_ray_streamed_equals_local_in_memory(tmp_path, sel):
    from simmine.synth import synth

    log = str(tmp_path / "log.parquet")
    synth(log, users=3000, items=400, mean_len=10, cities=3, days=3, seed=4)
    local = simmine.build(input=log, out=str(tmp_path / "local"), quiet=True, bucket_by="city,day", **sel)
    remote = simmine.build(input=log, out=str(tmp_path / "ray"), quiet=True, bucket_by="city,day", engine="ray",
                           memory_gb=0.0005, **sel)
    m = simmine.open(remote).manifest
    assert m["streamed"]["groups"] > 1 and m["ray"]["tasks"] >= m["streamed"]["groups"]
    assert _tables(local) == _tables(remote)


def test_dead_worker_is_retried(tmp_path, monkeypatch):
    marker = tmp_path / "died-once"
    monkeypatch.setenv("SIMMINE_RAY_FAIL_ONCE", str(marker))
    remote = simmine.build(out=str(tmp_path / "ray"), quiet=True, k=5, engine="ray")
    assert marker.exists()  # a worker really exited mid-task
    monkeypatch.delenv("SIMMINE_RAY_FAIL_ONCE")
    local = simmine.build(out=str(tmp_path / "local"), quiet=True, k=5)
    assert _tables(local) == _tables(remote)


def test_ray_build_killed_then_resumed(tmp_path):
    ref = simmine.build(out=str(tmp_path / "ref"), quiet=True, k=4, shard_rows=1000)
    args = [sys.executable, "-m", "simmine.cli", "build", "--k", "4", "--shard-rows", "1000", "--engine", "ray",
            "--out", str(tmp_path / "out"), "--quiet"]
    killed = subprocess.run(args, env={**os.environ, "SIMMINE_KILL_AFTER_SHARDS": "1"}, capture_output=True)
    assert killed.returncode == -9
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _tables(str(tmp_path / "out")) == _tables(ref)


def test_ray_rejects_approximate(tmp_path):
    with pytest.raises(simmine.InputError, match="engine ray"):
        simmine.build(out=str(tmp_path / "o"), quiet=True, k=3, engine="ray", method="minhash")
