"""`simmine update`: every data file equal to a build of the logs concatenated (the oracle: a full build, itself
checked against the reference elsewhere), refusals with one line and the old build untouched, kills, readers."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

import simmine
from simmine.errors import InputError

COLUMNS = ("user_id", "item_id", "timestamp", "city")


def make_log(seed: int, users: int = 160, items: int = 40):
    """Events sorted by time, then a cut: the base is the first 85%, the delta the rest (new users, new events
    of known users, some in another city than the user's earlier events, and users with one event before)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        home = int(rng.integers(0, 3))
        for _ in range(int(rng.integers(1, 12))):
            city = home if rng.random() < 0.8 else int(rng.integers(0, 3))
            rows.append((u, int(rng.zipf(1.4) % items), int(rng.integers(0, 10_000)), city))
    rows.sort(key=lambda r: r[2])
    return [np.array(c) for c in zip(*rows)]


def write_csv(path, cols, sl) -> str:
    pcsv.write_csv(pa.table({name: c[sl] for name, c in zip(COLUMNS, cols)}), str(path))
    return str(path)


@pytest.fixture
def logs(tmp_path, request):
    seed = getattr(request, "param", 0)
    cols = make_log(seed)
    n = len(cols[0])
    cut1, cut2 = int(n * 0.85), int(n * 0.93)
    return {"old": write_csv(tmp_path / "old.csv", cols, slice(0, cut1)),
            "d1": write_csv(tmp_path / "d1.csv", cols, slice(cut1, cut2)),
            "d2": write_csv(tmp_path / "d2.csv", cols, slice(cut2, None)),
            "old+d1": write_csv(tmp_path / "old_d1.csv", cols, slice(0, cut2)),
            "all": write_csv(tmp_path / "all.csv", cols, slice(None)), "dir": tmp_path}


def data_files(out) -> dict:
    with open(os.path.join(out, "manifest.json")) as f:
        return {name: info["sha256"] for name, info in json.load(f)["files"].items()}


def assert_same_files(a, b) -> None:
    fa, fb = data_files(a), data_files(b)
    assert sorted(fa) == sorted(fb)
    assert [k for k in fa if fa[k] != fb[k]] == []


SELECTIONS = [{"k": 3}, {"alpha": 0.1}, {"min_sim": 0.3}, {"min_sim": 0.2, "max_per_anchor": 2}]
CASES = [(anchors, metric, sel) for anchors in ("user", "prefix") for metric in ("jaccard", "ngram", "levenshtein")
         for sel in SELECTIONS]


@pytest.mark.parametrize("anchors,metric,sel", CASES, ids=[f"{a}-{m}-{'-'.join(map(str, s))}" for a, m, s in CASES])
def test_update_equals_rebuild(logs, anchors, metric, sel):
    d = logs["dir"]
    kw = dict(metric=metric, anchors=anchors, bucket_by="city", quiet=True, **sel)
    simmine.build(logs["old"], out=str(d / "up"), **kw)
    simmine.update(str(d / "up"), logs["d1"], new_out=str(d / "new"))
    simmine.build(logs["old+d1"], out=str(d / "re"), **kw)
    assert_same_files(d / "new", d / "re")
    stats = simmine.open(str(d / "new")).manifest["update"]
    assert stats["anchors_new_or_changed"] > 0
    assert data_files(d / "up") != data_files(d / "new")  # the source build is left as it was


@pytest.mark.parametrize("logs", [1, 2, 3], indirect=True)
@pytest.mark.parametrize("anchors", ["user", "prefix"])
def test_two_updates_in_place_equal_one_build(logs, anchors):
    """A chain of two deltas, in place, without buckets; verify and inspect read the updated build."""
    d = logs["dir"]
    kw = dict(metric="jaccard", anchors=anchors, k=4, quiet=True)
    out = str(d / "up")
    simmine.build(logs["old"], out=out, **kw)
    assert simmine.update(out, logs["d1"]) == out
    simmine.update(out, logs["d2"])
    simmine.build(logs["all"], out=str(d / "re"), **kw)
    assert_same_files(out, d / "re")
    chain = simmine.open(out).manifest["input"]["chain"]
    assert [os.path.basename(e["path"]) for e in chain] == ["old.csv", "d1.csv", "d2.csv"]
    from simmine.report import summary_lines, verify

    assert verify(out, sample=30) == []
    text = "\n".join(summary_lines(out))
    assert "d2.csv" in text and "old.csv" in text
    assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".replaced")


def test_update_is_a_no_op_when_rerun(logs):
    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, quiet=True)
    simmine.update(out, logs["d1"])
    before = data_files(out)
    mtime = os.path.getmtime(os.path.join(out, "manifest.json"))
    assert simmine.update(out, logs["d1"]) == out
    assert data_files(out) == before and os.path.getmtime(os.path.join(out, "manifest.json")) == mtime


