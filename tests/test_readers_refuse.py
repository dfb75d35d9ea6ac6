"""Every entry point that reads a file refuses what is not its kind with one line (exit 2 on the command
line, InputError in Python), and leaves nothing behind."""
import json

import numpy as np
import pytest

import simmine
from simmine.cli import main


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    build = simmine.build(out=str(root / "build"), k=3, quiet=True)
    items = simmine.items(out=str(root / "items"), k=3, metric="jaccard", quiet=True)
    return build, items


def test_open_refuses_an_items_output(outputs):
    _, items = outputs
    with pytest.raises(simmine.InputError, match="made by simmine items, not by simmine build"):
        simmine.open(items)


def test_open_items_refuses_a_build(outputs):
    build, _ = outputs
    with pytest.raises(simmine.InputError, match="made by simmine build, not by simmine items"):
        simmine.open_items(build)


@pytest.mark.parametrize("command", ["build", "items"])
def test_like_refuses_the_other_kind(outputs, tmp_path, command, capsys):
    build, items = outputs
    other = items if command == "build" else build
    assert main([command, "--like", other, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not by simmine " + command in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("manifest", ["{", "[]", '{"a": 1}', '{"format_version": 2, "files": {}}',
                                      '{"kind": "graph", "format_version": 1, "files": {}}'])
@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_a_broken_manifest_is_one_line(tmp_path, manifest, command, capsys):
    (tmp_path / "manifest.json").write_text(manifest)
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0]
    with pytest.raises(simmine.InputError):
        simmine.open(str(tmp_path))


@pytest.mark.parametrize("row", [0, 5])
@pytest.mark.parametrize("padded", [False, True])
def test_item_embeddings_with_a_nan_anywhere_are_bad_input(outputs, tmp_path, row, padded, capsys):
    _, items = outputs
    n = simmine.open_items(items).n_items + (1 if padded else 0)
    v = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
    v[row, 1] = np.nan
    np.save(tmp_path / "v.npy", v)
    assert main(["items", "--embeddings", str(tmp_path / "v.npy"), "--k", "3", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"v.npy: row {row} has a NaN or infinite value" in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_build_embeddings_with_an_infinity_are_bad_input(tmp_path, capsys):
    n = len(simmine.open(simmine.build(out=str(tmp_path / "b"), k=2, quiet=True)))
    v = np.ones((n, 3))
    v[2, 0] = np.inf
    np.save(tmp_path / "e.npy", v)
    assert main(["build", "--metric", "embedding", "--embeddings", str(tmp_path / "e.npy"), "--k", "2", "--out",
                 str(tmp_path / "o")]) == 2
    assert "e.npy: row 2 has a NaN or infinite value" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_config_file_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps([1, 2]))
    assert main(["build", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
