"""Paired image/text data from shared latents (docs/theory.md, section 1).

x = A_z z + A_xi xi + eps_x and y = B_z (m * z) + B_zeta zeta + eps_y, where the
columns of [A_z A_xi] (dx by k+kx) and of [B_z B_zeta] (dy by k+ky) are
orthonormal. With ``mixing = "nonlinear"`` the noiseless part passes through a
fixed invertible map h(u) = leaky_relu(R u) with R a random orthogonal matrix,
so a linear encoder cannot invert it exactly and a two-layer one can.

Conditional independence (needed by E3 in docs/theory.md) holds for every family here:
xi, zeta, m, eps_x, eps_y are drawn independently of each other and of z.

All functions are pure and vectorized; randomness comes from keyword-only keys;
numeric config fields may be traced, so everything is ``jit``/``vmap``-able. Every
random draw names its dtype (the world's), so the numbers are a function of the
config and the key only, whether or not 64-bit JAX is switched on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from clipsim.config import DataConfig
from clipsim.data.families import class_log_probs, get_latent_family

__all__ = [
    "World",
    "Batch",
    "make_world",
    "sample_pairs",
    "image_from_latents",
    "text_from_latents",
    "prompts",
    "sample_test_images",
    "oracle_encoders",
    "satisfies_conditional_independence",
    "sample_caption_pairs",
    "draw_pairs",
]

Array = jax.Array
DType = Any


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class World:
    """The fixed parts of one dataset, drawn once from ``DataConfig.seed``.

    Attributes:
        shared_x: A_z, (dx, k). unique_x: A_xi, (dx, kx).
        shared_y: B_z, (dy, k). unique_y: B_zeta, (dy, ky).
        rotation_x: R_x, (dx, dx) orthogonal (used by nonlinear mixing only).
        rotation_y: R_y, (dy, dy) orthogonal (used by nonlinear mixing only).
        centres: class latents z_c, (C, k).
    """

    shared_x: Array
    unique_x: Array
    shared_y: Array
    unique_y: Array
    rotation_x: Array
    rotation_y: Array
    centres: Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Batch:
    """n paired samples with their generating variables.

    Attributes:
        x: images, (n, dx). y: texts, (n, dy). z: shared latents, (n, k).
        xi: image-unique features, (n, kx). zeta: text-unique features, (n, ky).
        mask: caption mask m (1 = feature mentioned), (n, k).
        labels: class index of each pair (n,), int32; -1 where the family has none.
    """

    x: Array
    y: Array
    z: Array
    xi: Array
    zeta: Array
    mask: Array
    labels: Array


def _orthonormal(key: Array, rows: int, cols: int, dtype: DType) -> Array:
    """A (rows, cols) matrix with orthonormal columns, Haar-distributed, in ``dtype``."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (rows, cols), dtype))
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def _prob(p: Array | float, dtype: DType) -> Array:
    """A Bernoulli probability as an array of ``dtype`` (the draw's dtype follows it)."""
    return jnp.asarray(p, dtype)


def make_world(cfg: DataConfig, *, key: Array | None = None,
               dtype: DType = jnp.float32) -> World:
    """Draw the mixing matrices and class centres of a dataset.

    Args:
        cfg: the data config.
        key: PRNG key; defaults to ``jax.random.key(cfg.seed)``.
        dtype: dtype of the draws and of every array of the world; samples drawn
            with the world (``sample_pairs`` ...) take this dtype.

    Returns:
        A ``World`` pytree.
    """
    if key is None:
        key = jax.random.key(cfg.seed)
    k, kx, ky = cfg.num_concepts, cfg.image_unique_dim, cfg.text_unique_dim
    k_x, k_y, k_rx, k_ry, k_c = jax.random.split(key, 5)
    basis_x = _orthonormal(k_x, cfg.image_dim, k + kx, dtype)
    basis_y = _orthonormal(k_y, cfg.text_dim, k + ky, dtype)
    return World(
        shared_x=basis_x[:, :k],
        unique_x=basis_x[:, k:],
        shared_y=basis_y[:, :k],
        unique_y=basis_y[:, k:],
        rotation_x=_orthonormal(k_rx, cfg.image_dim, cfg.image_dim, dtype),
        rotation_y=_orthonormal(k_ry, cfg.text_dim, cfg.text_dim, dtype),
        centres=get_latent_family(cfg.family).centres(cfg, k_c, dtype),
    )


