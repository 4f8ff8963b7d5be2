"""Where chunks run: in this process (``local``) or on a dask cluster (``dask``).

A backend is a context manager with a ``parallelism`` hint (how many chunks it
runs at once) and ``map_chunks(fn, tasks)``, which yields ``(task, fn(task))`` as
each chunk finishes, in any order. The caller writes each result as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import pandas as pd

from clipsim.sweep.engine import ChunkTask

__all__ = ["Backend", "LocalBackend", "make_backend", "BACKENDS"]

ChunkFn = Callable[[ChunkTask], pd.DataFrame]
BACKENDS = ("local", "dask")


class Backend(Protocol):
    """What ``clipsim.sweep.run`` needs from a backend."""

    name: str
    parallelism: int

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...

    def map_chunks(self, fn: ChunkFn, tasks: Sequence[ChunkTask]
                   ) -> Iterator[tuple[ChunkTask, pd.DataFrame]]:
        """Run ``fn`` on every task.

        Args:
            fn: computes one chunk's rows (``clipsim.sweep.engine.compute_chunk``).
            tasks: the chunks.

        Yields:
            ``(task, rows)`` as each chunk finishes, in any order.
        """
        ...


class LocalBackend:
    """Run chunks one after another in this process (the compiled programs are cached)."""

    name = "local"
    parallelism = 1

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map_chunks(self, fn: ChunkFn, tasks: Sequence[ChunkTask]
                   ) -> Iterator[tuple[ChunkTask, pd.DataFrame]]:
        """Run the chunks in order.

        Args:
            fn: computes one chunk's rows.
            tasks: the chunks.

        Yields:
            ``(task, rows)`` for each chunk, in order.
        """
        for task in tasks:
            yield task, fn(task)


def make_backend(backend: str | Backend = "local", *, scheduler: str | None = None) -> Backend:
    """A backend by name (``local`` or ``dask``), or ``backend`` itself if it is one.

    Args:
        backend: ``"local"``, ``"dask"`` or a backend object.
        scheduler: dask scheduler address (``tcp://host:8786``); None starts a
            ``LocalCluster`` for the run. Only for ``dask``.

    Returns:
        The backend (not started: use it as a context manager).

    Raises:
        ValueError: unknown name, or ``scheduler`` with the local backend.
        ImportError: ``dask`` without ``dask.distributed`` installed.
    """
    if not isinstance(backend, str):
        return backend
    if backend == "local":
        if scheduler is not None:
            raise ValueError("--scheduler needs --backend dask")
        return LocalBackend()
    if backend == "dask":
        from clipsim.sweep.dask_backend import DaskBackend, require_distributed

        require_distributed()
        return DaskBackend(scheduler=scheduler)
    raise ValueError(f"backend = {backend!r} is invalid: must be one of {', '.join(BACKENDS)}")
