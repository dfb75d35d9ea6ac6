"""Output files (docs/output.md): schemas, memory maps in another process, pickling, checksums."""
import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import simmine


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return simmine.build(metric="jaccard", alpha=0.05, bucket_by="city", out=str(tmp_path_factory.mktemp("b") / "o"),
                         quiet=True)


def test_schemas_and_layout(out):
    weak = pa.ipc.open_file(os.path.join(out, "weak.arrow")).schema
    strong = pa.ipc.open_file(os.path.join(out, "strong.arrow")).schema
    seqs = pa.ipc.open_file(os.path.join(out, "sequences.arrow")).schema
    assert weak.field("neighbors").type == pa.large_list(pa.uint32())
    assert weak.field("scores").type == pa.large_list(pa.float32())
    assert strong.names == ["group"] and strong.field("group").type == pa.uint32()
    groups = pa.ipc.open_file(os.path.join(out, "groups.arrow")).schema
    assert groups.field("members").type == pa.large_list(pa.uint32())
    assert seqs.names == ["seq_id", "user_id", "position", "target", "history", "bucket"]
    assert seqs.field("position").type == pa.uint32()
    assert seqs.field("bucket").type == pa.string()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_manifest_checksums_and_counts(out):
    m = json.load(open(os.path.join(out, "manifest.json")))
    for name, info in m["files"].items():
        assert hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest() == info["sha256"]
    pos = simmine.open(out)
    assert m["pairs"]["weak_kept"] == sum(len(pos.weak(i)[0]) for i in range(len(pos)))
    assert m["n_buckets"] == 4 and m["params"]["bucket_by"] == ["city"]


def test_weak_lists_are_sorted_and_within_bucket(out):
    pos = simmine.open(out)
    bucket = pos.sequences().column("bucket").to_pylist()
    for i in range(0, len(pos), 97):
        nbr, sc = pos.weak(i)
        assert np.all(np.diff(sc) <= 0) and i not in nbr.tolist() and np.all(sc > 0)
        assert all(bucket[j] == bucket[i] for j in nbr.tolist())
        strong = pos.strong(i)
        assert np.all(np.diff(strong.astype(np.int64)) > 0)


def test_second_process_memory_maps(out):
    code = ("import pyarrow as pa, sys; t = pa.ipc.open_file(pa.memory_map(sys.argv[1])).read_all();"
            "c = t.column('neighbors').combine_chunks(); print(len(t), c[5].values.to_pylist()[:3])")
    r = subprocess.run([sys.executable, "-c", code, os.path.join(out, "weak.arrow")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pos = simmine.open(out)
    assert r.stdout.split()[0] == str(len(pos))
    assert r.stdout.strip().endswith(str(pos.weak(5)[0][:3].tolist()).replace(" ", " "))


def test_positives_pickles_without_maps(out):
    pos = simmine.open(out)
    pos.weak(0)
    clone = pickle.loads(pickle.dumps(pos))
    assert clone._weak_n is None
    np.testing.assert_array_equal(clone.weak(3)[0], pos.weak(3)[0])
    with pytest.raises(IndexError):
        pos.weak(len(pos))