def _leaky(u: Array, slope: Array | float) -> Array:
    return jnp.where(u >= 0, u, slope * u)


def _leaky_inverse(v: Array, slope: Array | float) -> Array:
    return jnp.where(v >= 0, v, v / slope)


def _mix(cfg: DataConfig, rotation: Array, u: Array) -> Array:
    if cfg.mixing == "linear":
        return u
    return _leaky(u @ rotation.T, cfg.leaky_slope)


def _unmix(cfg: DataConfig, rotation: Array, v: Array) -> Array:
    if cfg.mixing == "linear":
        return v
    return _leaky_inverse(v, cfg.leaky_slope) @ rotation


def image_from_latents(cfg: DataConfig, world: World, z: Array, xi: Array) -> Array:
    """Noiseless images h_x(A_z z + A_xi xi), (n, dx), from z (n, k) and xi (n, kx).

    Args:
        cfg: the data config (``mixing`` and ``leaky_slope`` are used).
        world: the dataset's fixed matrices.
        z: shared latents, (n, k).
        xi: image-unique features, (n, kx).

    Returns:
        Images without observation noise, (n, dx).
    """
    return _mix(cfg, world.rotation_x, z @ world.shared_x.T + xi @ world.unique_x.T)


def text_from_latents(cfg: DataConfig, world: World, z: Array, zeta: Array) -> Array:
    """Noiseless texts h_y(B_z z + B_zeta zeta), (n, dy); pass the masked latent m * z.

    Args:
        cfg: the data config (``mixing`` and ``leaky_slope`` are used).
        world: the dataset's fixed matrices.
        z: shared latents as the caption sees them (m * z for an omitting caption), (n, k).
        zeta: text-unique features, (n, ky).

    Returns:
        Texts without observation noise, (n, dy).
    """
    return _mix(cfg, world.rotation_y, z @ world.shared_y.T + zeta @ world.unique_y.T)


def sample_pairs(cfg: DataConfig, world: World, *, key: Array, n: int) -> Batch:
    """Draw n i.i.d. pairs (x, y) with their latents.

    Args:
        cfg: data config (numeric fields may be traced).
        world: the dataset's fixed matrices.
        key: PRNG key.
        n: number of pairs (static).

    Returns:
        A ``Batch`` with x (n, dx) and y (n, dy).
    """
    k_z, k_xi, k_zeta, k_m, k_ex, k_ey = jax.random.split(key, 6)
    z, labels = get_latent_family(cfg.family).sample(cfg, world.centres, k_z, n)
    dtype = world.shared_x.dtype
    xi = cfg.image_unique_scale * jax.random.normal(k_xi, (n, cfg.image_unique_dim), dtype)
    zeta = cfg.text_unique_scale * jax.random.normal(k_zeta, (n, cfg.text_unique_dim), dtype)
    mask = jax.random.bernoulli(k_m, 1.0 - _prob(cfg.omit_prob, dtype), z.shape).astype(dtype)
    x = image_from_latents(cfg, world, z, xi)
    x = x + cfg.noise_scale * jax.random.normal(k_ex, x.shape, dtype)
    y = text_from_latents(cfg, world, mask * z, zeta)
    y = y + cfg.noise_scale * jax.random.normal(k_ey, y.shape, dtype)
    return Batch(x=x, y=y, z=z, xi=xi, zeta=zeta, mask=mask, labels=labels)

