"""The build configuration (docs/cli.md): one field per flag and keyword, validated once, recorded in the
manifest, and enough to rebuild the same thing (--like, --config, the recorded command)."""
import ast
import inspect
import json
import os
import shlex
from dataclasses import fields

import pytest

import simmine
from simmine.cli import main, make_parser
from simmine.config import BuildConfig
from simmine.errors import InputError


def data_files(out):
    m = json.loads((out / "manifest.json").read_text())
    return {name: info["sha256"] for name, info in m["files"].items()}


def test_build_keywords_are_the_config_fields():
    sig = inspect.signature(simmine.build)
    got = {name: p.default for name, p in sig.parameters.items()}
    want = {f.name: f.default for f in fields(BuildConfig)}
    assert got == want


def test_every_build_flag_is_one_field():
    parser = make_parser()
    build = parser._subparsers._group_actions[0].choices["build"]
    dests = {a.dest for a in build._actions if a.dest != "help"}
    assert dests == {f.name for f in fields(BuildConfig)} | {"like", "config"}


def test_validation_once_with_the_flag_names():
    with pytest.raises(InputError, match="give exactly one of --alpha, --k, --min-sim"):
        BuildConfig()
    with pytest.raises(InputError, match="--max-len must be a positive integer, got 0"):
        BuildConfig(k=3, max_len=0)
    with pytest.raises(InputError, match="unknown --split 'lol'"):
        BuildConfig(k=3, split="lol")
    with pytest.raises(InputError, match="--engine ray runs --method exact"):
        BuildConfig(k=3, engine="ray", method="minhash")
    c = BuildConfig(k=3, metric="jac", bucket_by="city, day")
    assert c.metric == "jaccard" and c.bucket_by == ("city", "day") and c.shard_rows == 1_000_000
    with pytest.raises(Exception):
        c.k = 4  # frozen


def test_params_are_every_recorded_field():
    c = BuildConfig(k=3, method="minhash")
    p = c.params({"backend": "cpp"})
    recorded = {f.name for f in fields(BuildConfig) if f.metadata["record"]}
    assert set(p) == recorded | {"selection"}
    assert p["num_perm"] == 128 and p["index"] is None and p["backend"] == "cpp" and p["selection"] == "k"
    assert "out" not in p and "threads" not in p  # change no output byte


def test_recorded_command_and_like_rebuild_the_same_bytes(tmp_path):
    out = tmp_path / "a"
    assert main(["build", "--k", "4", "--metric", "tfidf", "--max-len", "20", "--quiet", "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    words = shlex.split(m["command"])
    assert words[:2] == ["simmine", "build"]
    again = tmp_path / "b"
    assert main(words[1:] + ["--out", str(again), "--quiet"]) == 0
    assert data_files(again) == data_files(out)
    like = tmp_path / "c"
    assert main(["build", "--like", str(out), "--out", str(like)]) == 0
    assert data_files(like) == data_files(out)
    assert json.loads((like / "manifest.json").read_text())["config"] == {**m["config"], "out": str(like)}
    other = tmp_path / "d"  # a flag given overrides the recorded one
    assert main(["build", "--like", str(out), "--out", str(other), "--k", "2"]) == 0
    assert json.loads((other / "manifest.json").read_text())["params"]["k"] == 2


def test_config_files_toml_and_json(tmp_path):
    toml = tmp_path / "build.toml"
    toml.write_text('[build]\nk = 3\nmetric = "ngram"\nngram-n = 3\nbucket_by = ["city"]\nquiet = true\n')
    out = tmp_path / "t"
    assert main(["build", "--config", str(toml), "--out", str(out)]) == 0
    p = json.loads((out / "manifest.json").read_text())["params"]
    assert (p["k"], p["metric"], p["ngram_n"], p["bucket_by"]) == (3, "ngram", 3, ["city"])
    js = tmp_path / "build.json"
    js.write_text(json.dumps({"k": 3, "metric": "ngram", "ngram_n": 3, "bucket_by": "city", "quiet": True}))
    out2 = tmp_path / "j"
    assert main(["build", "--config", str(js), "--out", str(out2)]) == 0
    assert data_files(out2) == data_files(out)


@pytest.mark.parametrize("text, message", [
    ('k = 3\nkk = 4\n', "unknown build option 'kk'"),
    ('k = 3\nmax_len = 0\n', "--max-len must be a positive integer"),
    ('k = [', "not a readable configuration"),
])
def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["build", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "o")


def test_like_needs_a_build(tmp_path, capsys):
    assert main(["build", "--like", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a simmine output" in capsys.readouterr().err


def test_resume_fingerprint_ignores_what_changes_no_byte(tmp_path):
    from simmine.backends import get_backend
    from simmine.run import Run

    a = Run(BuildConfig(k=3, threads=1, quiet=True, out="x"), get_backend("python"), None)
    b = Run(BuildConfig(k=3, threads=2, quiet=False, out="y"), get_backend("python"), None)
    c = Run(BuildConfig(k=4), get_backend("python"), None)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


BUILD_PATH = ("api.py", "pipeline.py", "run.py", "stream/__init__.py", "stream/prepare.py", "stream/mine.py",
              "config.py")


@pytest.mark.parametrize("name", BUILD_PATH)
def test_build_path_functions_stay_small(name):
    """docs/architecture.md: no function over 60 lines, none with more than 6 parameters (simmine.build's
    keywords are the configuration's fields)."""
    path = os.path.join(os.path.dirname(simmine.__file__), name)
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.FunctionDef):
            lines = node.end_lineno - node.lineno + 1
            params = len(node.args.args) + len(node.args.kwonlyargs) - (node.args.args[:1] and
                                                                        node.args.args[0].arg == "self")
            assert lines <= 60, f"{name}: {node.name} has {lines} lines"
            assert params <= 6 or node.name == "build", f"{name}: {node.name} takes {params} parameters"
