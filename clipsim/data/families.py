"""Latent families: how the shared latent z and its zero-shot classes are drawn.

A family is three pure functions of a ``DataConfig`` (whose numeric fields may be
traced) and explicit keys, plus a description of itself:

* ``centres(cfg, key, dtype) -> (C, k)``: the class latents z_c (drawn once per dataset);
* ``sample(cfg, centres, key, n) -> (z (n, k), labels (n,) int32)``: training latents
  (labels are class indices, or -1 where the family has no classes), in ``centres.dtype``;
* ``sample_class(cfg, centres, key, labels) -> (n, k)``: latents of test images of
  the given classes (for zero-shot evaluation), in ``centres.dtype``;
* what it is: ``discrete``, ``num_classes(cfg)``, ``class_prior``, ``value_masses(cfg)``
  (see ``LatentFamily``). ``clipsim.config`` validates against these and the
  theory calculators ask them, so neither names a family.

Every random draw names its dtype (the dtype of ``centres``, or the ``dtype``
argument), so the numbers never depend on whether 64-bit JAX is switched on.

The registry is ``LATENT_FAMILIES`` (the same object as ``clipsim.config.LATENT_FAMILIES``):
``register_latent_family`` adds a family, and ``DataConfig.family`` then accepts its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from clipsim import config as _config
from clipsim.config import DataConfig

__all__ = ["LatentFamily", "LATENT_FAMILIES", "register_latent_family", "get_latent_family",
           "class_log_probs"]

Array = jax.Array
DType = Any


@dataclass(frozen=True)
class LatentFamily:
    """A latent family: its three samplers and a description of itself.

    Attributes:
        name: the value ``DataConfig.family`` takes for this family.
        centres: ``centres(cfg, key, dtype) -> (C, k)`` class latents z_c, drawn once
            per dataset in ``dtype``.
        sample: ``sample(cfg, centres, key, n) -> (z (n, k), labels (n,) int32)``
            training latents in ``centres.dtype`` and their class indices (-1 where
            the family has no classes).
        sample_class: ``sample_class(cfg, centres, key, labels) -> (n, k)`` latents of
            test images of the given classes, in ``centres.dtype``.
        discrete: whether two independent draws can coincide, i.e. whether a batch
            can hold unexpected positives (E3); False means the E3 floor is 0.
        classes_from: the ``DataConfig`` field that holds C, the number of zero-shot
            classes (``num_concepts`` for one-hot and sparse latents, whose classes
            are the k single concepts; ``num_classes`` for Gaussian clusters).
        class_prior: whether training latents are drawn class by class from the prior
            pi (so ``DataConfig.class_probs`` applies to this family).
        value_masses: for a discrete family, ``value_masses(cfg) -> (masses,
            multiplicities)``: the probability q_v of each distinct latent value and
            how many values share it (NumPy float64 arrays of equal length), so the
            E3 floor is ``sum_v mult_v q_v E[log(1 + Binomial(B - 1, q_v))]`` (the
            theory's ``collision_floor``); None when the family cannot say (a
            Monte Carlo estimate is then needed) or is continuous.

    Methods:
        num_classes(cfg): C, the number of zero-shot classes of ``cfg`` (>= 1).
    """

    name: str
    centres: Callable[[DataConfig, Array, DType], Array]
    sample: Callable[[DataConfig, Array, Array, int], tuple[Array, Array]]
    sample_class: Callable[[DataConfig, Array, Array, Array], Array]
    discrete: bool
    classes_from: str = "num_concepts"
    class_prior: bool = True
    value_masses: Callable[[DataConfig], tuple[np.ndarray, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LatentFamily.name must be a non-empty string, got {self.name!r}")
        for attr in ("centres", "sample", "sample_class"):
            if not callable(getattr(self, attr)):
                raise ValueError(f"LatentFamily {self.name!r}: {attr} must be callable")
        if self.classes_from not in ("num_concepts", "num_classes"):
            raise ValueError(f"LatentFamily {self.name!r}: classes_from = "
                             f"{self.classes_from!r} is invalid: must be 'num_concepts' or "
                             "'num_classes'")

    def num_classes(self, cfg: DataConfig) -> int:
        """C, the number of zero-shot classes: ``getattr(cfg, self.classes_from)``."""
        return int(getattr(cfg, self.classes_from))


LATENT_FAMILIES: _config.Registry[LatentFamily] = _config.LATENT_FAMILIES
"""Registered families by name (the registry ``DataConfig.family`` is checked against)."""


def register_latent_family(family: LatentFamily, *, replace: bool = False) -> LatentFamily:
    """Add ``family`` to the registry and let ``DataConfig.family`` accept its name.

    Args:
        family: a ``LatentFamily`` (see its attributes for the three functions'
            signatures and the description it must give).
        replace: allow replacing a family already registered under this name.

    Returns:
        ``family`` itself (so the call can be used as an expression).

    Raises:
        ValueError: ``family`` is not a ``LatentFamily``, or its name is already
            registered and ``replace`` is False.

    Example:
        >>> fam = LatentFamily("ring", centres, sample, sample_class, False)  # doctest: +SKIP
        >>> register_latent_family(fam)                              # doctest: +SKIP
        >>> DataConfig(family="ring")                                # doctest: +SKIP
    """
    if not isinstance(family, LatentFamily):
        raise ValueError(f"register_latent_family: expected a LatentFamily, got {family!r}")
    return LATENT_FAMILIES.register(family.name, family, replace=replace)


def get_latent_family(name: str) -> LatentFamily:
    """The registered family called ``name``.

    Args:
        name: a family name (``onehot``, ``sparse``, ``gaussian`` or a registered one).

    Returns:
        The ``LatentFamily``.

    Raises:
        ValueError: the name is unknown; the message lists the known names.
    """
    return LATENT_FAMILIES.lookup(name)


def class_log_probs(cfg: DataConfig, probs: tuple[float, ...] | None = None, *,
                    dtype: DType = jnp.float32) -> Array:
    """Log class probabilities, shape (C,): ``probs`` or ``cfg.class_probs`` or uniform.

    Args:
        cfg: the data config (C = ``cfg.num_zero_shot_classes``).
        probs: class probabilities overriding ``cfg.class_probs`` (for a shifted prior).
        dtype: dtype of the result (label draws from these logits depend on it).

    Returns:
        log pi, an array of shape (C,) and dtype ``dtype``.
    """
    probs = cfg.class_probs if probs is None else probs
    n = cfg.num_zero_shot_classes
    if probs is None:
        return jnp.full((n,), -jnp.log(jnp.asarray(n, dtype)), dtype)
    return jnp.log(jnp.asarray(probs, dtype))


def _identity_centres(cfg: DataConfig, key: Array, dtype: DType) -> Array:
    del key
    return jnp.eye(cfg.num_concepts, dtype=dtype)


def _one_hot_class(cfg: DataConfig, centres: Array, key: Array, labels: Array) -> Array:
    del key
    return centres[labels]


def _onehot_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    logits = class_log_probs(cfg, dtype=centres.dtype)
    labels = jax.random.categorical(key, logits, shape=(n,))
    return centres[labels], labels.astype(jnp.int32)


def _onehot_masses(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    k = cfg.num_concepts
    if cfg.class_probs is None:
        return np.array([1.0 / k]), np.array([float(k)])
    probs = np.asarray(cfg.class_probs, np.float64)
    return probs / probs.sum(), np.ones_like(probs)


def _sparse_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    k, dtype = cfg.num_concepts, centres.dtype
    if cfg.sparse_active is None:
        z = jax.random.bernoulli(key, jnp.asarray(cfg.sparse_prob, dtype), (n, k))
    else:
        # exactly s active coordinates: the s largest of k uniforms per row
        u = jax.random.uniform(key, (n, k), dtype)
        kth = -jnp.sort(-u, axis=1)[:, cfg.sparse_active - 1 : cfg.sparse_active]
        z = u >= kth
    return z.astype(dtype), jnp.full((n,), -1, jnp.int32)


def _sparse_masses(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    k = cfg.num_concepts
    if cfg.sparse_active is not None:
        n_values = math.comb(k, cfg.sparse_active)
        return np.array([1.0 / n_values]), np.array([float(n_values)])
    p = float(cfg.sparse_prob)
    w = np.arange(k + 1)
    masses = np.exp(w * math.log(p) + (k - w) * math.log1p(-p)) if p < 1 else (w == k) * 1.0
    return masses, np.array([float(math.comb(k, int(i))) for i in w])


def _gaussian_centres(cfg: DataConfig, key: Array, dtype: DType) -> Array:
    return jax.random.normal(key, (cfg.num_classes, cfg.num_concepts), dtype)


def _gaussian_class(cfg: DataConfig, centres: Array, key: Array, labels: Array) -> Array:
    noise = jax.random.normal(key, (labels.shape[0], cfg.num_concepts), centres.dtype)
    return centres[labels] + cfg.within_class_std * noise


def _gaussian_sample(cfg: DataConfig, centres: Array, key: Array, n: int) -> tuple[Array, Array]:
    k_label, k_noise = jax.random.split(key)
    logits = class_log_probs(cfg, dtype=centres.dtype)
    labels = jax.random.categorical(k_label, logits, shape=(n,)).astype(jnp.int32)
    return _gaussian_class(cfg, centres, k_noise, labels), labels


register_latent_family(LatentFamily(
    "onehot", _identity_centres, _onehot_sample, _one_hot_class, discrete=True,
    classes_from="num_concepts", class_prior=True, value_masses=_onehot_masses))
register_latent_family(LatentFamily(
    "sparse", _identity_centres, _sparse_sample, _one_hot_class, discrete=True,
    classes_from="num_concepts", class_prior=False, value_masses=_sparse_masses))
register_latent_family(LatentFamily(
    "gaussian", _gaussian_centres, _gaussian_sample, _gaussian_class, discrete=False,
    classes_from="num_classes", class_prior=True, value_masses=None))
