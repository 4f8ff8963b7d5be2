"""Cross-modal retrieval recall."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._blocked import block_rows, map_row_blocks, scan_row_blocks, use_blocked
from clipsim.metrics._checks import as_float, check_ndim, check_same_dim, check_same_rows
from clipsim.metrics.similarity import scores

__all__ = ["retrieval_recall"]


def _num_beating(s: jnp.ndarray) -> jnp.ndarray:
    """Per row ``i``, the number of ``j != i`` with ``s[i, j] >= s[i, i]``."""
    off_diag = ~jnp.eye(s.shape[0], dtype=bool)
    positive = jnp.diagonal(s)[:, None]
    return jnp.sum((s >= positive) & off_diag, axis=1)


def _num_beating_blocked(
    emb_a: jnp.ndarray, emb_b: jnp.ndarray, block: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``_num_beating`` of ``s = emb_a @ emb_b.T`` and of ``s.T``, ``block`` rows of s at a time.

    Two passes over the row blocks: the first counts per row and records the
    diagonal (from the same slab products), the second counts per column against
    that diagonal, accumulating an (n,) vector.
    """
    n = emb_a.shape[0]

    # The diagonal entry always satisfies s_ii >= s_ii (unless it is NaN, when no
    # comparison with it holds), so the counts over all j minus one, floored at 0,
    # are the counts over j != i without an n-wide index mask.
    def rows_pass(rows, valid, a):
        s = a @ emb_b.T
        diag = jnp.take_along_axis(s, jnp.minimum(rows, n - 1)[:, None], axis=1)[:, 0]
        return jnp.sum(s >= diag[:, None], axis=1, dtype=jnp.int32), diag

    beat_rows, diag = map_row_blocks(rows_pass, n, block, emb_a)

    def cols_pass(count, rows, valid, a):
        s = a @ emb_b.T
        hit = (s >= diag[None, :]) & valid[:, None]
        return count + jnp.sum(hit, axis=0, dtype=jnp.int32)

    beat_cols = scan_row_blocks(cols_pass, jnp.zeros((n,), jnp.int32), n, block, emb_a)
    return jnp.maximum(beat_rows - 1, 0), jnp.maximum(beat_cols - 1, 0)


def retrieval_recall(
    emb_a: ArrayLike, emb_b: ArrayLike, *, ks: tuple[int, ...], block: int | None = None
) -> dict[str, jnp.ndarray]:
    r"""Recall@k of in-batch retrieval in both directions, ties counted as misses.

    .. math::
        \mathrm{R@k}_{a \to b} = \frac1n \sum_i
            \bigl[\#\{j \ne i : s_{ij} \ge s_{ii}\} < k\bigr],
        \qquad
        \mathrm{R@k}_{b \to a} = \frac1n \sum_i
            \bigl[\#\{j \ne i : s_{ji} \ge s_{ii}\} < k\bigr]

    with :math:`s_{ij} = \langle a_i, b_j \rangle`; row ``i`` of each input is the
    positive of the other's row ``i``, all other rows are negatives.

    Keys ``recall_a2b@{k}`` and ``recall_b2a@{k}`` for each ``k``; range
    ``[0, 1]``, optimum 1. Reduction: mean over the ``n`` queries.

    From ``n >= BLOCKED_MIN_ROWS`` (or whenever ``block`` is given) the counts
    are computed ``block`` rows of scores at a time, memory O(block x n), with
    the same results.

    Args:
        emb_a: Embeddings, shape ``(n, d)``.
        emb_b: Embeddings, shape ``(n, d)``.
        ks: Static tuple of positive integers.
        block: Rows per block (static), or None for the default: dense below
            ``BLOCKED_MIN_ROWS`` rows, blocks of ``block_rows(n, n)`` rows above.

    Returns:
        Dict of scalars in the score dtype.
    """
    ks = tuple(ks)
    if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks must be a tuple of positive ints, got {ks}.")
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_ndim(emb_a, 2, "emb_a")
    check_ndim(emb_b, 2, "emb_b")
    check_same_rows(emb_a, emb_b, ("emb_a", "emb_b"))
    check_same_dim(emb_a, emb_b, ("emb_a", "emb_b"))
    n = emb_a.shape[0]
    dtype = jnp.result_type(emb_a, emb_b)
    if use_blocked(n, block):
        beat_a2b, beat_b2a = _num_beating_blocked(emb_a, emb_b, block_rows(n, n, block))
    else:
        s = scores(emb_a, emb_b)
        beat_a2b = _num_beating(s)
        beat_b2a = _num_beating(s.T)
    out: dict[str, jnp.ndarray] = {}
    for k in ks:
        out[f"recall_a2b@{k}"] = jnp.mean((beat_a2b < k).astype(dtype))
    for k in ks:
        out[f"recall_b2a@{k}"] = jnp.mean((beat_b2a < k).astype(dtype))
    return out
