"""Bounded-memory builds (--memory-gb): the same bytes as the in-memory build, from any format, after any kill."""
import glob
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simmine
import simmine.stream as stream
import simmine.stream.prepare as stream_prepare
from simmine.errors import InputError
from simmine.synth import synth

TINY = 0.0005  # GiB: about 0.5 MB, so even these logs take several partitions and groups


def _tables(path):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(os.path.join(path, "*.arrow")))}


def _same_build(tmp_path, name, **kw):
    """Builds in memory and streamed; asserts byte-identical tables; returns the streamed manifest."""
    mem = simmine.build(out=str(tmp_path / f"{name}-mem"), quiet=True, **kw)
    low = simmine.build(out=str(tmp_path / f"{name}-low"), quiet=True, memory_gb=TINY, **kw)
    a, b = _tables(mem), _tables(low)
    assert sorted(a) == sorted(b)
    for f in a:
        assert a[f] == b[f], f
    m_mem, m_low = simmine.open(mem).manifest, simmine.open(low).manifest
    for key in ("n_anchors", "n_users", "skipped", "n_buckets", "pairs", "tau", "realised_fraction", "shards"):
        assert m_mem[key] == m_low[key], key
    assert m_low["params"]["memory_gb"] == TINY and m_mem["params"]["memory_gb"] is None
    from simmine.report import summary_lines

    assert f"streamed within --memory-gb {TINY} ({m_low['streamed']['partitions']} user partitions" in \
        "\n".join(summary_lines(low))
    return m_low


@pytest.fixture(scope="module")
def bucketed_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "log.parquet"
    synth(str(path), users=2500, items=400, mean_len=10, cities=3, days=3, seed=3)
    return str(path)


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(stream_prepare, "MIN_BATCH_ROWS", 1000)  # many input batches from a small log


@pytest.mark.parametrize("metric,sel", [("jaccard", dict(k=5)), ("tfidf", dict(alpha=0.05)),
                                        ("ngram", dict(min_sim=0.2)), ("levenshtein", dict(k=3)),
                                        ("jaccard", dict(alpha=0.02, alpha_scope="global")),
                                        ("tfidf", dict(min_sim=0.3, max_per_anchor=2))], ids=str)
@pytest.mark.parametrize("bucket_by", [None, "city,day"])
def test_streamed_equals_in_memory(tmp_path, bucketed_log, small_batches, metric, sel, bucket_by):
    m = _same_build(tmp_path, "b", input=bucketed_log, metric=metric, bucket_by=bucket_by, shard_rows=900, **sel)
    assert m["streamed"]["partitions"] > 1
    if bucket_by:
        assert m["streamed"]["groups"] > 1  # buckets were mined in several groups, then merged by seq_id


def _interleaved_rows(rng, users=400, max_len=14, items=60):
    rows = []
    for u in range(users):
        for t in range(int(rng.integers(1, max_len))):
            rows.append((f"user-{u * 7919 % 1000:03d}", f"i{int(rng.integers(0, items))}", int(rng.integers(0, 9)),
                         f"c{u % 3}"))
    return [rows[i] for i in rng.permutation(len(rows))]  # users' rows scattered over the file, tied times


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "arrow", "lines"])
def test_formats_stream_to_the_same_bytes(tmp_path, small_batches, fmt):
    rng = np.random.default_rng(5)
    rows = _interleaved_rows(rng)
    table = pa.table({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                      "timestamp": [r[2] for r in rows], "city": [r[3] for r in rows]})
    path = tmp_path / f"log.{fmt if fmt != 'lines' else 'txt'}"
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        path.write_text("user_id" + sep + "item_id" + sep + "timestamp" + sep + "city\n" +
                        "".join(sep.join(map(str, r)) + "\n" for r in rows))
    elif fmt == "parquet":
        pq.write_table(table, path, row_group_size=500)
    elif fmt == "arrow":
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table, max_chunksize=700)
    else:
        by_user = {}
        for r in rows:
            by_user.setdefault(r[0], []).append(r[1])
        path.write_text("".join(u + " " + " ".join(items) + "\n" for u, items in by_user.items()))
    bucket = "city" if fmt != "lines" else None
    _same_build(tmp_path, fmt, input=str(path), metric="jaccard", k=4, bucket_by=bucket)


def test_csv_column_turning_to_text_is_read_as_text(tmp_path, monkeypatch):
    import simmine.readers.delimited as delimited

    monkeypatch.setattr(delimited, "CSV_BLOCK_BYTES", 4096)  # the first block holds only numeric users
    lines = [f"{u},{(u * 3 + t) % 50},{t}" for u in range(300) for t in range(5)]
    lines += [f"name{u},{u % 50},{t}" for u in range(40) for t in range(5)]
    path = tmp_path / "mixed.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    low = simmine.build(input=str(path), out=str(tmp_path / "low"), k=3, quiet=True, memory_gb=TINY)
    users = simmine.open(low).sequences().column("user_id")
    assert pa.types.is_string(users.type) and "name7" in users.to_pylist()


