"""The public build: a BuildConfig from the keywords, then the pipeline (pipeline.py, or stream.py for
--memory-gb). No kernels and no validation here: the configuration validates itself."""
from __future__ import annotations

from typing import Optional

from .config import BuildConfig


def build(input: Optional[str] = None, out: str = "simmine-out", metric: str = "jaccard",
          alpha: Optional[float] = None, alpha_scope: str = "anchor", k: Optional[int] = None,
          min_sim: Optional[float] = None, max_per_anchor: Optional[int] = None, method: str = "exact",
          backend: Optional[str] = None, engine: str = "local", bucket_by=None, split: str = "loo",
          max_len: int = 50, compare: str = "history", ngram_n: int = 2, format: str = "auto",
          user_col: str = "user_id", item_col: str = "item_id", time_col: Optional[str] = None,
          max_output_gb: float = 8.0, threads: Optional[int] = None, quiet: bool = False,
          num_perm: int = 128, bands: Optional[int] = None, rows: Optional[int] = None,
          recall_sample: int = 500, seed: int = 0, embeddings: Optional[str] = None, index: str = "flat",
          dim: int = 256, candidates: Optional[int] = None, shard_rows: Optional[int] = None, resume: bool = False,
          ray_address: Optional[str] = None, memory_gb: Optional[float] = None, anchors: str = "user",
          same_user: Optional[str] = None) -> str:
    """Mines strong and weak positives and writes them to ``out``; returns ``out``.

    Keyword names are the CLI flags with underscores (docs/cli.md); each is one field of
    ``simmine.BuildConfig``. With ``input=None`` the built-in demo log is used. Raises InputError (the CLI's
    exit code 2) on bad input or flags, before anything is written.

    >>> import simmine
    >>> path = simmine.build(metric="jaccard", alpha=0.05, out="simmine-out", quiet=True)  # doctest: +SKIP
    >>> simmine.open(path).weak(0)                                                        # doctest: +SKIP
    """
    kw = dict(locals())
    return run_build(BuildConfig(**kw))


def run_build(config: BuildConfig) -> str:
    """Runs a build of a validated configuration; returns its output directory."""
    from .backends import get_backend, set_num_threads
    from .pipeline import build_in_memory
    from .run import Run, check_out
    from .progress import make_progress

    if config.method == "faiss":
        from .approx.faiss_ import faiss_module

        faiss_module()  # installed, or a one-line error before anything is read
    backend = get_backend(config.backend)
    if backend.name == "blas" and config.metric != "embedding":
        from .errors import InputError

        raise InputError("--backend blas scores only --metric embedding")
    if config.metric == "embedding":
        backend = get_backend("blas")
    if config.threads:
        set_num_threads(config.threads)
    check_out(config.out)
    run = Run(config, backend, make_progress(config.quiet))
    if config.streamed:
        from .stream import build_streamed

        return build_streamed(run)
    return build_in_memory(run)


def update(out: str, input: str, new_out: Optional[str] = None, rebuild: bool = False, quiet: bool = False,
           threads: Optional[int] = None) -> str:
    """Folds ``input`` (interactions after those ``out`` was built from, same format and columns) into the build
    ``out``; returns the output directory (``new_out``, default ``out`` itself, replaced atomically).

    Every data file equals a build of the logs concatenated with the same configuration (docs/update.md).
    Builds whose mode cannot be updated below the cost of a rebuild (TF-IDF, approximate methods, global
    alpha) raise InputError unless ``rebuild=True``, which rebuilds them from their logs and ``input``.
    """
    from .incremental import run_update

    return run_update(out, input, new_out, rebuild, quiet, threads)
