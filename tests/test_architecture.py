"""The package's layering (docs/architecture.md): no import circles, imports only go down, no module imports
another's private name, and modules and functions stay small enough to read."""
import ast
import os

import pytest

import simmine

ROOT = os.path.dirname(simmine.__file__)

# Layers, bottom up (docs/architecture.md). A module may import its own layer's modules and lower ones.
LAYERS = [
    ("ground", ["simmine._native", "simmine._core", "simmine.csr", "simmine.errors", "simmine.hashing",
                "simmine.version", "simmine.progress", "simmine.demo", "simmine.synth"]),
    ("data", ["simmine.readers", "simmine.anchors", "simmine.io", "simmine.positives", "simmine.vectors"]),
    ("scoring", ["simmine.tiles", "simmine.metrics", "simmine.select"]),
    ("backends", ["simmine.backends"]),
    ("engines", ["simmine.engines", "simmine.approx"]),
    ("configuration", ["simmine.config"]),
    ("pipelines", ["simmine.run", "simmine.pipeline", "simmine.stream", "simmine.graphs", "simmine.report",
                   "simmine.incremental"]),
    ("front", ["simmine.api", "simmine.cli", "simmine.torch", "simmine.recbole", "simmine"]),
]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict:
    out = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = "simmine" + path[len(ROOT):-3].replace(os.sep, ".")
                out[module[:-9] if module.endswith(".__init__") else module] = path
    return out


MODULES = _modules()


def _imports(module: str, path: str):
    """(imported module, imported name or None) of every simmine import in ``module``, wherever it stands."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "simmine":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in MODULES or full == "simmine._core":
                    yield full, None
                else:
                    yield target, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "simmine":
                    yield alias.name, None


def _edges() -> dict:
    return {m: {t for t, _ in _imports(m, p) if t != m} for m, p in MODULES.items()}


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer of docs/architecture.md"
    return rank


def test_no_import_circles():
    edges, state, stack = _edges(), {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if t not in MODULES:
                continue
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_imports_only_go_down():
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, targets in _edges().items() for t in targets
              if m != "simmine" and not t.startswith(m + ".") and _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_module_imports_a_private_name():
    private = [f"{m}: {name} from {target}" for m, p in MODULES.items() for target, name in _imports(m, p)
               if name and name.startswith("_") and name != "__version__"]
    assert not private, "\n".join(private)


def test_only_the_native_module_imports_the_extension():
    importers = sorted(m for m, targets in _edges().items() if "simmine._core" in targets)
    assert importers == ["simmine._native"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    source = open(MODULES[module], encoding="utf-8").read()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module}: {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            assert lines <= MAX_FUNCTION_LINES, f"{module}: {node.name} has {lines} lines"


def test_the_walk_sees_a_circle(tmp_path, monkeypatch):
    """The circle check itself: two modules importing each other are reported."""
    a, b = tmp_path / "fake_a.py", tmp_path / "fake_b.py"
    a.write_text("from .fake_b import x\n")
    b.write_text("from .fake_a import y\n")
    monkeypatch.setitem(MODULES, "simmine.fake_a", str(a))
    monkeypatch.setitem(MODULES, "simmine.fake_b", str(b))
    edges = _edges()
    assert "simmine.fake_b" in edges["simmine.fake_a"] and "simmine.fake_a" in edges["simmine.fake_b"]
    with pytest.raises(pytest.fail.Exception, match="import circle"):
        test_no_import_circles()
