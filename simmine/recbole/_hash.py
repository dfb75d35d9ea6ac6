"""Counter-based uniforms: a draw depends only on (seed, epoch, stream, key), never on batch composition."""
from __future__ import annotations

import numpy as np

_M = (1 << 64) - 1


def uniform(seed: int, epoch: int, stream: int, keys) -> np.ndarray:
    """Uniform [0, 1) floats from splitmix64 of (seed, epoch, stream, key), vectorised over keys.

    >>> uniform(0, 0, 1, np.arange(3)).shape
    (3,)
    """
    x = np.asarray(keys, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= np.uint64((int(seed) * 0x632BE59BD9B4E019 + int(epoch) * 0x85157AF5 + int(stream) * 0xD6E8FEB86659FD93
                    + 0x5851F42D4C957F2D) & _M)
    x += np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
