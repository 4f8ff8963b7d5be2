"""M >= 2 views of the same shared latents (docs/theory.md, section 3, last item).

View 0 is the image and view 1 the text of ``sample_pairs`` on world 0, so with
M = 2 the views are exactly the paired data. Every further view v >= 2 is a
caption-like view ("audio", ...) generated from the same z by the text side of
its own world (mixing matrices drawn from ``fold_in(key, v)``), with its own
unique features zeta_v, omission mask m_v and noise:

    x^v = B_z^(v) (m_v * z) + B_zeta^(v) zeta_v + eps_v.

Given z the views are independent (each has its own unique features, mask and
noise), so the assumption of E3 (docs/theory.md) holds for every pair of views. The class
latents of the zero-shot task are world 0's centres for every view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from clipsim.config import DataConfig
from clipsim.data.generator import (
    World,
    image_from_latents,
    make_world,
    sample_pairs,
    text_from_latents,
)

__all__ = ["Views", "make_worlds", "view_dims", "sample_views", "view_prompts"]

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Views:
    """n samples seen through M views.

    Attributes:
        views: M arrays; ``views[0]`` images (n, dx), ``views[v]`` (n, dy) for v >= 1.
        z: shared latents, (n, k).
        labels: class index of each sample, (n,) int32; -1 where the family has none.
    """

    views: tuple[Array, ...]
    z: Array
    labels: Array


def make_worlds(cfg: DataConfig, num_views: int, *, key: Array | None = None,
                dtype: Any = jnp.float32) -> tuple[World, ...]:
    """The fixed mixing of each view's world.

    Args:
        cfg: the data config.
        num_views: M >= 2.
        key: PRNG key; defaults to ``jax.random.key(cfg.seed)``.
        dtype: dtype of every world (see ``make_world``).

    Returns:
        ``num_views - 1`` worlds: world 0 (``make_world(cfg, key=key)``) makes views 0
        and 1; world j >= 1 (drawn from ``fold_in(key, j + 1)``) makes view j + 1.
    """
    if num_views < 2:
        raise ValueError(f"make_worlds: need at least 2 views, got {num_views}")
    if key is None:
        key = jax.random.key(cfg.seed)
    extra = [make_world(cfg, key=jax.random.fold_in(key, v), dtype=dtype)
             for v in range(2, num_views)]
    return (make_world(cfg, key=key, dtype=dtype), *extra)


def view_dims(cfg: DataConfig, num_views: int) -> tuple[int, ...]:
    """Input dimension of each view: (dx, dy, dy, ...)."""
    return (cfg.image_dim, *([cfg.text_dim] * (num_views - 1)))


def _world_of_view(worlds: tuple[World, ...], v: int) -> World:
    return worlds[max(v - 1, 0)]


def sample_views(cfg: DataConfig, worlds: tuple[World, ...], *, key: Array, n: int) -> Views:
    """Draw n samples of M = ``len(worlds) + 1`` views of the same latents.

    Views 0 and 1 are ``sample_pairs(cfg, worlds[0], key=fold_in(key, 0), n=n)``;
    view v >= 2 draws its unique features, mask and noise from ``fold_in(key, v)``.

    Args:
        cfg: data config (numeric fields may be traced).
        worlds: from ``make_worlds``.
        key: PRNG key.
        n: number of samples (static).

    Returns:
        A ``Views`` with M views.
    """
    pairs = sample_pairs(cfg, worlds[0], key=jax.random.fold_in(key, 0), n=n)
    z = pairs.z
    views = [pairs.x, pairs.y]
    for v in range(2, len(worlds) + 1):
        k_zeta, k_m, k_e = jax.random.split(jax.random.fold_in(key, v), 3)
        dtype = worlds[v - 1].shared_y.dtype
        zeta = cfg.text_unique_scale * jax.random.normal(k_zeta, (n, cfg.text_unique_dim), dtype)
        p_keep = 1.0 - jnp.asarray(cfg.omit_prob, dtype)
        mask = jax.random.bernoulli(k_m, p_keep, z.shape).astype(dtype)
        y = text_from_latents(cfg, worlds[v - 1], mask * z, zeta)
        views.append(y + cfg.noise_scale * jax.random.normal(k_e, y.shape, dtype))
    return Views(views=tuple(views), z=z, labels=pairs.labels)


def view_prompts(cfg: DataConfig, worlds: tuple[World, ...]) -> tuple[Array, ...]:
    """The clean view of every class latent, for each of the M views.

    The prompt of class c in view v is the noiseless view of z_c (world 0's
    centres) with no unique features and no omission; for view 1 it equals
    ``prompts(cfg, worlds[0])[:, 0]``.

    Args:
        cfg: the data config.
        worlds: from ``make_worlds``.

    Returns:
        M arrays of shape (C, dim_v).
    """
    centres = worlds[0].centres
    c = centres.shape[0]
    xi = jnp.zeros((c, cfg.image_unique_dim), centres.dtype)
    zeta = jnp.zeros((c, cfg.text_unique_dim), centres.dtype)
    out = [image_from_latents(cfg, worlds[0], centres, xi)]
    out += [text_from_latents(cfg, _world_of_view(worlds, v), centres, zeta)
            for v in range(1, len(worlds) + 1)]
    return tuple(out)
