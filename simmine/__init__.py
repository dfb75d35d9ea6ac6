"""simmine: exact and approximate all-pairs similarity mining of positives for contrastive sequential
recommendation (strong positives: same target; weak positives: most similar histories).

>>> import simmine
>>> out = simmine.build(metric="jaccard", alpha=0.05, quiet=True)   # doctest: +SKIP
>>> pos = simmine.open(out)                                         # doctest: +SKIP
>>> neighbors, scores = pos.weak(0)                                 # doctest: +SKIP
"""
from .version import __version__  # noqa: E402

from .api import build, update  # noqa: E402
from .config import BuildConfig  # noqa: E402
from .backends import available_backends  # noqa: E402
from .errors import InputError, SimmineError  # noqa: E402
from .positives import Positives  # noqa: E402
from .graphs import ItemGraph, ItemsConfig, items, open_items  # noqa: E402
from .positives import open_positives as open  # noqa: E402,A001
from .metrics import METRICS  # noqa: E402

__all__ = ["build", "update", "BuildConfig", "items", "ItemsConfig", "open_items", "ItemGraph", "open", "Positives",
           "available_backends", "METRICS", "InputError", "SimmineError",
           "__version__"]


def batch_similarity(a, b, metric: str = "jaccard", **kwargs):
    """B×B similarity of two batches of padded histories (torch tensors); see simmine.torch.batch_similarity."""
    from .torch.similarity import batch_similarity as _impl

    return _impl(a, b, metric, **kwargs)


__all__.append("batch_similarity")
