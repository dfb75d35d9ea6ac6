"""Backends: interchangeable modules with one interface.

Each has ``name``, ``available()``, ``select(tile, rows, k_row, min_score) -> (counts, cols, scores)``,
``pairs(tile, rows, min_score) -> (rows, cols, scores)`` (each unordered pair j > i once) and
``histogram(tile, rows, prefix) -> int64[65536]``, ``score_pairs`` and ``minhash``. ``auto`` takes the
fastest available: cuda (a usable GPU with CuPy), cpp, numba, python. The ``embedding`` metric always
runs on ``blas`` (NumPy GEMM), which scores only dense vectors. A backend asked for by name that cannot
run here raises; there is no silent fallback.
"""
from __future__ import annotations

import os
from types import ModuleType

from ..errors import BackendUnavailable, InputError

BACKENDS = ("cuda", "cpp", "numba", "python")  # fastest first


def _module(name: str) -> ModuleType:
    if name == "cpp":
        from . import cpp as mod
    elif name == "numba":
        from . import numba_ as mod
    elif name == "python":
        from . import reference as mod
    elif name == "cuda":
        from . import cuda as mod
    elif name == "blas":  # the embedding metric's own backend, never picked by auto
        from . import dense as mod
    else:
        raise InputError(f"unknown backend '{name}' (choose from auto, {', '.join(BACKENDS)})")
    return mod


def _usable(name: str) -> bool:
    try:
        return bool(_module(name).available())
    except Exception:
        return False


def available_backends() -> list:
    """Names of the backends that can run on this machine, fastest first."""
    return [name for name in BACKENDS if _usable(name)]


def get_backend(name: str | None = None) -> ModuleType:
    """The backend module for ``name`` (default: $SIMMINE_BACKEND, else ``auto``)."""
    name = (name or os.environ.get("SIMMINE_BACKEND") or "auto").strip().lower()
    if name == "auto":  # the first that runs: slower ones are not even imported (Numba takes a quarter second)
        return _module(next(name for name in BACKENDS if _usable(name)))
    mod = _module(name)
    if not mod.available():
        raise BackendUnavailable(f"backend '{name}' is not available here "
                                 f"(available: {', '.join(available_backends())})")
    return mod


def set_num_threads(n: int) -> None:
    """Threads for the native backends (OpenMP, and Numba once a build has picked it: importing Numba takes a
    fifth of a second, so a backend not in use is not imported for this)."""
    import sys

    for name in ("cpp", "numba"):  # the GPU backend has no CPU thread pool
        if name == "numba" and f"{__name__}.numba_" not in sys.modules:
            continue
        mod = _module(name)
        if mod.available():
            mod.set_num_threads(n)
