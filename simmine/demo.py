"""The built-in demo log: synthetic, deterministic, realistic enough to mine (Zipf items, taste groups,
log-normal lengths, a city column), small enough to build in seconds."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

DEMO_USERS = 3000
DEMO_ITEMS = 2000
DEMO_CITIES = 4


def demo_table(n_users: int = DEMO_USERS, n_items: int = DEMO_ITEMS, seed: int = 0) -> pa.Table:
    """user_id, item_id, timestamp, city: each user draws mostly from one of 20 taste groups."""
    rng = np.random.default_rng(seed)
    groups = 20
    lengths = np.clip(np.round(rng.lognormal(mean=2.6, sigma=0.5, size=n_users)), 4, 200).astype(np.int64)
    taste = rng.integers(0, groups, size=n_users)
    popularity = 1.0 / np.arange(1, n_items + 1)  # Zipf s = 1 over a random item order
    item_order = rng.permutation(n_items)
    item_group = item_order % groups
    user = np.repeat(np.arange(n_users), lengths)
    total = int(lengths.sum())
    own = rng.random(total) < 0.7
    glob_p = popularity / popularity.sum()
    items = item_order[rng.choice(n_items, size=total, p=glob_p)]
    for g in range(groups):  # taste draws: Zipf inside the user's group
        in_group = np.flatnonzero(item_group[item_order] == g)
        p = popularity[in_group] / popularity[in_group].sum()
        rows = np.flatnonzero(own & (taste[user] == g))
        items[rows] = item_order[in_group[rng.choice(len(in_group), size=len(rows), p=p)]]
    start = rng.integers(1_600_000_000, 1_650_000_000, size=n_users)
    step = rng.integers(60, 86_400, size=total)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ts = np.repeat(start, lengths) + np.cumsum(step) - np.repeat(np.cumsum(step)[first] - step[first], lengths)
    city = np.array([f"city-{c}" for c in range(DEMO_CITIES)])[rng.integers(0, DEMO_CITIES, size=n_users)]
    shuffle = np.argsort(ts, kind="stable")  # a log arrives in time order, users interleaved
    return pa.table({
        "user_id": pa.array(user[shuffle] + 1),
        "item_id": pa.array(items[shuffle] + 1),
        "timestamp": pa.array(ts[shuffle]),
        "city": pa.array(np.repeat(city, lengths)[shuffle]),
    })
