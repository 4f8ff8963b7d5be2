"""The symmetric InfoNCE (CLIP) loss and its temperature handling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip_blocked import (
    BLOCK_ROWS,
    BLOCKED_MIN_BATCH,
    blocked_batch_stats,
    clip_loss_blocked,
)
from clipsim.objectives._common import batch_stats, check_pair, check_scores, scalar

Params = Mapping[str, jax.Array]


def clip_init_params(cfg: ObjectiveConfig) -> dict[str, jax.Array]:
    """Learnable parameters of the CLIP-based objectives.

    ``{"log_inv_temperature": log(1 / cfg.temperature)}`` when ``cfg.learn_temperature``
    (a static bool), else ``{}`` (the temperature is the fixed ``cfg.temperature``).

    Shared by ``clip``, ``clip_reg``, ``neg_reg``, ``both_reg``, ``cyclip`` and
    ``multimodal_clip``.

    Args:
      cfg: objective config (``learn_temperature`` and ``temperature`` are used).

    Returns:
      A dict of scalar arrays, empty for a fixed temperature.
    """
    if cfg.learn_temperature:
        tau = jnp.asarray(cfg.temperature, dtype=float)
        return {"log_inv_temperature": -jnp.log(tau)}
    return {}


def clip_temperature(params: Params, cfg: ObjectiveConfig, dtype: Any = None) -> jax.Array:
    """Effective temperature of the CLIP-based objectives.

    Fixed: tau = ``cfg.temperature``. Learned (``cfg.learn_temperature``): with
    p = ``params["log_inv_temperature"]`` (log 1/tau) and p_max = log(1 / cfg.min_temperature),

        tau = 1 / exp(min(p, p_max)),

    so tau >= ``cfg.min_temperature`` (CLIP's clamp). Above the clamp, p gets no
    gradient; at p = p_max exactly the gradient passes through.

    Args:
      params: the objective's parameters (see ``clip_init_params``).
      cfg: objective config; its numbers may be traced.
      dtype: dtype of the result (default: JAX's default float).

    Returns:
      A scalar tau > 0.
    """
    dtype = jnp.asarray(0.0, dtype=float).dtype if dtype is None else dtype
    if cfg.learn_temperature:
        if "log_inv_temperature" not in params:
            raise ValueError(
                "learn_temperature is set but params has no 'log_inv_temperature'; "
                "build params with the objective's init_params(cfg)"
            )
        p = scalar(params["log_inv_temperature"], dtype)
        p_max = -jnp.log(scalar(cfg.min_temperature, dtype))
        return jnp.exp(-jnp.where(p > p_max, p_max, p))
    return scalar(cfg.temperature, dtype)


def clip_loss_from_scores(scores: jax.Array, tau: Any) -> tuple[jax.Array, jax.Array]:
    """Per-pair InfoNCE losses of a (B, B) score matrix, both directions.

    Row loss of pair i (a -> b) and column loss (b -> a):

        l_i  = log(1 + sum_{j != i} exp((s_ij - s_ii) / tau)),
        l'_i = log(1 + sum_{j != i} exp((s_ji - s_ii) / tau)).

    Computed as a logsumexp of (s_ij - s_ii) / tau, whose diagonal term is exactly 0,
    so every loss is >= 0 and stable at small tau. Each loss lies in
    [log(1 + exp(-m_i / tau)), log(1 + (B-1) exp(-m_i / tau))] with m_i the margin;
    it tends to 0 as the margin grows.

    The gradient is written out (a custom VJP) rather than traced through the
    logsumexps: with P and Q the row and column softmaxes of the shifted scores
    and g, g' the cotangents of the row and column losses,

        dL/ds_ij = (g_i (P_ij - [i = j]) + g'_j (Q_ij - [i = j])) / tau,
        dL/dtau  = -(1 / tau) sum_ij (dL/ds_ij) s_ij,

    one fused pass over the B x B matrix (the traced gradient scatters the
    diagonal's cotangent back and keeps more B x B intermediates), used from
    B = ``FUSED_GRAD_MIN_BATCH`` on, where it is faster. Values are those of the
    plain formula either way; the gradient agrees with autodiff to rounding
    (``tests/test_fused_clip.py``).

    Args:
      scores: (B, B) scores s_ij = <za_i, zb_j>.
      tau: temperature, a positive scalar.

    Returns:
      ``(row_losses, col_losses)``, each of shape (B,), no reduction.

    Example:
      >>> import jax.numpy as jnp
      >>> row, col = clip_loss_from_scores(jnp.zeros((4, 4)), 0.1)
      >>> bool(jnp.allclose(row, jnp.log(4.0)))
      True
    """
    scores = check_scores(scores)
    tau = scalar(tau, scores.dtype)
    if scores.shape[0] >= FUSED_GRAD_MIN_BATCH:
        return _row_col_losses(scores, tau)
    return _row_col_losses_plain(scores, tau)


FUSED_GRAD_MIN_BATCH = 1024
"""Smallest B for which ``clip_loss_from_scores`` uses its written-out gradient.

Measured inside a scanned, vmapped training step (docs/performance.md): from
B = 1024 the fused pass is faster (1.1x at B = 1024 and 2048, d = 16; 1.35x for
the whole W2 step at B = 4096, d = 64); below, where the B x B matrices stay in
cache, autodiff's reuse of the forward exponentials wins (0.7-0.9x at B = 256-512).
"""


def _row_col_losses_plain(scores: jax.Array, tau: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The forward formula of ``clip_loss_from_scores`` (checked inputs, array tau)."""
    diag = jnp.diagonal(scores)
    row = jax.nn.logsumexp((scores - diag[:, None]) / tau, axis=1)
    col = jax.nn.logsumexp((scores - diag[None, :]) / tau, axis=0)
    return row, col


@jax.custom_vjp
def _row_col_losses(scores: jax.Array, tau: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _row_col_losses_plain(scores, tau)


def _row_col_losses_fwd(scores, tau):
    row, col = _row_col_losses_plain(scores, tau)
    return (row, col), (scores, tau, row, col)


def _row_col_losses_bwd(residuals, cotangents):
    scores, tau, row, col = residuals
    g_row, g_col = cotangents
    diag = jnp.diagonal(scores)
    # row and column softmaxes, recomputed from the logsumexps (entries <= 1)
    p = jnp.exp((scores - diag[:, None]) / tau - row[:, None])
    q = jnp.exp((scores - diag[None, :]) / tau - col[None, :])
    b = scores.shape[0]
    eye = (jax.lax.broadcasted_iota(jnp.int32, (b, b), 0)
           == jax.lax.broadcasted_iota(jnp.int32, (b, b), 1))
    d_scores = (g_row[:, None] * p + g_col[None, :] * q
                - jnp.where(eye, g_row[:, None] + g_col[None, :], 0)) / tau
    d_tau = -jnp.sum(d_scores * scores) / tau
    return d_scores, d_tau.astype(tau.dtype)


_row_col_losses.defvjp(_row_col_losses_fwd, _row_col_losses_bwd)


def clip_terms(
    za: jax.Array, zb: jax.Array, params: Params, cfg: ObjectiveConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Checked inputs -> ``(clip_loss, scores, tau)``; the core of the CLIP-based objectives."""
    za, zb = check_pair(za, zb)
    scores = za @ zb.T
    tau = clip_temperature(params, cfg, scores.dtype)
    row, col = clip_loss_from_scores(scores, tau)
    return 0.5 * (jnp.mean(row) + jnp.mean(col)), scores, tau


def clip(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Symmetric InfoNCE loss (CLIP).

    With s_ij = <za_i, zb_j> and the row / column losses l_i, l'_i of
    ``clip_loss_from_scores``:

        L = (1 / 2B) sum_i (l_i + l'_i).

    Reduction: mean over the B pairs and the two directions. Range: L >= 0; with
    |s_ij| <= M, L lies in [log(1 + (B-1) e^{-2M/tau}), log(1 + (B-1) e^{2M/tau})].
    L = log B when all scores are equal. The infimum 0 is approached as every
    margin grows; for unit vectors the minimum is reached by a regular simplex
    (za_i = zb_i, s_ij = -1/(B-1) for i != j; needs d >= B - 1).

    Temperature: fixed ``cfg.temperature`` or learned (see ``clip_temperature``).

    From B = ``BLOCKED_MIN_BATCH`` on, the loss, its gradient and the statistics
    are computed by ``clip_loss_blocked`` (blocks of ``BLOCK_ROWS`` rows of the
    score matrix, an online log-sum-exp for the columns, blocks recomputed in the
    backward pass), so no B x B matrix is held; the values are the same up to
    rounding (``tests/test_blocked_clip.py``).

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; its numbers may be traced.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    za, zb = check_pair(za, zb)
    if za.shape[0] >= BLOCKED_MIN_BATCH:
        tau = clip_temperature(params, cfg, za.dtype)
        row, col, parts = clip_loss_blocked(za, zb, tau, block=BLOCK_ROWS)
        loss = 0.5 * (jnp.mean(row) + jnp.mean(col))
        return loss, blocked_batch_stats(za, zb, parts, tau)
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    return loss, batch_stats(scores, tau)
