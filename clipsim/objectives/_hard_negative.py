"""CLIP plus a penalty on each pair's hardest negative (a hard-negative ablation of ``clip_reg``).

``neg_reg`` penalizes the *mean* negative score. Since
sum_{i != j} s_ij = <sum_i za_i, sum_j zb_j> - sum_i s_ii, that mean is
(B^2 <mean za, mean zb> - sum_i s_ii) / (B(B-1)): a penalty on the alignment of the two
modalities' mean embeddings plus a small reward on the positives. It never looks at the
negative that decides a pair's margin. ``hardneg_reg`` penalizes that one instead: the
largest negative score of each row and of each column, the term the margin
m_i = s_ii - max_{j != i} s_ij subtracts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params, clip_terms
from clipsim.objectives._common import batch_stats, scalar


def hardest_negative_mean(scores: jax.Array) -> jax.Array:
    """(1/2B) sum_i (max_{j != i} s_ij + max_{j != i} s_ji): mean hardest negative score.

    Args:
      scores: (B, B) score matrix, B >= 2; row i's positive is ``scores[i, i]``.

    Returns:
      A scalar; in [-1, 1] for unit vectors. Reduction: mean over the B rows and the B
      columns (each contributes its own largest off-diagonal entry).
    """
    off = ~jnp.eye(scores.shape[0], dtype=bool)
    masked = jnp.where(off, scores, -jnp.inf)
    return 0.5 * (jnp.mean(jnp.max(masked, axis=1)) + jnp.mean(jnp.max(masked, axis=0)))


def hardneg_reg(
    za: jax.Array, zb: jax.Array, params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CLIP with a penalty on the hardest negative of every row and column.

        L = L_clip + 2 lambda (1/2B) sum_i (max_{j != i} s_ij + max_{j != i} s_ji),
        lambda = ``cfg.reg_weight``.

    The factor 2 mirrors ``clip_reg``, whose penalty is 2 lambda (1/B) sum_i (1 - s_ii)
    for unit vectors: here the score pushed is the hardest negative instead of the
    positive. Same-latent negatives (unexpected positives) are not excluded: training
    does not see latents. The gradient flows to the arg-max entry of each row and
    column only. Reduction: means over pairs (both terms). For unit vectors
    L >= -2 lambda.

    Args:
      za: (B, d) embeddings of modality a.
      zb: (B, d) embeddings of modality b; row i pairs with row i of ``za``.
      params: ``clip_init_params(cfg)``.
      cfg: objective config; ``reg_weight`` is lambda.

    Returns:
      ``(loss, aux)``: a scalar and the statistics of ``batch_stats``.

    Example:
      >>> import jax.numpy as jnp
      >>> from clipsim.config import ObjectiveConfig
      >>> from clipsim.objectives import clip_init_params
      >>> cfg = ObjectiveConfig(name="hardneg_reg", reg_weight=0.5)
      >>> loss, _ = hardneg_reg(jnp.eye(3), jnp.eye(3), clip_init_params(cfg), cfg=cfg)
      >>> round(float(loss), 4)  # clip's loss; every hardest negative is 0
      0.0001
    """
    loss, scores, tau = clip_terms(za, zb, params, cfg)
    lam = scalar(cfg.reg_weight, scores.dtype)
    return loss + 2 * lam * hardest_negative_mean(scores), batch_stats(scores, tau)