def sample_caption_pairs(cfg: DataConfig, world: World, *, key: Array, num_images: int) -> Batch:
    """A list of (image, caption) pairs: ``num_images`` images with M captions each.

    Each image is one draw of z, xi and eps_x; each of its M =
    ``cfg.captions_per_image`` captions draws its own mask m, zeta and eps_y given
    that z (conditional independence holds within an image too). Pairs are
    image-major: pair p shows image p // M, so the M pairs of an image share their
    x and z exactly (unexpected positives when they meet in a batch).

    Args:
        cfg: data config (numeric fields may be traced).
        world: the dataset's fixed matrices.
        key: PRNG key.
        num_images: number of images (static).

    Returns:
        A ``Batch`` of ``num_images * M`` pairs.
    """
    m = cfg.captions_per_image
    n = num_images * m
    k_z, k_xi, k_zeta, k_m, k_ex, k_ey = jax.random.split(key, 6)
    z, labels = get_latent_family(cfg.family).sample(cfg, world.centres, k_z, num_images)
    dtype = world.shared_x.dtype
    xi = cfg.image_unique_scale * jax.random.normal(k_xi, (num_images, cfg.image_unique_dim),
                                                    dtype)
    x = image_from_latents(cfg, world, z, xi)
    x = x + cfg.noise_scale * jax.random.normal(k_ex, x.shape, dtype)
    z, labels, xi, x = (jnp.repeat(a, m, axis=0) for a in (z, labels, xi, x))
    zeta = cfg.text_unique_scale * jax.random.normal(k_zeta, (n, cfg.text_unique_dim), dtype)
    mask = jax.random.bernoulli(k_m, 1.0 - _prob(cfg.omit_prob, dtype), z.shape).astype(dtype)
    y = text_from_latents(cfg, world, mask * z, zeta)
    y = y + cfg.noise_scale * jax.random.normal(k_ey, y.shape, dtype)
    return Batch(x=x, y=y, z=z, xi=xi, zeta=zeta, mask=mask, labels=labels)


def draw_pairs(pool: Batch, *, key: Array, n: int) -> Batch:
    """n pairs drawn uniformly without replacement from a pair list (a training batch).

    Args:
        pool: a ``Batch`` of N >= n pairs (e.g. from ``sample_caption_pairs``).
        key: PRNG key.
        n: number of pairs drawn (static).

    Returns:
        A ``Batch`` of n distinct pairs of ``pool``.
    """
    size = pool.x.shape[0]
    if n > size:
        raise ValueError(f"draw_pairs: n = {n} is larger than the pair list ({size} pairs)")
    idx = jax.random.choice(key, size, (n,), replace=False)
    return jax.tree.map(lambda a: a[idx], pool)


def prompts(cfg: DataConfig, world: World, *, key: Array | None = None,
            num_prompts: int = 1) -> Array:
    """Class prompts for zero-shot classification.

    With ``num_prompts == 1`` the prompt of class c is the "appropriate prompt":
    the text of z_c with no unique features, no omission and no noise. With
    P > 1 it is P captions of z_c sampled like training texts (unique features,
    omission, noise), to be embedded and averaged (prompt ensembling).

    Args:
        cfg: the data config.
        world: the dataset's fixed matrices (its ``centres`` are the class latents).
        key: PRNG key; required when ``num_prompts > 1``.
        num_prompts: P, captions per class (static).

    Returns:
        (C, 1, dy) or (C, P, dy) texts; embed, then average over axis 1.
    """
    centres = world.centres
    if num_prompts == 1:
        zeta = jnp.zeros((centres.shape[0], cfg.text_unique_dim), centres.dtype)
        return text_from_latents(cfg, world, centres, zeta)[:, None, :]
    if key is None:
        raise ValueError("prompts: a key is required when num_prompts > 1")
    c, p, dtype = centres.shape[0], num_prompts, centres.dtype
    k_zeta, k_m, k_e = jax.random.split(key, 3)
    z = jnp.repeat(centres, p, axis=0)
    zeta = cfg.text_unique_scale * jax.random.normal(k_zeta, (c * p, cfg.text_unique_dim),
                                                     dtype)
    mask = jax.random.bernoulli(k_m, 1.0 - _prob(cfg.omit_prob, dtype), z.shape).astype(dtype)
    y = text_from_latents(cfg, world, mask * z, zeta)
    y = y + cfg.noise_scale * jax.random.normal(k_e, y.shape, y.dtype)
    return y.reshape(c, p, -1)


