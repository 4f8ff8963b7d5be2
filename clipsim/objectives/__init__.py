"""Contrastive and baseline objectives (docs/theory.md, section 3).

Every objective is ``loss_fn(za, zb, params, *, cfg) -> (loss, aux)``: ``za`` and
``zb`` are (B, d) embeddings of B paired samples, scores are s_ij = <za_i, zb_j>,
``params`` holds the objective's own learnable parameters (``init_params(cfg)``),
``loss`` is a scalar and ``aux`` a dict with keys ``AUX_KEYS`` (``batch_stats``).

Adding an objective is one module plus one ``register`` line below.

Example:
  >>> import jax.numpy as jnp
  >>> from clipsim.config import ObjectiveConfig
  >>> from clipsim import objectives
  >>> cfg = ObjectiveConfig(name="clip", temperature=0.1)
  >>> obj = objectives.get(cfg.name)
  >>> z = jnp.eye(4)
  >>> loss, aux = obj.loss_fn(z, z, obj.init_params(cfg), cfg=cfg)
  >>> float(aux["accuracy"])
  1.0
"""

from clipsim.objectives._batches import clip_loss_per_batch
from clipsim.objectives._clip import (
    clip,
    clip_init_params,
    clip_loss_from_scores,
    clip_temperature,
)
from clipsim.objectives._common import AUX_KEYS, batch_stats
from clipsim.objectives._cyclip import cyclip
from clipsim.objectives._hard_negative import hardneg_reg
from clipsim.objectives._multimodal import multimodal_clip
from clipsim.objectives._registry import OBJECTIVES, LossFn, Objective, get, register
from clipsim.objectives._regularizers import both_reg, clip_reg, neg_reg
from clipsim.objectives._siglip import siglip, siglip_init_params
from clipsim.objectives._square import align_only, spectral, square

__all__ = [
    "AUX_KEYS",
    "OBJECTIVES",
    "LossFn",
    "Objective",
    "align_only",
    "batch_stats",
    "both_reg",
    "clip",
    "clip_init_params",
    "clip_loss_from_scores",
    "clip_loss_per_batch",
    "clip_reg",
    "clip_temperature",
    "cyclip",
    "get",
    "hardneg_reg",
    "multimodal_clip",
    "neg_reg",
    "register",
    "siglip",
    "siglip_init_params",
    "spectral",
    "square",
]

register("clip", clip, clip_init_params)
register("clip_reg", clip_reg, clip_init_params)
register("neg_reg", neg_reg, clip_init_params)
register("both_reg", both_reg, clip_init_params)
register("cyclip", cyclip, clip_init_params)
register("hardneg_reg", hardneg_reg, clip_init_params)
register("square", square)
register("spectral", spectral)
register("align_only", align_only)
register("siglip", siglip, siglip_init_params)