def test_update_sharded_build(logs):
    d = logs["dir"]
    kw = dict(metric="jaccard", anchors="prefix", k=3, shard_rows=100, quiet=True)
    simmine.build(logs["old"], out=str(d / "up"), **kw)
    simmine.update(str(d / "up"), logs["d1"])
    simmine.build(logs["old+d1"], out=str(d / "re"), **kw)
    assert_same_files(d / "up", d / "re")
    assert len(simmine.open(str(d / "up")).manifest["shards"]) > 1


def test_lines_logs_append_to_their_users(tmp_path):
    """A log without timestamps: a user's lines in the delta continue its sequence, as in the files joined."""
    rng = np.random.default_rng(5)
    old = [f"{u} " + " ".join(str(int(x)) for x in rng.integers(0, 30, size=rng.integers(2, 9))) for u in range(80)]
    new = [f"{u} {int(rng.integers(0, 30))}" for u in rng.choice(100, size=25, replace=False)]
    (tmp_path / "old.txt").write_text("\n".join(old) + "\n")
    (tmp_path / "new.txt").write_text("\n".join(new) + "\n")
    (tmp_path / "all.txt").write_text("\n".join(old + new) + "\n")
    for anchors in ("user", "prefix"):
        kw = dict(metric="levenshtein", anchors=anchors, k=5, quiet=True)
        simmine.build(str(tmp_path / "old.txt"), out=str(tmp_path / "up"), **kw)
        simmine.update(str(tmp_path / "up"), str(tmp_path / "new.txt"))
        simmine.build(str(tmp_path / "all.txt"), out=str(tmp_path / "re"), **kw)
        assert_same_files(tmp_path / "up", tmp_path / "re")


# ---------------------------------------------------------------------------------------------- refusals
def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "simmine.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def _untouched(out, before):
    assert data_files(out) == before
    assert not os.path.exists(str(out) + ".partial")


@pytest.mark.parametrize("flags,needle", [
    (["--metric", "tfidf", "--k", "3"], "TF-IDF"),
    (["--method", "minhash", "--k", "3"], "minhash"),
    (["--alpha", "0.1", "--alpha-scope", "global"], "global alpha"),
])
def test_modes_without_an_incremental_route_refuse_or_rebuild(logs, flags, needle):
    d = logs["dir"]
    out = str(d / "up")
    assert _cli("build", "--input", logs["old"], "--out", out, "--quiet", *flags).returncode == 0
    before = data_files(out)
    r = _cli("update", out, "--input", logs["d1"])
    assert r.returncode == 2 and needle in r.stderr and "--rebuild" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    _untouched(out, before)
    assert _cli("update", out, "--input", logs["d1"], "--rebuild", "--quiet").returncode == 0
    assert _cli("build", "--input", logs["old+d1"], "--out", str(d / "re"), "--quiet", *flags).returncode == 0
    assert_same_files(out, d / "re")


def test_bad_deltas_exit_2_with_one_line(logs):
    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, bucket_by="city", quiet=True)
    before = data_files(out)
    cols = make_log(0)
    older = write_csv(d / "older.csv", cols, slice(0, 40))
    (d / "notalog.csv").write_text("this,is\nnot,a log\n")
    other = d / "other.csv"
    other.write_text("user_id,item_id,timestamp,city\na,b,99999,x\n")
    cases = [(older, "older than the last event"), (str(d / "notalog.csv"), "notalog.csv"),
             (str(other), "column 'user_id'"), (str(d / "missing.csv"), "no such file")]
    for path, needle in cases:
        r = _cli("update", out, "--input", path)
        assert r.returncode == 2, (path, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        _untouched(out, before)
    r = _cli("update", out, "--input", older)
    assert "older.csv: line 2: " in r.stderr and "column 'timestamp'" in r.stderr


def test_changed_or_demo_sources_refuse(logs, tmp_path):
    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, quiet=True)
    with open(logs["old"], "a") as f:
        f.write("999,1,1,0\n")
    with pytest.raises(InputError, match="changed since"):
        simmine.update(out, logs["d1"])
    demo = str(tmp_path / "demo-out")
    simmine.build(out=demo, k=3, quiet=True)
    with pytest.raises(InputError, match="demo"):
        simmine.update(demo, logs["d1"])
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).random((simmine.open(out).manifest["n_anchors"], 4)))
    simmine.build(logs["old"], out=str(tmp_path / "emb"), metric="embedding", embeddings=str(emb), k=3, quiet=True)
    with pytest.raises(InputError, match="--embeddings"):
        simmine.update(str(tmp_path / "emb"), logs["d1"], rebuild=True)


