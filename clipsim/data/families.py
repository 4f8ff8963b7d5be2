"""Latent families: how the shared latent z and its zero-shot classes are drawn.

A family is three pure functions of a ``DataConfig`` (whose numeric fields may be
traced) and explicit keys:

* ``centres(cfg, key) -> (C, k)``: the class latents z_c (drawn once per dataset);
* ``sample(cfg, centres, key, n) -> (z (n, k), labels (n,) int32)``: training latents
  (labels are class indices, or -1 where the family has no classes);
* ``sample_class(cfg, centres, key, labels) -> (n, k)``: latents of test images of
  the given classes (for zero-shot evaluation).

``discrete`` says whether two independent draws can coincide (THEORY.md E3: only
then are there unexpected positives). Register new families with
``register_latent_family``; the name is then accepted by ``DataConfig.family``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from clipsim import config as _config
from clipsim.config import DataConfig

__all__ = ["LatentFamily", "LATENT_FAMILIES", "register_latent_family", "get_latent_family",
           "class_log_probs"]

Array = jax.Array


@dataclass(frozen=True)
class LatentFamily:
    """A latent family: class centres, training sampler, per-class sampler.

    Attributes:
        name: the value ``DataConfig.family`` takes for this family.
        centres: ``centres(cfg, key) -> (C, k)`` class latents z_c, drawn once per dataset.
        sample: ``sample(cfg, centres, key, n) -> (z (n, k), labels (n,))`` training
            latents and their class indices (-1 where the family has no classes).
        sample_class: ``sample_class(cfg, centres, key, labels) -> (n, k)`` latents of
            test images of the given classes.
        discrete: whether two independent draws can coincide (unexpected positives, E3).
    """

    name: str
    centres: Callable[[DataConfig, Array], Array]
    sample: Callable[[DataConfig, Array, Array, int], tuple[Array, Array]]
    sample_class: Callable[[DataConfig, Array, Array, Array], Array]
    discrete: bool


LATENT_FAMILIES: dict[str, LatentFamily] = {}


def register_latent_family(family: LatentFamily) -> LatentFamily:
    """Add ``family`` to the registry and let ``DataConfig.family`` accept its name.

    Registering a name again replaces the earlier family of that name.

    Args:
        family: a ``LatentFamily`` (name, ``centres``, ``sample``, ``sample_class``,
            ``discrete``); see the module docstring for the three functions' signatures.

    Returns:
        ``family`` itself (so the call can be used as an expression).

    Example:
        >>> import jax.numpy as jnp                                  # doctest: +SKIP
        >>> fam = LatentFamily("ring", centres, sample, sample_class, False)  # doctest: +SKIP
        >>> register_latent_family(fam)                              # doctest: +SKIP
        >>> DataConfig(family="ring")                                # doctest: +SKIP
    """
    LATENT_FAMILIES[family.name] = family
    if family.name not in _config.LATENT_FAMILIES:
        _config.LATENT_FAMILIES.append(family.name)
    return family


def get_latent_family(name: str) -> LatentFamily:
    """The registered family called ``name``.

    Args:
        name: a family name (``onehot``, ``sparse``, ``gaussian`` or a registered one).

    Returns:
        The ``LatentFamily``.

    Raises:
        ValueError: the name is unknown; the message lists the known names.
    """
    try:
        return LATENT_FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown latent family {name!r}; known: {', '.join(sorted(LATENT_FAMILIES))}"
        ) from None


def class_log_probs(cfg: DataConfig, probs: tuple[float, ...] | None = None) -> Array:
    """Log class probabilities, shape (C,): ``probs`` or ``cfg.class_probs`` or uniform.

    Args:
        cfg: the data config (C = ``cfg.num_zero_shot_classes``).
        probs: class probabilities overriding ``cfg.class_probs`` (for a shifted prior).

    Returns:
        log pi, an array of shape (C,).
    """
    probs = cfg.class_probs if probs is None else probs
    n = cfg.num_zero_shot_classes
    if probs is None:
        return jnp.full((n,), -jnp.log(n))
    return jnp.log(jnp.asarray(probs))


def _identity_centres(cfg: DataConfig, key: Array) -> Array:
    del key
    return jnp.eye(cfg.num_concepts)


def _one_hot_class(cfg: DataConfig, centres: Array, key: Array, labels: Array) -> Array:
    del key
    return centres[labels]


def _onehot_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    labels = jax.random.categorical(key, class_log_probs(cfg), shape=(n,))
    return centres[labels], labels.astype(jnp.int32)


def _sparse_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    k = cfg.num_concepts
    if cfg.sparse_active is None:
        z = jax.random.bernoulli(key, cfg.sparse_prob, (n, k))
    else:
        # exactly s active coordinates: the s largest of k uniforms per row
        u = jax.random.uniform(key, (n, k))
        kth = -jnp.sort(-u, axis=1)[:, cfg.sparse_active - 1 : cfg.sparse_active]
        z = u >= kth
    return z.astype(centres.dtype), jnp.full((n,), -1, jnp.int32)


def _gaussian_centres(cfg: DataConfig, key: Array) -> Array:
    return jax.random.normal(key, (cfg.num_classes, cfg.num_concepts))


def _gaussian_class(cfg: DataConfig, centres: Array, key: Array, labels: Array) -> Array:
    noise = jax.random.normal(key, (labels.shape[0], cfg.num_concepts), centres.dtype)
    return centres[labels] + cfg.within_class_std * noise


def _gaussian_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    k_label, k_noise = jax.random.split(key)
    labels = jax.random.categorical(k_label, class_log_probs(cfg), shape=(n,)).astype(jnp.int32)
    return _gaussian_class(cfg, centres, k_noise, labels), labels


register_latent_family(
    LatentFamily("onehot", _identity_centres, _onehot_sample, _one_hot_class, True))
register_latent_family(
    LatentFamily("sparse", _identity_centres, _sparse_sample, _one_hot_class, True))
register_latent_family(
    LatentFamily("gaussian", _gaussian_centres, _gaussian_sample, _gaussian_class, False)
)
