"""Non-contrastive baselines: square loss, spectral loss, alignment only."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params
from clipsim.objectives._common import batch_stats, check_pair, off_diagonal_mean
from clipsim.objectives._regularizers import alignment_penalty


def square(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Square loss: regression of the score matrix onto the identity.

        L = (1/B) sum_i (s_ii - 1)^2 + (1/(B(B-1))) sum_{i != j} s_ij^2.

    Reduction: mean over positives plus mean over negatives. Range [0, inf);
    minimum 0 exactly when S = I (for unit vectors: za_i = zb_i orthonormal, d >= B).
    No temperature (``aux["temperature"]`` is NaN) and no parameters.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``{}`` (no learnable parameters).
      cfg: objective config (unused).

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    del params, cfg
    za, zb = check_pair(za, zb)
    scores = za @ zb.T
    diag = jnp.diagonal(scores)
    loss = jnp.mean((diag - 1) ** 2) + off_diagonal_mean(scores**2)
    return loss, batch_stats(scores)


def spectral(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Spectral contrastive loss.

        L = -2 (1/B) sum_i s_ii + (1/(B(B-1))) sum_{i != j} s_ij^2.

    Reduction: mean over positives plus mean over negatives. For unit vectors
    L >= -2, reached at S = I (za_i = zb_i orthonormal, d >= B); unbounded below
    for unnormalized embeddings. No temperature and no parameters.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``{}`` (no learnable parameters).
      cfg: objective config (unused).

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    del params, cfg
    za, zb = check_pair(za, zb)
    scores = za @ zb.T
    loss = -2 * jnp.mean(jnp.diagonal(scores)) + off_diagonal_mean(scores**2)
    return loss, batch_stats(scores)


def align_only(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Alignment without negatives.

        L = (1/B) sum_i ||za_i - zb_i||^2.

    Reduction: mean over pairs. Range [0, inf), [0, 4] for unit vectors; minimum 0
    at za = zb, including the collapsed solution where every embedding is the same
    vector (why negatives matter). No temperature and no parameters.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``{}`` (no learnable parameters).
      cfg: objective config (unused).

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    del params, cfg
    za, zb = check_pair(za, zb)
    return alignment_penalty(za, zb), batch_stats(za @ zb.T)