def test_bad_rows_are_named_with_their_line_and_leave_nothing(tmp_path, monkeypatch):
    import simmine.readers.delimited as delimited

    monkeypatch.setattr(delimited, "CSV_BLOCK_BYTES", 4096)
    lines = [f"u{u},{u % 50},{t}" for u in range(400) for t in range(4)]
    lines[1200] = "u300,7,soon"  # file line 1202 (after the header), far past the first block
    path = tmp_path / "bad.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"bad.csv: line 1202: column 'timestamp': non-numeric timestamp 'soon'"):
        simmine.build(input=str(path), out=str(out), k=3, quiet=True, memory_gb=TINY)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_parquet_null_names_its_row(tmp_path, small_batches):
    n = 5000
    users = [f"u{i // 5}" for i in range(n)]
    items = [i % 97 for i in range(n)]
    items[4321] = None
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"user_id": users, "item_id": items}), path, row_group_size=1000)
    with pytest.raises(InputError, match=r"nulls.parquet: row 4322: column 'item_id': missing value"):
        simmine.build(input=str(path), out=str(tmp_path / "o"), k=3, quiet=True, memory_gb=TINY)


@pytest.mark.parametrize("kw,message", [
    (dict(memory_gb=0), "--memory-gb must be positive"),
    (dict(memory_gb=1.0, input=None), "the demo log is built in memory"),
    (dict(memory_gb=1.0, method="minhash"), "--memory-gb runs --method exact"),
])
def test_flag_errors(tmp_path, bucketed_log, kw, message):
    args = dict(input=bucketed_log, out=str(tmp_path / "o"), k=3, quiet=True)
    args.update(kw)
    with pytest.raises(InputError, match=message):
        simmine.build(**args)


def test_user_partition_is_a_function_of_the_user():
    ids = pa.chunked_array([pa.array(["a", "bb", "", "a", "ccc", "bb", "é"])])
    p = stream.user_partition(ids, 7)
    assert p[0] == p[3] and p[1] == p[5] and ((0 <= p) & (p < 7)).all()
    sliced = pa.array(["x", "a", "bb"]).slice(1)  # array offsets are honoured
    assert list(stream.user_partition(pa.chunked_array([sliced]), 7)) == [p[0], p[1]]
    many = stream.user_partition(pa.chunked_array([pa.array(np.arange(70_000))]), 7)
    assert np.bincount(many, minlength=7).min() > 9000  # spread over the partitions (10k each expected)
    strings = stream.user_partition(pa.chunked_array([pa.array([f"user{i}" for i in range(70_000)])]), 7)
    assert np.bincount(strings, minlength=7).min() > 9000


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "simmine.cli", "build", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("kill", [{"SIMMINE_KILL_AFTER_STAGE": s} for s in "ABCDW"] +
                         [{"SIMMINE_KILL_AFTER_GROUPS": "2"}, {"SIMMINE_KILL_AFTER_SHARDS": "1"}],
                         ids=lambda k: "-".join(k.items().__iter__().__next__()))
def test_kill_9_at_any_stage_then_resume_is_byte_identical(tmp_path, bucketed_log, kill):
    args = ["--input", bucketed_log, "--metric", "tfidf", "--k", "4", "--bucket-by", "city,day",
            "--shard-rows", "1000", "--memory-gb", str(TINY), "--quiet"]
    ref = tmp_path / "ref"
    assert _cli(*args, "--out", str(ref)).returncode == 0
    out = tmp_path / "out"
    killed = _cli(*args, "--out", str(out), env=kill)
    assert killed.returncode == -9, killed.stderr
    assert not out.exists() and (tmp_path / "out.partial" / "spill").is_dir()
    resumed = _cli(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _tables(out) == _tables(ref)
    assert not (out / "spill").exists()
    assert subprocess.run([sys.executable, "-m", "simmine.cli", "verify", str(out)]).returncode == 0


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.4])
def test_kill_9_at_a_random_moment_then_resume_is_byte_identical(tmp_path, bucketed_log, fraction):
    """SIGKILL once the work directory exists plus a fraction of an uninterrupted build's wall time,
    wherever the build then is."""
    import time

    args = [sys.executable, "-m", "simmine.cli", "build", "--input", bucketed_log, "--metric", "ngram", "--k", "4",
            "--bucket-by", "city,day", "--shard-rows", "800", "--memory-gb", str(TINY), "--quiet"]
    t = time.perf_counter()
    assert subprocess.run(args + ["--out", str(tmp_path / "ref")]).returncode == 0
    wall = time.perf_counter() - t
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "out")])
    while not (tmp_path / "out.partial").exists() and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(wall * fraction)
    proc.kill()
    proc.wait()
    resumed = subprocess.run(args + ["--out", str(tmp_path / "out"), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _tables(tmp_path / "out") == _tables(tmp_path / "ref")
