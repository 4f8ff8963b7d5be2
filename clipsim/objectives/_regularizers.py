"""CLIP plus a regularizer on positive pairs, negative pairs, or both."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params, clip_terms
from clipsim.objectives._common import batch_stats, off_diagonal_mean, scalar


def alignment_penalty(za: jax.Array, zb: jax.Array) -> jax.Array:
    """(1/B) sum_i ||za_i - zb_i||^2: mean squared distance of positive pairs.

    Range [0, inf); in [0, 4] for unit vectors, where it equals (2/B) sum_i (1 - s_ii).
    Minimum 0 at za = zb.
    """
    return jnp.sum((za - zb) ** 2) / za.shape[0]


def clip_reg(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CLIP with the one-sided (positive-pair) regularizer.

        L = L_clip + lambda (1/B) sum_i ||za_i - zb_i||^2,   lambda = ``cfg.reg_weight``.

    For unit vectors the penalty equals 2 lambda (1/B) sum_i (1 - s_ii); it touches
    positive pairs only. Reduction: mean over pairs (both terms). Range: L >= 0.
    The penalty vanishes at za = zb, so the optimum is CLIP's simplex optimum.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    lam = scalar(cfg.reg_weight, scores.dtype)
    return loss + lam * alignment_penalty(za, zb), batch_stats(scores, tau)


def neg_reg(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CLIP with a penalty on the mean negative score (ablation of ``clip_reg``).

        L = L_clip + 2 lambda (1/(B(B-1))) sum_{i != j} s_ij,   lambda = ``cfg.reg_weight``.

    Reduction: mean over pairs and over the B(B-1) negatives. For unit vectors the
    penalty lies in [-2 lambda, 2 lambda], so L >= -2 lambda; it pushes negatives
    apart and leaves positives alone.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    lam = scalar(cfg.reg_weight, scores.dtype)
    return loss + 2 * lam * off_diagonal_mean(scores), batch_stats(scores, tau)


def both_reg(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CLIP with both the positive-pair and the negative-pair penalties.

        L = L_clip + lambda (1/B) sum_i ||za_i - zb_i||^2
                   + 2 lambda (1/(B(B-1))) sum_{i != j} s_ij,   lambda = ``cfg.reg_weight``.

    Reduction: means as in ``clip_reg`` and ``neg_reg``. For unit vectors
    L >= -2 lambda.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    lam = scalar(cfg.reg_weight, scores.dtype)
    penalty = alignment_penalty(za, zb) + 2 * off_diagonal_mean(scores)
    return loss + lam * penalty, batch_stats(scores, tau)
