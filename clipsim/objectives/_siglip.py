"""The sigmoid pairwise loss (SigLIP)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params
from clipsim.objectives._common import batch_stats, check_pair, scalar


def siglip_init_params(cfg: ObjectiveConfig) -> dict[str, jax.Array]:
    """SigLIP's learnable scale and bias (always learned).

    ``{"log_scale": log(cfg.siglip_scale), "bias": cfg.siglip_bias}``; SigLIP starts
    at exp(t') = 10, b = -10.

    Args:
      cfg: objective config (``siglip_scale`` and ``siglip_bias`` are used).

    Returns:
      A dict with the scalar arrays ``log_scale`` and ``bias``.
    """
    return {
        "log_scale": jnp.log(jnp.asarray(cfg.siglip_scale, dtype=float)),
        "bias": jnp.asarray(cfg.siglip_bias, dtype=float),
    }


def siglip(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Sigmoid loss: every pair (i, j) is a binary classification.

        L = -(1/B) sum_{i,j} log sigmoid(t_ij (s_ij exp(t') + b)),

    with t_ii = 1 and t_ij = -1 for i != j, t' = ``params["log_scale"]`` and
    b = ``params["bias"]``. Uses ``jax.nn.log_sigmoid`` (stable for large logits).

    Reduction: sum over the B^2 pairs divided by B (as in SigLIP). Range [0, inf);
    the infimum 0 is approached as positive logits go to +inf and negative logits
    to -inf. ``aux["temperature"]`` is 1 / exp(t').

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``siglip_init_params(cfg)``.
      cfg: objective config (unused in the loss; the parameters carry the state).

    Returns:
      ``(loss, aux)`` as ``clip``.
    """
    del cfg
    za, zb = check_pair(za, zb)
    scores = za @ zb.T
    log_scale = scalar(params["log_scale"], scores.dtype)
    bias = scalar(params["bias"], scores.dtype)
    logits = scores * jnp.exp(log_scale) + bias
    signs = 2 * jnp.eye(scores.shape[0], dtype=scores.dtype) - 1
    loss = -jnp.sum(jax.nn.log_sigmoid(signs * logits)) / scores.shape[0]
    return loss, batch_stats(scores, jnp.exp(-log_scale))