def sample_test_images(
    cfg: DataConfig,
    world: World,
    *,
    key: Array,
    n: int,
    class_probs: tuple[float, ...] | None = None,
    image_unique_scale: float | Array | None = None,
    noise_scale: float | Array | None = None,
) -> Batch:
    """Labelled test images for zero-shot evaluation, optionally shifted.

    Classes are drawn from ``class_probs`` (default: the training prior); each
    image shows its class latent (``onehot``/``sparse``: the single concept e_c;
    ``gaussian``: a draw around the centre). ``image_unique_scale`` and
    ``noise_scale`` override sigma_xi and sigma_noise (a feature shift).

    Args:
        cfg: the data config.
        world: the dataset's fixed matrices.
        key: PRNG key.
        n: number of images (static).
        class_probs: class prior of the test set (default: the training prior).
        image_unique_scale: sigma_xi of the test images (default: ``cfg.image_unique_scale``).
        noise_scale: sigma_noise of the test images (default: ``cfg.noise_scale``).

    Returns:
        A ``Batch`` whose ``y``, ``zeta`` and ``mask`` are empty/unused (shape (n, 0)
        for y and zeta, ones for mask).
    """
    k_c, k_z, k_xi, k_e = jax.random.split(key, 4)
    dtype = world.shared_x.dtype
    log_p = class_log_probs(cfg, class_probs, dtype=dtype)
    labels = jax.random.categorical(k_c, log_p, shape=(n,)).astype(jnp.int32)
    z = get_latent_family(cfg.family).sample_class(cfg, world.centres, k_z, labels)
    sigma_xi = cfg.image_unique_scale if image_unique_scale is None else image_unique_scale
    sigma_n = cfg.noise_scale if noise_scale is None else noise_scale
    xi = sigma_xi * jax.random.normal(k_xi, (n, cfg.image_unique_dim), dtype)
    x = image_from_latents(cfg, world, z, xi)
    x = x + sigma_n * jax.random.normal(k_e, x.shape, dtype)
    empty = jnp.zeros((n, 0), dtype)
    return Batch(x=x, y=empty, z=z, xi=xi, zeta=empty, mask=jnp.ones_like(z), labels=labels)


def oracle_encoders(
    cfg: DataConfig, world: World, *, normalize: bool = True
) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """The oracle encoders f*(x) = A_z^T h_x^{-1}(x) and g*(y) = B_z^T h_y^{-1}(y).

    They project onto the shared coordinates and so ignore unique features by
    construction (docs/theory.md, section 1). Outputs have dimension k and are
    L2-normalized when ``normalize``.

    With nonlinear mixing the oracle first inverts h(u) = leaky_relu(R u):
    h^{-1}(v) = R^T leaky_relu^{-1}(v), applied to the noisy observation.

    Args:
        cfg: the data config.
        world: the dataset's fixed matrices.
        normalize: L2-normalize the outputs.

    Returns:
        (f_star, g_star): functions mapping (n, dx) -> (n, k) and (n, dy) -> (n, k).
    """

    def finish(e: Array) -> Array:
        if not normalize:
            return e
        return e * jax.lax.rsqrt(jnp.maximum(jnp.sum(e * e, -1, keepdims=True), 1e-12))

    def f_star(x: Array) -> Array:
        return finish(_unmix(cfg, world.rotation_x, x) @ world.shared_x)

    def g_star(y: Array) -> Array:
        return finish(_unmix(cfg, world.rotation_y, y) @ world.shared_y)

    return f_star, g_star


def satisfies_conditional_independence(cfg: DataConfig) -> bool:
    """Whether x and y are independent given z (the assumption of E3 in docs/theory.md).

    True for every built-in generator: unique features, caption masks and noise
    are drawn independently of each other and of z.

    Args:
        cfg: the data config.

    Returns:
        True when image and text are conditionally independent given z.
    """
    del cfg
    return True
