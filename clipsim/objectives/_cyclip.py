"""CyCLIP: CLIP plus cross-modal and in-modal consistency terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params, clip_terms
from clipsim.objectives._common import batch_stats, scalar


def cyclip(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cyclic CLIP loss.

        L = L_clip + lambda_cross (1/B^2) sum_{i,j} (s_ij - s_ji)^2
                   + lambda_in (1/B^2) sum_{i,j} (<za_i, za_j> - <zb_i, zb_j>)^2,

    lambda_cross = ``cfg.reg_weight``, lambda_in = ``cfg.in_modal_weight``, and the
    temperature handled as in ``clip``. Reduction: means over the B^2 entries.
    Range: L >= 0; both extra terms vanish when za = zb.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda_cross, ``in_modal_weight`` lambda_in.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    cross = jnp.mean((scores - scores.T) ** 2)
    in_modal = jnp.mean((za @ za.T - zb @ zb.T) ** 2)
    lam_cross = scalar(cfg.reg_weight, scores.dtype)
    lam_in = scalar(cfg.in_modal_weight, scores.dtype)
    return loss + lam_cross * cross + lam_in * in_modal, batch_stats(scores, tau)
