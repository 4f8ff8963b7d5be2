"""CLIP over three or more modalities: one CLIP term per pair of modalities."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from clipsim.config import ObjectiveConfig
from clipsim.objectives._clip import Params, clip


def multimodal_clip(
    embs: Sequence[jax.Array], params: Params, *, cfg: ObjectiveConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean CLIP loss over all pairs of M >= 2 modalities.

        L = (2 / (M(M-1))) sum_{a < b} L_clip(z^a, z^b).

    Row i of every modality belongs to the same sample. All pairs share one
    temperature (``clip_init_params``). Reduction: mean over the M(M-1)/2 unordered
    pairs of modalities; ``aux`` is averaged over the pairs the same way. With
    M = 2 this is ``clip``. Range and optimum as ``clip``.

    Args:
      embs: M arrays of shape (B, d).
      params: ``clip_init_params(cfg)``.
      cfg: objective config.

    Returns:
      ``(loss, aux)`` as ``clip``.
    """
    embs = list(embs)
    if len(embs) < 2:
        raise ValueError(f"multimodal_clip needs at least 2 modalities; got {len(embs)}")
    shapes = {tuple(jnp.shape(e)) for e in embs}
    if len(shapes) != 1:
        raise ValueError(f"all modalities must have the same (B, d) shape; got {sorted(shapes)}")
    results = [clip(za, zb, params, cfg=cfg) for za, zb in itertools.combinations(embs, 2)]
    losses = jnp.stack([loss for loss, _ in results])
    auxes = [aux for _, aux in results]
    aux = {key: jnp.mean(jnp.stack([a[key] for a in auxes])) for key in auxes[0]}
    return jnp.mean(losses), aux
