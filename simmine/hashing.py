"""The hash family shared by MinHash signatures and bit sketches on every backend."""
from __future__ import annotations

import numpy as np


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of x + the golden-ratio increment, elementwise on uint64."""
    x = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def perm_seeds(num_perm: int, seed: int) -> np.ndarray:
    """Per-permutation seeds, the same in every backend."""
    base = np.uint64((int(seed) * 0x100000001B3) & (2**64 - 1))
    return splitmix64(base + np.arange(num_perm, dtype=np.uint64))


def unit_uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """Counter-based uniform [0, 1) floats: the top 53 bits of splitmix64(key · φ ⊕ salt), vectorised over
    uint64 keys (a draw depends on its key and salt only, never on the batch it is drawn in)."""
    x = np.asarray(keys, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= np.uint64(int(salt) & (2**64 - 1))
    return (splitmix64(x) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
