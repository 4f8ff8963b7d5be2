"""Shared helpers of the objectives: input checks, scores and batch statistics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

AUX_KEYS: tuple[str, ...] = ("pos_mean", "neg_mean", "accuracy", "margin", "temperature")
"""Keys of the ``aux`` dict every objective returns (see ``batch_stats``)."""


def check_pair(za: Any, zb: Any) -> tuple[jax.Array, jax.Array]:
    """Check that ``za`` and ``zb`` are paired (B, d) float embeddings with B >= 2."""
    za, zb = jnp.asarray(za), jnp.asarray(zb)
    if za.ndim != 2 or zb.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (batch, dim); got shapes {za.shape} and {zb.shape}"
        )
    if za.shape != zb.shape:
        raise ValueError(
            f"paired embeddings must have the same shape; got {za.shape} and {zb.shape}"
        )
    if za.shape[0] < 2:
        raise ValueError(f"a batch needs at least 2 pairs to have negatives; got B = {za.shape[0]}")
    for z in (za, zb):
        if not jnp.issubdtype(z.dtype, jnp.floating):
            raise ValueError(f"embeddings must have a floating dtype; got {z.dtype}")
    if za.dtype != zb.dtype:
        raise ValueError(f"paired embeddings must share a dtype; got {za.dtype} and {zb.dtype}")
    return za, zb


def check_scores(scores: Any) -> jax.Array:
    """Check that ``scores`` is a square (B, B) floating matrix."""
    scores = jnp.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix; got shape {scores.shape}")
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise ValueError(f"scores must have a floating dtype; got {scores.dtype}")
    return scores


def scalar(value: Any, dtype: Any) -> jax.Array:
    """A config number or parameter (Python float or traced array) as a ``dtype`` scalar."""
    return jnp.asarray(value, dtype=dtype)


def off_diagonal_mean(matrix: jax.Array) -> jax.Array:
    """Mean of the B(B-1) off-diagonal entries of a (B, B) matrix."""
    b = matrix.shape[0]
    off = ~jnp.eye(b, dtype=bool)
    return jnp.sum(jnp.where(off, matrix, 0)) / (b * (b - 1))


def batch_stats(scores: jax.Array, temperature: Any = None) -> dict[str, jax.Array]:
    """Diagnostics of a (B, B) score matrix, shared by every objective.

    With s_ij = <za_i, zb_j>:

    - ``pos_mean`` = (1/B) sum_i s_ii;
    - ``neg_mean`` = (1/(B(B-1))) sum_{i != j} s_ij;
    - ``accuracy`` = (1/B) #{i : s_ii > max_{j != i} s_ij} (in-batch top-1 retrieval
      a -> b; ties count as errors), in [0, 1];
    - ``margin`` = (1/B) sum_i (s_ii - max_{j != i} s_ij);
    - ``temperature``: the effective tau the objective used, NaN if it has none.

    Reduction: means over the B pairs (``neg_mean``: over the B(B-1) negatives).
    No gradient flows through the statistics.

    Args:
      scores: (B, B) score matrix, B >= 2.
      temperature: scalar effective temperature, or None.

    Returns:
      A dict of scalars with keys ``AUX_KEYS``, in the dtype of ``scores``.
    """
    s = jax.lax.stop_gradient(scores)
    b = s.shape[0]
    diag = jnp.diagonal(s)
    off = ~jnp.eye(b, dtype=bool)
    max_neg = jnp.max(jnp.where(off, s, -jnp.inf), axis=1)
    if temperature is None:
        temp = jnp.asarray(jnp.nan, dtype=s.dtype)
    else:
        temp = jax.lax.stop_gradient(scalar(temperature, s.dtype))
    return {
        "pos_mean": jnp.mean(diag),
        "neg_mean": off_diagonal_mean(s),
        "accuracy": jnp.mean((diag > max_neg).astype(s.dtype)),
        "margin": jnp.mean(diag - max_neg),
        "temperature": temp,
    }
