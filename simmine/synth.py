"""Synthetic interaction logs at any scale, streamed to Parquet (docs/cli.md ``simmine synth``).

Item popularity is Zipf with exponent s over a random permutation of item ids; lengths are log-normal with
the requested mean (at least 3 interactions, so every user can give a leave-one-out anchor);
timestamps increase within a user. Optional ``city`` and ``day`` columns are drawn per user (Zipf over
cities, uniform over days), so ``--bucket-by city,day`` gives realistic skewed buckets. Users are generated
chunk by chunk: memory is bounded by ``chunk_users`` (``--chunk-users``), not by N. Deterministic for a given
seed and chunk size (each chunk draws from its own seeded generator).
"""
from __future__ import annotations

import os
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError


def _zipf_cdf(n_items: int, s: float) -> np.ndarray:
    w = np.arange(1, n_items + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def synth(out: str, users: int, items: int = 50_000, mean_len: float = 40.0, zipf: float = 1.0,
          sigma: float = 0.6, cities: int = 0, days: int = 0, seed: int = 0, max_len: int = 1000,
          chunk_users: int = 200_000) -> dict:
    """Writes a log with columns user_id, item_id, timestamp[, city][, day]; returns its statistics."""
    if users < 1 or items < 1:
        raise InputError("synth needs --users >= 1 and --items >= 1")
    if mean_len < 3:
        raise InputError(f"--mean-len must be at least 3, got {mean_len}")
    if chunk_users < 1:
        raise InputError(f"--chunk-users must be positive, got {chunk_users}")
    if zipf < 0 or cities < 0 or days < 0:
        raise InputError("--zipf, --cities and --days must not be negative")
    rng = np.random.default_rng(seed)
    item_ids = rng.permutation(items).astype(np.int64) + 1   # popularity rank r → item id
    cdf = _zipf_cdf(items, zipf)
    city_cdf = _zipf_cdf(cities, 1.0) if cities else None
    mu = np.log(mean_len) - sigma ** 2 / 2
    tmp = out + ".tmp"
    rows = 0
    schema = [("user_id", pa.int64()), ("item_id", pa.int64()), ("timestamp", pa.int64())]
    if cities:
        schema.append(("city", pa.string()))
    if days:
        schema.append(("day", pa.int32()))
    city_names = np.array([f"city-{c:04d}" for c in range(cities)]) if cities else None
    try:
        with pq.ParquetWriter(tmp, pa.schema(schema), compression="zstd") as writer:
            for start in range(0, users, chunk_users):
                n = min(chunk_users, users - start)
                crng = np.random.default_rng([seed, start])  # each chunk reproducible on its own
                lengths = np.clip(np.round(crng.lognormal(mu, sigma, size=n)), 3, max_len).astype(np.int64)
                total = int(lengths.sum())
                ranks = np.searchsorted(cdf, crng.random(total), side="right").clip(max=items - 1)
                user = np.repeat(np.arange(start, start + n, dtype=np.int64) + 1, lengths)
                t0 = np.repeat(crng.integers(1_600_000_000, 1_700_000_000, size=n), lengths)
                first = np.repeat(np.cumsum(lengths) - lengths, lengths)
                ts = t0 + (np.arange(total) - first) * 60
                cols = {"user_id": user, "item_id": item_ids[ranks], "timestamp": ts}
                if cities:
                    c = np.searchsorted(city_cdf, crng.random(n), side="right").clip(max=cities - 1)
                    cols["city"] = pa.array(city_names[np.repeat(c, lengths)])
                if days:
                    cols["day"] = np.repeat(crng.integers(0, days, size=n), lengths).astype(np.int32)
                writer.write_table(pa.table(cols))
                rows += total
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"path": out, "users": users, "items": items, "rows": rows, "mean_len": rows / users, "zipf": zipf}
