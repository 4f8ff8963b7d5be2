"""JAX's persistent compilation cache for command-line runs.

Compiled programs are stored on disk, so a rerun (or a resumed sweep, or a dask
worker restarted after a crash) loads them instead of compiling again.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["cache_dir", "enable_compilation_cache"]


def cache_dir() -> Path:
    """The default compilation cache folder.

    Returns:
        ``$CLIPSIM_CACHE_DIR`` if set, else ``~/.cache/clipsim/jax``.
    """
    env = os.environ.get("CLIPSIM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "clipsim" / "jax"


def enable_compilation_cache(path: str | Path | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (every program is cached).

    Call it before the first compilation of the process.

    Args:
        path: cache folder; default ``cache_dir()``.

    Returns:
        The cache folder (created if needed).
    """
    folder = Path(path) if path is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
