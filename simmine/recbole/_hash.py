"""Counter-based uniforms: a draw depends only on (seed, epoch, stream, key), never on batch composition."""
from __future__ import annotations

import numpy as np

from ..hashing import unit_uniform


def uniform(seed: int, epoch: int, stream: int, keys) -> np.ndarray:
    """Uniform [0, 1) floats from splitmix64 of (seed, epoch, stream, key), vectorised over keys (this
    package's salt, so its draws are independent of the torch sampler's).

    >>> uniform(0, 0, 1, np.arange(3)).shape
    (3,)
    """
    salt = int(seed) * 0x632BE59BD9B4E019 + int(epoch) * 0x85157AF5 + int(stream) * 0xD6E8FEB86659FD93 \
        + 0x5851F42D4C957F2D
    return unit_uniform(np.asarray(keys, dtype=np.int64).astype(np.uint64), salt)
