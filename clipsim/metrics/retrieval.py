"""Cross-modal retrieval recall."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, check_same_rows
from clipsim.metrics.similarity import scores

__all__ = ["retrieval_recall"]


def _num_beating(s: jnp.ndarray) -> jnp.ndarray:
    """Per row ``i``, the number of ``j != i`` with ``s[i, j] >= s[i, i]``."""
    off_diag = ~jnp.eye(s.shape[0], dtype=bool)
    positive = jnp.diagonal(s)[:, None]
    return jnp.sum((s >= positive) & off_diag, axis=1)


def retrieval_recall(
    emb_a: ArrayLike, emb_b: ArrayLike, *, ks: tuple[int, ...]
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

    Args:
        emb_a: Embeddings, shape ``(n, d)``.
        emb_b: Embeddings, shape ``(n, d)``.
        ks: Static tuple of positive integers.

    Returns:
        Dict of scalars in the score dtype.
    """
    ks = tuple(ks)
    if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks must be a tuple of positive ints, got {ks}.")
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_same_rows(emb_a, emb_b, ("emb_a", "emb_b"))
    s = scores(emb_a, emb_b)
    beat_a2b = _num_beating(s)
    beat_b2a = _num_beating(s.T)
    out: dict[str, jnp.ndarray] = {}
    for k in ks:
        out[f"recall_a2b@{k}"] = jnp.mean((beat_a2b < k).astype(s.dtype))
    for k in ks:
        out[f"recall_b2a@{k}"] = jnp.mean((beat_b2a < k).astype(s.dtype))
    return out
