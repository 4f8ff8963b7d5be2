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
    """Cyclic CLIP loss (Goel et al., 2022), at CyCLIP's own reduction.

        L = L_clip + lambda_cross (1/B) sum_{i,j} (s_ij - s_ji)^2
                   + lambda_in (1/B) sum_{i,j} (<za_i, za_j> - <zb_i, zb_j>)^2,

    with s_ij = <za_i, zb_j> unscaled by the temperature (cosines when the
    encoders normalize), lambda_cross = ``cfg.reg_weight``, lambda_in =
    ``cfg.in_modal_weight``, and the temperature of L_clip handled as in ``clip``.

    Reduction: each cyclic term is a (1/B) sum over its B^2 entries, i.e. the
    mean over the entries times B. This is the reduction of CyCLIP's training
    code (``src/train.py`` of goel-shashank/CyCLIP computes
    ``(I I^T - T T^T).square().mean() * B`` and ``(I T^T - T I^T).square().mean() * B``
    on the logits divided back by the squared logit scale), so the CyCLIP
    paper's lambda_cross = lambda_in = 0.25 mean the same here. A (1/B^2) mean
    would make both terms B times weaker at the same lambda.

    Range: L >= 0; both cyclic terms vanish when za = zb, and each is at most
    4B for unit rows.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda_cross, ``in_modal_weight`` lambda_in
        (CyCLIP's paper: 0.25 each).

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    b = scores.shape[0]
    cross = jnp.mean((scores - scores.T) ** 2) * b
    in_modal = jnp.mean((za @ za.T - zb @ zb.T) ** 2) * b
    lam_cross = scalar(cfg.reg_weight, scores.dtype)
    lam_in = scalar(cfg.in_modal_weight, scores.dtype)
    return loss + lam_cross * cross + lam_in * in_modal, batch_stats(scores, tau)
