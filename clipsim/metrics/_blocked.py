"""Row-blocked passes over an n x m score matrix that never hold more than a block of rows.

The metrics that need every pair (margins, retrieval, uniformity) go through
these helpers above ``BLOCKED_MIN_ROWS`` rows: the rows of the first argument are
cut into blocks of ``block`` rows (the last block padded, the padding masked
out), and a ``lax.map`` or ``lax.scan`` computes one ``block x m`` slab of
scores at a time. Peak memory is O(block x m) instead of O(n x m); the results
equal the dense formulas (same definitions, same reductions) up to the order of
floating-point summation.

``block_rows(n, m)`` picks the block size from ``SLAB_ENTRIES`` (entries of one
slab); ``BLOCKED_MIN_ROWS`` and ``SLAB_ENTRIES`` come from a measurement
(``python -m benchmarks.w3_eval --case threshold``; docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "BLOCKED_MIN_ROWS",
    "SLAB_ENTRIES",
    "SLAB_ENTRIES_ACCELERATOR",
    "block_rows",
    "map_row_blocks",
    "scan_row_blocks",
    "use_blocked",
]

BLOCKED_MIN_ROWS = 1024
"""Smallest n for which the n x n metrics use the row-blocked path by default.

Measured on a 2-core CPU (``python -m benchmarks.w3_eval --case threshold``,
margins + retrieval + uniformity, dense over blocked time): 1.35x at n = 1024,
4.7x at 2048, 3.9x at 4096, 6.0x at 8192; the dense n x n buffers leave the
caches while a slab stays in them (and uniformity visits each pair once).
"""

SLAB_ENTRIES = 1 << 19
"""Target number of score entries in one block x m slab on CPU (2 MiB in float32).

The fastest of 2^19, 2^21 and 2^23 at n = 4096 and 8192 in the same measurement.
"""

SLAB_ENTRIES_ACCELERATOR = 1 << 26
"""The same on a GPU or TPU backend (256 MiB in float32): fewer, larger blocks."""


def block_rows(n: int, m: int, block: int | None = None) -> int:
    """Rows per block: ``block`` if given, else ``SLAB_ENTRIES // m``, clipped to [1, n].

    On a GPU or TPU default backend ``SLAB_ENTRIES_ACCELERATOR`` replaces
    ``SLAB_ENTRIES`` (checked when the caller is traced).

    Args:
        n: rows of the full matrix.
        m: columns of the full matrix.
        block: an explicit block size (positive int) or None.

    Returns:
        A block size in ``[1, n]``.
    """
    if block is None:
        entries = SLAB_ENTRIES if jax.default_backend() == "cpu" else SLAB_ENTRIES_ACCELERATOR
        block = max(1, entries // max(m, 1))
    elif not isinstance(block, int) or isinstance(block, bool) or block < 1:
        raise ValueError(f"block must be a positive int or None, got {block!r}.")
    return max(1, min(int(block), n))


def use_blocked(n: int, block: int | None) -> bool:
    """Whether a metric on n rows takes the blocked path (``block`` given, or n large)."""
    return block is not None or n >= BLOCKED_MIN_ROWS


def _split_rows(block: int, *arrays: jnp.ndarray) -> tuple[jnp.ndarray, tuple[jnp.ndarray, ...]]:
    """Row indices (nb, block) and each array padded and reshaped to (nb, block, ...)."""
    n = arrays[0].shape[0]
    nb = -(-n // block)
    pad = nb * block - n
    idx = jnp.arange(nb * block, dtype=jnp.int32).reshape(nb, block)
    out = []
    for x in arrays:
        widths = [(0, pad)] + [(0, 0)] * (x.ndim - 1)
        out.append(jnp.pad(x, widths).reshape(nb, block, *x.shape[1:]))
    return idx, tuple(out)


def map_row_blocks(
    fn: Callable[..., Any], n: int, block: int, *arrays: jnp.ndarray
) -> Any:
    """Applies ``fn(rows, valid, *row_blocks)`` to each block of rows; concatenates the results.

    ``rows`` are the global row indices of the block, shape ``(block,)`` (int32,
    values up to ``nb * block - 1``); ``valid`` is ``rows < n``; each of
    ``row_blocks`` is the block of the corresponding array (padded with zeros in
    the last block). Every leaf ``fn`` returns must have a leading axis of size
    ``block``; the results are concatenated over blocks and cut to ``n`` rows.

    Args:
        fn: per-block function.
        n: number of rows of every array.
        block: rows per block.
        *arrays: arrays with ``n`` rows.

    Returns:
        The pytree of ``fn``'s results with leading axis ``n``. No reduction.
    """
    idx, blocks = _split_rows(block, *arrays)

    @jax.checkpoint
    def one(args):
        rows, *xs = args
        return fn(rows, rows < n, *xs)

    out = jax.lax.map(one, (idx, *blocks))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:n], out)


def scan_row_blocks(
    fn: Callable[..., Any], init: Any, n: int, block: int, *arrays: jnp.ndarray
) -> Any:
    """Folds ``carry = fn(carry, rows, valid, *row_blocks)`` over the blocks of rows.

    For reductions over rows that must not keep one result per block (for
    example per-column counts of length m). Arguments as in ``map_row_blocks``.

    Args:
        fn: ``(carry, rows, valid, *row_blocks) -> carry``.
        init: initial carry.
        n: number of rows of every array.
        block: rows per block.
        *arrays: arrays with ``n`` rows.

    Returns:
        The final carry.
    """
    idx, blocks = _split_rows(block, *arrays)

    @jax.checkpoint
    def step(carry, args):
        rows, *xs = args
        return fn(carry, rows, rows < n, *xs), None

    carry, _ = jax.lax.scan(step, init, (idx, *blocks))
    return carry
