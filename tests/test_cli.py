"""The command line end to end (docs/cli.md): builds, inspect, verify, and every bad-input case."""
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import simmine
from simmine.cli import main


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "simmine.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_demo_build_inspect_verify(tmp_path):
    out = tmp_path / "out"
    r = run("build", "--metric", "jaccard", "--alpha", "0.05", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "weak" in r.stdout
    assert sorted(os.listdir(out)) == ["groups.arrow", "manifest.json", "sequences.arrow", "strong.arrow", "weak.arrow"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"] == f"simmine build --alpha 0.05 --out {out}"  # the flags that differ from defaults
    assert m["input"]["demo"] and m["n_anchors"] > 1000 and m["params"]["alpha"] == 0.05
    assert list(m["elapsed_s"]) == ["load", "anchors", "features", "plan", "mine", "strong", "write", "total"]
    r = run("inspect", str(out), "--plot", str(tmp_path / "h.png"))
    assert r.returncode == 0 and "anchors" in r.stdout
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run("verify", str(out), "--sample", "10")
    assert r.returncode == 0, r.stderr


def test_demo_runs_in_default_out_dir(tmp_path):
    assert main(["build", "--metric", "jaccard", "--alpha", "0.05", "--quiet", "--out",
                 str(tmp_path / "simmine-out")]) == 0


def test_verify_catches_corruption(tmp_path):
    out = tmp_path / "out"
    assert main(["build", "--k", "5", "--quiet", "--out", str(out)]) == 0
    data = bytearray((out / "weak.arrow").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "weak.arrow").write_bytes(bytes(data))
    r = run("verify", str(out))
    assert r.returncode == 1 and "weak.arrow" in r.stderr and "checksum" in r.stderr


def test_verify_catches_a_wrong_neighbour(tmp_path):
    """A table rewritten with a wrong neighbour and a matching checksum is caught by recomputation."""
    from simmine.io import sha256_file, weak_table, write_table

    out = tmp_path / "out"
    assert main(["build", "--k", "3", "--quiet", "--out", str(out)]) == 0
    t = pa.ipc.open_file(str(out / "weak.arrow")).read_all()
    nbr = t.column("neighbors").combine_chunks()
    values = nbr.values.to_numpy().copy()
    values[:] = values[::-1]
    write_table(str(out / "weak.arrow"), weak_table(nbr.offsets.to_numpy(), values,
                                                    t.column("scores").combine_chunks().values.to_numpy()))
    m = json.loads((out / "manifest.json").read_text())
    m["files"]["weak.arrow"]["sha256"] = sha256_file(str(out / "weak.arrow"))
    (out / "manifest.json").write_text(json.dumps(m))
    r = run("verify", str(out), "--sample", "5")
    assert r.returncode == 1 and "anchor" in r.stderr


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return str(p)


GOOD = "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{i}\n" for u in range(4) for i in range(5))


@pytest.mark.parametrize("case,args,needle", [
    ("missing file", ["--input", "{tmp}/nope.csv"], "nope.csv: no such file"),
    ("garbage bytes", ["--input", "{garbage}"], "garbage.bin"),
    ("missing column", ["--input", "{good}", "--item-col", "product"], "no column 'product'"),
    ("missing time column", ["--input", "{good}", "--time-col", "when"], "no column 'when'"),
    ("non-numeric timestamp", ["--input", "{badtime}"], "line 3: column 'timestamp': non-numeric"),
    ("empty log", ["--input", "{empty}"], "empty.csv"),
    ("header only", ["--input", "{header}"], "no interactions"),
    ("too few fields", ["--input", "{short}"], "line 4: too few fields"),
    ("unknown metric", ["--metric", "cosinus"], "unknown metric 'cosinus'"),
    ("unknown backend", ["--backend", "fortran"], "unknown backend 'fortran'"),
    ("negative k", ["--k", "-3"], "--k must be a positive integer"),
    ("conflicting selection", ["--k", "3", "--alpha", "0.1"], "exactly one of"),
    ("no selection", [], "exactly one of"),
    ("alpha out of range", ["--alpha", "1.5"], "--alpha must be in (0, 1]"),
    ("ngram below one", ["--metric", "ngram", "--ngram-n", "0"], "--ngram-n"),
    ("non-numeric flag", ["--k", "ten"], "expected an integer"),
    ("unknown flag", ["--frobnicate"], "unrecognized arguments"),
    ("bad bucket column", ["--input", "{good}", "--bucket-by", "city"], "no column 'city'"),
    ("unknown format", ["--input", "{good}", "--format", "xml"], "unknown --format"),
    ("everyone skipped", ["--input", "{tiny}"], "no user has a non-empty history"),
])
def test_bad_input_exit_2_one_line_no_output(tmp_path, case, args, needle):
    files = {
        "tmp": str(tmp_path),
        "garbage": _write(tmp_path, "garbage.bin", bytes(range(256)) * 50),
        "good": _write(tmp_path, "good.csv", GOOD),
        "badtime": _write(tmp_path, "badtime.csv", "user_id,item_id,timestamp\n1,2,3\n1,3,abc\n1,4,5\n"),
        "empty": _write(tmp_path, "empty.csv", ""),
        "header": _write(tmp_path, "header.csv", "user_id,item_id,timestamp\n"),
        "short": _write(tmp_path, "short.csv", "user_id,item_id,timestamp\n1,2,3\n1,3,4\n1,5\n"),
        "tiny": _write(tmp_path, "tiny.csv", "user_id,item_id,timestamp\n1,2,3\n"),
    }
    out = tmp_path / "out"
    args = [a.format(**files) for a in args]
    if not any(a in ("--k", "--alpha", "--min-sim") for a in args) and case != "no selection":
        args += ["--k", "3"]
    r = run("build", *args, "--out", str(out))
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out")]


def test_refuses_to_overwrite_foreign_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    r = run("build", "--k", "3", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_rebuild_replaces_previous_output(tmp_path):
    out = str(tmp_path / "out")
    assert main(["build", "--k", "3", "--quiet", "--out", out]) == 0
    assert main(["build", "--k", "1", "--quiet", "--out", out]) == 0
    assert json.loads(open(os.path.join(out, "manifest.json")).read())["params"]["k"] == 1


def test_inspect_of_non_output_is_exit_2(tmp_path):
    r = run("inspect", str(tmp_path))
    assert r.returncode == 2 and "not a simmine output" in r.stderr


def test_string_ids_csv_build(tmp_path):
    path = _write(tmp_path, "log.csv", "user_id,item_id,timestamp\n" +
                  "".join(f"u{u},item-{(u * i) % 7},{i}\n" for u in range(10) for i in range(6)))
    r = run("build", "--input", path, "--metric", "tfidf", "--k", "2", "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    seqs = pa.ipc.open_file(str(tmp_path / "o" / "sequences.arrow")).read_all()
    assert seqs.column("user_id").to_pylist()[:2] == ["u0", "u1"]
    assert seqs.column("history").to_pylist()[1] == ["item-0", "item-1", "item-2"]


@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein"])
def test_verify_recomputes_bucketed_builds_from_the_sample_buckets(tmp_path, metric):
    """verify rebuilds only the sampled anchors' buckets (with TF-IDF's df over every anchor) and still finds
    a single swapped neighbour."""
    from simmine.io import sha256_file, weak_table, write_table
    from simmine.report import verify

    out = str(tmp_path / "out")
    simmine.build(out=out, metric=metric, alpha=0.05, bucket_by="city", quiet=True)
    assert verify(out, sample=30) == []
    n = simmine.open(out).manifest["n_anchors"]
    t = pa.ipc.open_file(os.path.join(out, "weak.arrow")).read_all()
    nbr = t.column("neighbors").combine_chunks()
    offsets, values = nbr.offsets.to_numpy(), nbr.values.to_numpy().copy()
    sampled = np.sort(np.random.default_rng(0).choice(n, size=30, replace=False))  # verify's sample, seed 0
    victim = int(next(i for i in sampled if offsets[i + 1] > offsets[i]))
    a, b = offsets[victim], min(offsets[victim + 1], offsets[victim] + 5)
    values[a] = victim  # an anchor is never its own positive
    write_table(os.path.join(out, "weak.arrow"),
                weak_table(offsets, values, t.column("scores").combine_chunks().values.to_numpy()))
    m = json.loads(open(os.path.join(out, "manifest.json")).read())
    m["files"]["weak.arrow"]["sha256"] = sha256_file(os.path.join(out, "weak.arrow"))
    open(os.path.join(out, "manifest.json"), "w").write(json.dumps(m))
    problems = verify(out, sample=30)
    assert problems == [f"weak.arrow: anchor {victim}: neighbours differ from the reference "
                        f"(stored {values[a:b].tolist()}..., expected {nbr.values.to_numpy()[a:b].tolist()}...)"]


def test_synth_streams_chunks_of_users_deterministically(tmp_path):
    import pyarrow.parquet as pq

    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    for path in (a, b):
        assert main(["synth", path, "--users", "500", "--items", "300", "--cities", "3", "--days", "2",
                     "--chunk-users", "64", "--seed", "7"]) == 0
    f = pq.ParquetFile(a)
    assert f.metadata.num_row_groups == 8  # ceil(500 / 64) chunks, each written as it is generated
    t = f.read()
    assert t.column_names == ["user_id", "item_id", "timestamp", "city", "day"]
    assert t.equals(pq.read_table(b)) and len(set(t.column("user_id").to_pylist())) == 500
    assert min(np.bincount(t.column("user_id").to_numpy())[1:]) >= 3
    r = run("synth", str(tmp_path / "c.parquet"), "--users", "10", "--chunk-users", "0")
    assert r.returncode == 2 and "--chunk-users must be positive" in r.stderr
