"""Run sweep chunks on a ``dask.distributed`` cluster.

Chunks are submitted as tasks (a ``ChunkTask`` of config dicts in, a DataFrame of
rows out; training and evaluation run on the worker) and gathered with
``as_completed``, so the client writes each part as soon as it arrives. A task
that raises is retried (``retries``, default 2); a worker that dies mid-chunk has
its task rescheduled on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times), so a chunk is retried, not lost.

Needs the ``dask`` extra (``pip install 'clipsim[dask]'``); dask is imported only
when this backend is used. Workers need clipsim installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clipsim.sweep.engine import ChunkTask

__all__ = ["DaskBackend", "require_distributed"]


def require_distributed() -> Any:
    """Import ``dask.distributed``, or fail with the install hint.

    Returns:
        The ``dask.distributed`` module.

    Raises:
        ImportError: naming ``pip install 'clipsim[dask]'``.
    """
    try:
        import dask.distributed as distributed
    except ImportError as err:
        raise ImportError("the dask backend needs dask.distributed; install it with "
                          "pip install 'clipsim[dask]'") from err
    return distributed


def _on_worker(fn: Callable[[ChunkTask], pd.DataFrame], task: ChunkTask,
               cache: bool | str) -> pd.DataFrame:
    """Worker-side wrapper: enable the compile cache, run (precision is the chunk's own)."""
    if cache:
        from clipsim.sweep.cache import enable_compilation_cache

        try:
            enable_compilation_cache(None if cache is True else cache)
        except OSError:
            pass  # an unwritable cache folder only costs compile time
    return fn(task)


class DaskBackend:
    """Send chunks to a dask cluster.

    Args:
        scheduler: scheduler address (``tcp://host:8786``). None: a
            ``LocalCluster(n_workers, threads_per_worker, processes=True)`` is started
            for the run and closed after it.
        client: an existing ``dask.distributed.Client`` to use (not closed).
        n_workers: workers of the local cluster.
        threads_per_worker: threads per local worker.
        retries: how often a task that raised is retried.
        cache: compilation cache on the workers: True for their default folder
            (``CLIPSIM_CACHE_DIR`` or ``~/.cache/clipsim/jax`` on the worker), a path,
            False, or None (default) for True when this process has a cache enabled
            (as ``clipsim sweep`` does unless ``--no-cache``).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, client: Any = None, n_workers: int = 2,
                 threads_per_worker: int = 1, retries: int = 2,
                 cache: bool | str | Path | None = None) -> None:
        if scheduler is not None and client is not None:
            raise ValueError("give a scheduler address or a client, not both")
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.retries = retries
        self.cache = str(cache) if isinstance(cache, Path) else cache
        self.client = client
        self._owns_client = client is None
        self._cluster: Any = None
        self.parallelism = 1

    def __enter__(self) -> DaskBackend:
        distributed = require_distributed()
        if self._owns_client:
            if self.scheduler is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=self.n_workers, threads_per_worker=self.threads_per_worker,
                    processes=True, dashboard_address=None)
                self.client = distributed.Client(self._cluster)
            else:
                self.client = distributed.Client(self.scheduler)
        self.parallelism = max(1, sum(self.client.nthreads().values()))
        return self

    def __exit__(self, *exc) -> None:
        if self._owns_client and self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def map_chunks(self, fn: Callable[[ChunkTask], pd.DataFrame], tasks: Sequence[ChunkTask]
                   ) -> Iterator[tuple[ChunkTask, pd.DataFrame]]:
        """Submit every chunk to the cluster.

        Args:
            fn: computes one chunk's rows; pickled to the workers.
            tasks: the chunks.

        Yields:
            ``(task, rows)`` as each chunk completes (failed attempts are retried).
        """
        if self.client is None:
            raise RuntimeError("DaskBackend.map_chunks must run inside `with backend:`")
        distributed = require_distributed()
        import jax

        cache = self.cache
        if cache is None:
            cache = bool(jax.config.jax_compilation_cache_dir)
        by_key: dict[str, ChunkTask] = {}
        futures = []
        for task in tasks:
            fut = self.client.submit(_on_worker, fn, task, cache, retries=self.retries,
                                     key=f"clipsim-chunk-{task.chunk_id}-{uuid.uuid4().hex[:8]}")
            by_key[fut.key] = task
            futures.append(fut)
        try:
            for fut in distributed.as_completed(futures):
                frame = fut.result()
                task = by_key[fut.key]
                fut.release()
                yield task, frame
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