# ---------------------------------------------------------------------------------------------- kills, readers
@pytest.mark.parametrize("kill", [{"SIMMINE_KILL_AFTER_STAGE": "update"}, {"SIMMINE_KILL_IN_PUBLISH": "1"}])
def test_kill_during_update_then_rerun(logs, kill):
    d = logs["dir"]
    out = str(d / "up")
    flags = ["--anchors", "prefix", "--k", "3", "--bucket-by", "city"]
    assert _cli("build", "--input", logs["old"], "--out", out, "--quiet", *flags).returncode == 0
    before = data_files(out)
    assert _cli("update", out, "--input", logs["d1"], "--quiet", env=kill).returncode == -9
    if "SIMMINE_KILL_AFTER_STAGE" in kill:
        assert data_files(out) == before  # the old build is still there, whole
    else:
        assert not os.path.exists(out) and os.path.isdir(out + ".replaced")
    assert _cli("update", out, "--input", logs["d1"], "--quiet").returncode == 0
    assert _cli("build", "--input", logs["old+d1"], "--out", str(d / "re"), "--quiet", *flags).returncode == 0
    assert_same_files(out, d / "re")
    assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".replaced")


def test_reader_of_the_old_build_keeps_reading_it(logs):
    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, anchors="prefix", quiet=True)
    reader = simmine.open(out)
    n_old = len(reader)
    want = [tuple(map(np.copy, reader.weak(i))) for i in range(n_old)]
    simmine.update(out, logs["d1"])
    got = [reader.weak(i) for i in range(n_old)]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(want, got))
    assert len(simmine.open(out)) > n_old


def test_cli_update_prints_the_summary(logs):
    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, quiet=True)
    r = _cli("update", out, "--input", logs["d1"], "--out", str(d / "new"))
    assert r.returncode == 0, r.stderr
    assert "d1.csv" in r.stdout
    shutil.rmtree(d / "new")


@pytest.mark.parametrize("anchors", ["user", "prefix"])
def test_update_on_a_backend_without_offers(logs, anchors):
    """The reference backend lists every positive score of a changed row and filters it: the same files."""
    d = logs["dir"]
    kw = dict(metric="jaccard", anchors=anchors, k=3, bucket_by="city", backend="python", quiet=True)
    simmine.build(logs["old"], out=str(d / "up"), **kw)
    simmine.update(str(d / "up"), logs["d1"])
    simmine.build(logs["old+d1"], out=str(d / "re"), **kw)
    assert_same_files(d / "up", d / "re")
    assert simmine.open(str(d / "up")).manifest["backend"] == "python"


@pytest.mark.parametrize("options", [{"split": "none", "max_len": 3}, {"compare": "full", "max_len": 4},
                                     {"anchors": "prefix", "same_user": "keep", "max_len": 3},
                                     {"anchors": "prefix", "compare": "full", "split": "none"}])
def test_update_other_splits_windows_and_same_user(logs, options):
    d = logs["dir"]
    kw = dict(metric="jaccard", k=3, bucket_by="city", quiet=True, **options)
    simmine.build(logs["old"], out=str(d / "up"), **kw)
    simmine.update(str(d / "up"), logs["d1"])
    simmine.build(logs["old+d1"], out=str(d / "re"), **kw)
    assert_same_files(d / "up", d / "re")


def test_update_of_a_build_made_on_a_backend_missing_here(logs):
    """A build made on the GPU updates on this machine's backend: every backend writes the same files."""
    from simmine.backends import available_backends

    d = logs["dir"]
    out = str(d / "up")
    simmine.build(logs["old"], out=out, k=3, quiet=True)
    path = os.path.join(out, "manifest.json")
    manifest = json.load(open(path))
    manifest["params"]["backend"] = "cuda"
    json.dump(manifest, open(path, "w"))
    if "cuda" in available_backends():
        pytest.skip("this machine runs the CUDA backend")
    simmine.update(out, logs["d1"])
    simmine.build(logs["old+d1"], out=str(d / "re"), k=3, quiet=True)
    assert_same_files(out, d / "re")


@pytest.mark.parametrize("anchors", ["user", "prefix"])
def test_update_with_a_bucket_the_build_never_had(logs, anchors):
    """New events in a new city: a bucket of changed anchors only, and every later bucket's code shifts."""
    d = logs["dir"]
    cols = [np.array(c) for c in zip(*[(u, (u * 7) % 40, 20_000 + u, -1) for u in range(0, 160, 3)] +
                                     [(u, (u * 11) % 40, 20_500 + u, -1) for u in range(0, 160, 3)] +
                                     [(u, (u * 13) % 40, 21_000 + u, -1) for u in range(0, 160, 3)])]
    order = np.argsort(cols[2], kind="stable")
    write_csv(d / "newcity.csv", [c[order] for c in cols], slice(None))
    with open(logs["all"]) as f, open(d / "all_newcity.csv", "w") as g:
        g.write(f.read())
        g.write("".join(open(d / "newcity.csv").read().splitlines(True)[1:]))
    kw = dict(metric="jaccard", anchors=anchors, k=3, bucket_by="city", quiet=True)
    simmine.build(logs["all"], out=str(d / "up"), **kw)
    simmine.update(str(d / "up"), str(d / "newcity.csv"))
    simmine.build(str(d / "all_newcity.csv"), out=str(d / "re"), **kw)
    assert_same_files(d / "up", d / "re")
    assert "-1" in simmine.open(str(d / "up")).sequences().column("bucket").to_pylist()
