"""Progress bars on a terminal (stderr is a TTY), silent otherwise or with quiet=True."""
from __future__ import annotations

import sys


def make_progress(quiet: bool):
    """A factory ``progress(label, total) -> tick(n, done=False)``, or None when bars are off."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    def progress(label: str, total: int):
        bar = tqdm(total=total, desc=label, unit="anchor", leave=False, file=sys.stderr, dynamic_ncols=True)

        def tick(n: int, done: bool = False):
            bar.update(n)
            if done:
                bar.close()

        return tick

    return progress
