"""E3: the loss floor set by unexpected positives (docs/theory.md, E3)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy import special, stats

from clipsim.theory._checks import (
    check_int,
    check_ndim,
    check_probs,
    check_real,
    check_unit_open,
    result_type,
)

__all__ = [
    "CollisionFloor",
    "MonteCarloCheck",
    "caption_collision_floor",
    "clip_floor_check",
    "collision_floor",
    "collision_floor_monte_carlo",
    "collision_floor_onehot",
    "family_caption_floor",
    "family_floor",
    "latent_collision_counts",
    "mean_loss_upper_check",
]

LatentSampler = Callable[[jax.Array, int], ArrayLike]


@result_type
class CollisionFloor:
    """The E3 floor ``E[log n_i]``.

    Attributes:
        value: The floor (exact, or a Monte Carlo mean over batches).
        stderr: 0 when exact; else the standard error over batches.
    """

    value: float
    stderr: float


@result_type
class MonteCarloCheck:
    """An inequality between two estimated sides, checked within ``n_sigma`` errors.

    Attributes:
        value: The side that should obey the bound (for example a mean loss).
        bound: The bound (a floor or a ceiling).
        holds: The inequality holds within ``n_sigma * stderr``.
        stderr: Combined standard error ``sqrt(se_value^2 + se_bound^2)``.
        n_sigma: Tolerance in standard errors.
    """

    value: float
    bound: float
    holds: bool
    stderr: float
    n_sigma: float


def _floor_from_masses(batch_size: int, masses: np.ndarray,
                       multiplicities: np.ndarray) -> float:
    r"""``sum_c mult_c q_c E[log(1 + Binomial(B - 1, q_c))]`` summed exactly."""
    k = np.arange(batch_size)
    masses = np.asarray(masses, dtype=np.float64)
    keep = masses > 0
    masses, multiplicities = masses[keep], np.asarray(multiplicities, np.float64)[keep]
    pmf = stats.binom.pmf(k[None, :], batch_size - 1, masses[:, None])  # (C, B)
    per_class = pmf @ np.log1p(k)
    return float(np.sum(multiplicities * masses * per_class))


def collision_floor_onehot(batch_size: int, probs: int | ArrayLike) -> CollisionFloor:
    r"""Exact E3 floor for one-hot latents: ``E[log n_i]`` with ``n_i`` the class count.

    .. math::
        \mathbb E[\log n_i] = \sum_{c=1}^{K} \pi_c \sum_{k=0}^{B-1}
        \binom{B-1}{k} \pi_c^{k} (1 - \pi_c)^{B-1-k} \log(1 + k).

    Proof sketch: given that row ``i`` has class ``c`` (probability ``pi_c``),
    the other ``B - 1`` rows fall in class ``c`` independently with
    probability ``pi_c``, so ``n_i - 1 ~ Binomial(B - 1, pi_c)``; sum the
    binomial pmf against ``log(1 + k)``. ``K = 1`` gives ``log B``; as
    ``K -> infinity`` (uniform) the floor tends to 0 like ``(B - 1) log 2 / K``.

    Args:
        batch_size: ``B >= 2``.
        probs: Class probabilities ``pi`` (1-D, non-negative, summing to 1), or an
            integer ``K >= 1`` for uniform probabilities over ``K`` classes.

    Returns:
        A :class:`CollisionFloor` with ``stderr = 0``.

    Example:
        >>> round(collision_floor_onehot(4, 1).value, 6) == round(math.log(4), 6)
        True
    """
    check_int("batch_size", batch_size, 2)
    if isinstance(probs, (int, np.integer)) and not isinstance(probs, bool):
        check_int("probs", probs, 1)
        value = _floor_from_masses(batch_size, np.array([1.0 / probs]), np.array([probs]))
    else:
        check_probs("probs", probs)
        pi = np.asarray(probs, dtype=np.float64)
        pi = pi / pi.sum()
        value = _floor_from_masses(batch_size, pi, np.ones_like(pi))
    return CollisionFloor(value=value, stderr=0.0)


def collision_floor(
    family: str,
    batch_size: int,
    *,
    num_concepts: int | None = None,
    class_probs: ArrayLike | None = None,
    sparse_prob: float | None = None,
    sparse_active: int | None = None,
) -> CollisionFloor:
    r"""Exact E3 floor for the built-in latent families (docs/theory.md, section 1).

    * ``onehot``: :func:`collision_floor_onehot` with ``class_probs`` (or uniform
      over ``num_concepts``).
    * ``sparse`` with ``sparse_active = s``: ``z`` uniform over the
      ``N = binom(k, s)`` subsets, i.e. one-hot over ``N`` equally likely values.
    * ``sparse`` with ``sparse_prob = p`` (``sparse_active`` None): independent
      Bernoulli(p) coordinates, the all-zero vector included. A pattern of weight
      ``w`` has mass ``q_w = p^w (1-p)^(k-w)`` and there are ``binom(k, w)`` of them:

      .. math::
          \mathbb E[\log n_i] = \sum_{w=0}^{k} \binom{k}{w} q_w\,
          \mathbb E\bigl[\log\bigl(1 + \mathrm{Bin}(B-1, q_w)\bigr)\bigr].
    * ``gaussian``: 0 (continuous latents collide with probability 0). A
      Gaussian family with zero within-class spread is one-hot over its class
      centres; pass ``family="onehot"`` for it.

    Proof sketch: as in :func:`collision_floor_onehot`, condition on the value of
    ``z_i``; the other rows hit that value independently with its mass. For a
    generator that draws latents otherwise, use
    :func:`collision_floor_monte_carlo` with its sampler.

    Args:
        family: ``"onehot"``, ``"sparse"`` or ``"gaussian"``.
        batch_size: ``B >= 2``.
        num_concepts: ``k`` (``K`` for one-hot); needed except for ``gaussian`` or
            when ``class_probs`` is given.
        class_probs: One-hot class probabilities; None for uniform.
        sparse_prob: ``p`` in ``(0, 1)`` of the Bernoulli sparse family.
        sparse_active: ``s`` in ``[1, k]`` of the exactly-``s`` sparse family.

    Returns:
        A :class:`CollisionFloor` with ``stderr = 0``.
    """
    check_int("batch_size", batch_size, 2)
    if family == "gaussian":
        return CollisionFloor(value=0.0, stderr=0.0)
    if family == "onehot":
        if class_probs is not None:
            return collision_floor_onehot(batch_size, class_probs)
        if num_concepts is None:
            raise ValueError("num_concepts = None is invalid: the onehot family needs "
                             "num_concepts >= 1 or class_probs")
        check_int("num_concepts", num_concepts, 1)
        return collision_floor_onehot(batch_size, int(num_concepts))
    if family == "sparse":
        if num_concepts is None:
            raise ValueError("num_concepts = None is invalid: the sparse family needs "
                             "num_concepts >= 1")
        check_int("num_concepts", num_concepts, 1)
        k = int(num_concepts)
        if sparse_active is not None:
            check_int("sparse_active", sparse_active, 1, k)
            n_values = math.comb(k, int(sparse_active))
            value = _floor_from_masses(batch_size, np.array([1.0 / n_values]),
                                       np.array([float(n_values)]))
            return CollisionFloor(value=value, stderr=0.0)
        if sparse_prob is None:
            raise ValueError("sparse_prob = None is invalid: the sparse family needs "
                             "sparse_prob in (0, 1) or sparse_active")
        check_unit_open("sparse_prob", sparse_prob)
        w = np.arange(k + 1)
        masses = np.exp(w * math.log(sparse_prob) + (k - w) * math.log1p(-sparse_prob))
        value = _floor_from_masses(batch_size, masses, special.comb(k, w))
        return CollisionFloor(value=value, stderr=0.0)
    raise ValueError(f"family = {family!r} is invalid: must be one of 'onehot', 'sparse', "
                     "'gaussian'")


@jax.jit
def _counts(latents: jnp.ndarray) -> jnp.ndarray:
    same = jnp.all(latents[..., :, None, :] == latents[..., None, :, :], axis=-1)
    return jnp.sum(same, axis=-1)


@jax.jit
def _mean_log_counts(latents: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(jnp.log(_counts(latents).astype(jnp.result_type(float))), axis=-1)


def latent_collision_counts(latents: ArrayLike) -> jnp.ndarray:
    r"""``n_i = #{j : z_j = z_i}`` for every row of a batch of latents (``n_i >= 1``).

    .. math::
        n_i = \sum_{j=1}^{B} \mathbf 1[z_j = z_i] \quad\text{(exact equality of rows)}.

    Args:
        latents: Latents, shape ``(B, k)`` or batched ``(..., B, k)``.

    Returns:
        Integer counts, shape ``(B,)`` (or ``(..., B)``). Jittable.
    """
    latents = jnp.asarray(latents)
    if latents.ndim < 2:
        raise ValueError(f"latents must have shape (B, k) or (..., B, k), got {latents.shape}")
    return _counts(latents)


def collision_floor_monte_carlo(
    sample_latents: LatentSampler,
    batch_size: int,
    num_batches: int,
    *,
    key: jax.Array,
    chunk: int | None = None,
) -> CollisionFloor:
    r"""Monte Carlo E3 floor: mean over batches of ``(1/B) sum_i log n_i``.

    .. math::
        \widehat{\mathbb E}[\log n_i] = \frac{1}{N}\sum_{t=1}^{N} \frac{1}{B}
        \sum_{i=1}^{B} \log n_i^{(t)},

    with standard error the sample std of the ``N`` batch means over ``sqrt(N)``
    (batches are independent; rows within a batch are not).

    Args:
        sample_latents: ``sample_latents(key, n)`` returns ``n`` i.i.d. latents,
            shape ``(n, k)``. Rows are compared with exact equality, so discrete
            latents should be stored exactly (one-hot or 0/1 floats are).
        batch_size: ``B >= 2``.
        num_batches: ``N >= 2``.
        key: PRNG key.
        chunk: Batches drawn per sampler call; default keeps each call near
            ``2**22`` latent rows.

    Returns:
        A :class:`CollisionFloor` with the mean and its standard error.
    """
    check_int("batch_size", batch_size, 2)
    check_int("num_batches", num_batches, 2)
    if chunk is None:
        chunk = max(1, min(num_batches, (1 << 22) // (batch_size * batch_size)))
    check_int("chunk", chunk, 1)
    means = []
    done = 0
    while done < num_batches:
        m = min(chunk, num_batches - done)
        key, sub = jax.random.split(key)
        z = jnp.asarray(sample_latents(sub, m * batch_size))
        check_ndim("sample_latents(key, n)", z, 2)
        if z.shape[0] != m * batch_size:
            raise ValueError(f"sample_latents(key, n) must return n = {m * batch_size} rows, "
                             f"got shape {z.shape}")
        means.append(np.asarray(_mean_log_counts(z.reshape(m, batch_size, -1)),
                                dtype=np.float64))
        done += m
    batch_means = np.concatenate(means)
    return CollisionFloor(
        value=float(batch_means.mean()),
        stderr=float(batch_means.std(ddof=1) / math.sqrt(num_batches)),
    )


def family_floor(
    family: Any,
    data_config: Any,
    batch_size: int,
    *,
    key: jax.Array,
    num_batches: int | None = None,
) -> CollisionFloor:
    r"""E3 floor ``E[log n_i]`` of a latent family, asked through the family object itself.

    * ``family.discrete`` False (continuous latents): the floor is 0. Two
      independent draws of a continuous distribution coincide with probability
      0, so ``n_i = 1`` almost surely and ``E[log n_i] = 0``. (0 is a valid floor
      for every family, since every row loss is ``>= 0``.)
    * ``family.discrete`` True and ``family.value_masses`` given: exact. With
      ``(q_v, mult_v) = family.value_masses(data_config)`` (the mass of each
      distinct latent value and how many values share it),

      .. math::
          \mathbb E[\log n_i] = \sum_v \mathrm{mult}_v\, q_v\,
          \mathbb E\bigl[\log\bigl(1 + \mathrm{Bin}(B-1, q_v)\bigr)\bigr].
    * ``family.discrete`` True and no ``value_masses``: a Monte Carlo estimate
      over in-batch collision counts. Class latents come from
      ``family.centres(data_config, key, float32)``, then ``num_batches``
      batches of ``batch_size`` latents from
      ``family.sample(data_config, centres, key, n)``, and
      :func:`collision_floor_monte_carlo` averages ``(1/B) sum_i log n_i``.

    The family is never named: any object with these attributes (a
    :class:`clipsim.data.LatentFamily`) works, so a registered custom family gets
    its floor like a built-in one.

    Args:
        family: A latent family (``discrete``, ``value_masses``, ``centres``, ``sample``).
        data_config: The ``DataConfig`` the family samples under.
        batch_size: ``B >= 2``.
        key: PRNG key of the Monte Carlo draw (unused when the floor is exact).
        num_batches: Monte Carlo batches ``>= 2``; default ``max(256, 2**18 // B)``
            (about ``2**18`` latent rows, standard error near 1e-3 at ``B = 128``).

    Returns:
        A :class:`CollisionFloor`: ``(0, 0)`` for a continuous family, the exact
        value with ``stderr = 0`` when the family gives its value masses, else the
        Monte Carlo mean and its standard error over batches.
    """
    check_int("batch_size", batch_size, 2)
    if not bool(family.discrete):
        return CollisionFloor(value=0.0, stderr=0.0)
    value_masses = getattr(family, "value_masses", None)
    if value_masses is not None:
        masses, multiplicities = value_masses(data_config)
        masses = np.asarray(masses, dtype=np.float64)
        multiplicities = np.asarray(multiplicities, dtype=np.float64)
        if masses.shape != multiplicities.shape or masses.ndim != 1:
            raise ValueError(f"family {family.name!r}: value_masses must return two 1-D "
                             f"arrays of equal length, got shapes {masses.shape} and "
                             f"{multiplicities.shape}")
        total = float(np.sum(masses * multiplicities))
        if np.any(masses < 0) or abs(total - 1.0) > 1e-6:
            raise ValueError(f"family {family.name!r}: value_masses must be non-negative "
                             f"with sum(mult * q) = 1, got {total!r}")
        return CollisionFloor(value=_floor_from_masses(batch_size, masses, multiplicities),
                              stderr=0.0)
    if num_batches is None:
        num_batches = max(256, (1 << 18) // batch_size)
    check_int("num_batches", num_batches, 2)
    k_centres, k_batches = jax.random.split(key)
    centres = family.centres(data_config, k_centres, jnp.float32)

    def sample(k: jax.Array, n: int) -> jax.Array:
        return family.sample(data_config, centres, k, n)[0]

    return collision_floor_monte_carlo(jax.jit(sample, static_argnums=1), batch_size,
                                       num_batches, key=k_batches)


def _mc_check(value: float, value_stderr: float, bound: float, bound_stderr: float,
              n_sigma: float, lower: bool, names: tuple[str, str, str, str]) -> MonteCarloCheck:
    check_real(names[0], value)
    check_real(names[1], value_stderr, low=0.0)
    check_real(names[2], bound)
    check_real(names[3], bound_stderr, low=0.0)
    check_real("n_sigma", n_sigma, low=0.0)
    se = math.hypot(float(value_stderr), float(bound_stderr))
    slack = n_sigma * se
    holds = value >= bound - slack if lower else value <= bound + slack
    return MonteCarloCheck(value=float(value), bound=float(bound), holds=bool(holds),
                           stderr=se, n_sigma=float(n_sigma))


def clip_floor_check(
    mean_loss: float,
    loss_stderr: float,
    floor: float,
    floor_stderr: float = 0.0,
    n_sigma: float = 3.0,
) -> MonteCarloCheck:
    r"""Checks E3, ``E[L_clip] >= E[log n_i]``, within Monte Carlo error.

    .. math::
        \text{holds} \iff \bar L \;\ge\; \text{floor} - n_\sigma
        \sqrt{\mathrm{se}_L^2 + \mathrm{se}_{\text{floor}}^2}.

    Proof sketch of E3: condition on the batch latents and on ``x_i``. Under
    conditional independence of image and text given ``z``, the texts ``y_j``
    with ``z_j = z_i`` (``j = i`` included) are exchangeable, so the softmax
    probabilities have ``E[p_ii] = E[p_ij]`` for each of them; they sum to at
    most 1, so ``E[p_ii | latents] <= 1/n_i``. Jensen on ``-log``:
    ``E[l_i | latents] = E[-log p_ii | latents] >= log n_i``. The column loss is
    the same argument with the roles of images and texts swapped (the images
    ``x_j`` sharing ``z_i`` are exchangeable given ``y_i``), so *both* CLIP
    directions, and their mean ``L_clip``, share the floor ``E[log n_i]``.

    Args:
        mean_loss: Estimated ``E[L_clip]`` (or of one direction).
        loss_stderr: Its standard error, ``>= 0``.
        floor: The floor (exact or Monte Carlo).
        floor_stderr: Its standard error (0 when exact).
        n_sigma: Tolerance in combined standard errors, ``>= 0``.

    Returns:
        A :class:`MonteCarloCheck` with ``value = mean_loss`` and ``bound = floor``.
    """
    return _mc_check(mean_loss, loss_stderr, floor, floor_stderr, n_sigma, lower=True,
                     names=("mean_loss", "loss_stderr", "floor", "floor_stderr"))


def mean_loss_upper_check(
    mean_loss: float,
    loss_stderr: float,
    bound: float,
    bound_stderr: float = 0.0,
    n_sigma: float = 3.0,
) -> MonteCarloCheck:
    r"""Checks an upper bound on an expected loss (E4) within Monte Carlo error.

    .. math::
        \text{holds} \iff \bar L \;\le\; \text{bound} + n_\sigma
        \sqrt{\mathrm{se}_L^2 + \mathrm{se}_{\text{bound}}^2}.

    Args:
        mean_loss: Estimated expected row loss.
        loss_stderr: Its standard error, ``>= 0``.
        bound: The upper bound, for example
            :attr:`~clipsim.theory.PairStatisticsBound.jensen`.
        bound_stderr: Its standard error.
        n_sigma: Tolerance in combined standard errors, ``>= 0``.

    Returns:
        A :class:`MonteCarloCheck` with ``value = mean_loss``.
    """
    return _mc_check(mean_loss, loss_stderr, bound, bound_stderr, n_sigma, lower=False,
                     names=("mean_loss", "loss_stderr", "bound", "bound_stderr"))


def caption_collision_floor(
    batch_size: int,
    captions_per_image: int,
    num_images: int,
    masses: ArrayLike | None = None,
    multiplicities: ArrayLike | None = None,
) -> CollisionFloor:
    r"""Exact E3 floor ``E[log n_i]`` with M captions per image and batches drawn from the pairs.

    A dataset of ``N`` images, each with ``M`` captions (``N M`` pairs); the image
    latents are i.i.d. from a family with value masses ``q_v`` (``mult_v`` values
    of each mass); a batch is ``B`` pairs drawn uniformly without replacement from
    the ``N M`` pairs. For pair ``i`` with latent value ``v``, let ``K`` be the number
    of *other* images with latent ``v``, ``K ~ Binomial(N - 1, q_v)``. Given ``K``,
    the pool holds ``M - 1 + M K`` other pairs with latent ``v`` (the other captions
    of the same image and every caption of the ``K`` images) among ``N M - 1``, so
    ``n_i - 1 ~ Hypergeometric(N M - 1, M - 1 + M K, B - 1)`` and

    .. math::
        \mathbb E[\log n_i] = \sum_v \mathrm{mult}_v\, q_v \sum_{K=0}^{N-1}
        \binom{N-1}{K} q_v^K (1 - q_v)^{N-1-K}\,
        \mathbb E\bigl[\log\bigl(1 + \mathrm{Hyp}(NM - 1,\, M - 1 + MK,\, B - 1)\bigr)\bigr].

    The expectation is over the dataset draw and the batch draw; E3 applies to a
    model fixed with respect to both (a held-out dataset). A continuous family
    (``masses`` None) has ``K = 0``: only same-image pairs collide. ``M = 1`` gives
    the floor of a finite pool of ``N`` pairs, which tends to
    :func:`collision_floor` as ``N`` grows.

    Args:
        batch_size: ``B >= 2``, at most ``N M``.
        captions_per_image: ``M >= 1``.
        num_images: ``N >= 1``.
        masses: the family's value masses ``q_v`` (1-D), or None for a continuous family.
        multiplicities: how many values have each mass (1-D, same length); default ones.

    Returns:
        A :class:`CollisionFloor` with ``stderr = 0``.
    """
    check_int("batch_size", batch_size, 2)
    check_int("captions_per_image", captions_per_image, 1)
    check_int("num_images", num_images, 1)
    m, n_img, b = int(captions_per_image), int(num_images), int(batch_size)
    pool = n_img * m
    if b > pool:
        raise ValueError(f"batch_size = {b} is invalid: must be <= num_images * "
                         f"captions_per_image = {pool} (batches are drawn without replacement)")
    s = np.arange(b)
    if masses is None:
        pmf = stats.hypergeom.pmf(s, pool - 1, m - 1, b - 1)
        return CollisionFloor(value=float(pmf @ np.log1p(s)), stderr=0.0)
    q = np.asarray(masses, np.float64)
    mult = np.ones_like(q) if multiplicities is None else np.asarray(multiplicities, np.float64)
    if q.ndim != 1 or q.shape != mult.shape:
        raise ValueError(f"masses and multiplicities must be 1-D of equal length, got shapes "
                         f"{q.shape} and {mult.shape}")
    if np.any(q < 0) or abs(float(np.sum(q * mult)) - 1.0) > 1e-6:
        raise ValueError("masses must be >= 0 with sum(multiplicities * masses) = 1")
    k = np.arange(n_img)
    # E[log(1 + Hyp(NM - 1, M - 1 + M K, B - 1))] for every K, (N,)
    successes = np.minimum(m - 1 + m * k, pool - 1)
    per_k = stats.hypergeom.pmf(s[None, :], pool - 1, successes[:, None], b - 1) @ np.log1p(s)
    total = 0.0
    for qv, mv in zip(q, mult, strict=True):
        if qv <= 0:
            continue
        total += mv * qv * float(stats.binom.pmf(k, n_img - 1, qv) @ per_k)
    return CollisionFloor(value=total, stderr=0.0)


def family_caption_floor(family: Any, data_config: Any, batch_size: int,
                         num_images: int) -> CollisionFloor:
    r""":func:`caption_collision_floor` of a latent family, with ``data_config.captions_per_image``.

    Continuous family (``family.discrete`` False): same-image collisions only.
    Discrete family: its ``value_masses(data_config)``; a discrete family without
    them has no exact floor here (``ValueError``).

    Args:
        family: a latent family (``discrete``, ``value_masses``).
        data_config: the ``DataConfig`` (``captions_per_image`` = M is read from it).
        batch_size: ``B >= 2``.
        num_images: ``N``, images of the dataset the batches are drawn from.

    Returns:
        A :class:`CollisionFloor` with ``stderr = 0``.
    """
    m = int(getattr(data_config, "captions_per_image", 1))
    if not bool(family.discrete):
        return caption_collision_floor(batch_size, m, num_images)
    if getattr(family, "value_masses", None) is None:
        raise ValueError(f"family {family.name!r} gives no value masses: no exact floor with "
                         "several captions per image")
    masses, mult = family.value_masses(data_config)
    return caption_collision_floor(batch_size, m, num_images, masses, mult)
