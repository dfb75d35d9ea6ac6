"""What RecBole 1.2.1 needs of its environment, checked on import (numpy<2, RecBole and torch present), and
the one shim for torch >= 2.6: ``trusted_torch_load`` (docs/recbole.md, "Install and compatibility")."""
from __future__ import annotations

import contextlib
import functools

import numpy as _np

_FIX = "pip install 'simmine[recbole]' in an environment with numpy<2"

if int(_np.__version__.split(".")[0]) >= 2:
    raise ImportError(f"simmine.recbole needs numpy<2 (RecBole 1.2.1 uses np.float_); found numpy "
                      f"{_np.__version__}: {_FIX}")
try:
    import recbole  # noqa: F401
    import torch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"simmine.recbole needs RecBole and torch ({exc}): {_FIX}") from None


@contextlib.contextmanager
def trusted_torch_load():
    """Within the block, ``torch.load`` defaults to ``weights_only=False`` (torch < 2.6's default), which
    RecBole's checkpoints need; restored on exit.

    >>> with trusted_torch_load():                 # doctest: +SKIP
    ...     state = torch.load("saved/SASRec.pth")
    """
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original
