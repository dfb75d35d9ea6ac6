"""Sharded output and --resume (docs/output.md): identical lists, byte-identical tables after a kill -9."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import simmine
from conftest import load_weak


@pytest.mark.parametrize("sel", [dict(k=5), dict(alpha=0.02), dict(min_sim=0.3), dict(alpha=0.01, alpha_scope="global"),
                                 dict(k=5, max_per_anchor=3, bucket_by="city")], ids=str)
def test_sharded_equals_single_file(tmp_path, sel):
    one = simmine.build(out=str(tmp_path / "one"), quiet=True, **sel)
    many = simmine.build(out=str(tmp_path / "many"), quiet=True, shard_rows=700, **sel)
    m = simmine.open(many).manifest
    assert [sh["rows"] for sh in m["shards"]] == [[0, 700], [700, 1400], [1400, 2100], [2100, 2800], [2800, 3000]]
    assert sorted(os.listdir(many)) == sorted(["manifest.json", "sequences.arrow", "groups.arrow"] +
                                              [f"{k}-{s:05d}.arrow" for k in ("weak", "strong") for s in range(5)])
    weak_1, strong_1 = load_weak(one)
    weak_n, strong_n = load_weak(many)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(weak_1, weak_n))
    assert all(np.array_equal(a, b) for a, b in zip(strong_1, strong_n))
    assert simmine.open(one).manifest["tau"] == m["tau"]
    assert m["pairs"]["weak_kept"] == simmine.open(one).manifest["pairs"]["weak_kept"]


def test_sharded_minhash_equals_single_file(tmp_path):
    one = simmine.build(out=str(tmp_path / "one"), quiet=True, k=5, method="minhash")
    many = simmine.build(out=str(tmp_path / "many"), quiet=True, k=5, method="minhash", shard_rows=1000)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(load_weak(one)[0], load_weak(many)[0]))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "simmine.cli", "build", *args], capture_output=True, text=True,
                           env={**os.environ, **(env or {})})


def _tables(path):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(os.path.join(path, "*.arrow")))}


@pytest.mark.parametrize("args", [["--k", "4"], ["--alpha", "0.01", "--alpha-scope", "global", "--metric", "tfidf"]],
                         ids=["k", "global-tfidf"])
def test_kill_9_then_resume_is_byte_identical(tmp_path, args):
    ref = tmp_path / "ref"
    assert _cli(*args, "--shard-rows", "500", "--out", str(ref), "--quiet").returncode == 0
    out = tmp_path / "out"
    killed = _cli(*args, "--shard-rows", "500", "--out", str(out), "--quiet", env={"SIMMINE_KILL_AFTER_SHARDS": "2"})
    assert killed.returncode == -9
    assert not out.exists()
    partial = tmp_path / "out.partial"
    assert sorted(f for f in os.listdir(partial) if f.startswith("weak-")) == ["weak-00000.arrow", "weak-00001.arrow"]
    done_before = {f: os.stat(partial / f).st_mtime_ns for f in os.listdir(partial) if f.endswith(".arrow")}
    resumed = _cli(*args, "--shard-rows", "500", "--out", str(out), "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not partial.exists()
    assert _tables(out) == _tables(ref)
    assert all(os.stat(out / f).st_mtime_ns == t for f, t in done_before.items())  # finished shards were kept
    assert subprocess.run([sys.executable, "-m", "simmine.cli", "verify", str(out)]).returncode == 0


def test_resume_with_other_parameters_starts_over(tmp_path):
    out = tmp_path / "out"
    assert _cli("--k", "4", "--shard-rows", "500", "--out", str(out), "--quiet",
                env={"SIMMINE_KILL_AFTER_SHARDS": "1"}).returncode == -9
    assert _cli("--k", "6", "--shard-rows", "500", "--out", str(out), "--quiet", "--resume").returncode == 0
    assert json.load(open(out / "manifest.json"))["params"]["k"] == 6
    assert all(len(simmine.open(str(out)).weak(i)[0]) <= 6 for i in range(0, 3000, 300))


def test_verify_names_the_corrupted_shard(tmp_path):
    out = simmine.build(out=str(tmp_path / "o"), quiet=True, k=3, shard_rows=1000)
    path = os.path.join(out, "weak-00002.arrow")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0x01
    open(path, "wb").write(bytes(data))
    r = subprocess.run([sys.executable, "-m", "simmine.cli", "verify", out], capture_output=True, text=True)
    assert r.returncode == 1 and "weak-00002.arrow" in r.stderr
    r = subprocess.run([sys.executable, "-m", "simmine.cli", "inspect", out], capture_output=True, text=True)
    assert r.returncode == 0 and "3,000" in r.stdout
