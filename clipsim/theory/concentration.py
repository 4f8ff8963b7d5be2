"""E6: concentration of the mean batch loss over i.i.d. batches (docs/theory.md, E6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from clipsim.theory._checks import (
    as_float,
    check_int,
    check_ndim,
    check_positive,
    check_real,
    check_unit_open,
    is_concrete,
    result_type,
)
from clipsim.theory.sandwich import score_range_bounds

__all__ = ["ConcentrationCheck", "batch_loss_range", "concentration_check", "concentration_radius",
           "two_sample_radius"]


@result_type
class ConcentrationCheck:
    """One draw of the E6 event: the mean of ``n`` batch losses against the radius.

    Attributes:
        value: ``|mean of the batch losses - expected loss|``.
        bound: The radius ``R sqrt(log(2/delta) / (2n))``.
        holds: ``value <= bound`` (fails with probability at most ``delta``).
        stderr: Standard error of the mean batch loss (sample std / sqrt(n)).
        mean: The mean batch loss.
    """

    value: jnp.ndarray
    bound: jnp.ndarray
    holds: jnp.ndarray
    stderr: jnp.ndarray
    mean: jnp.ndarray


def concentration_radius(
    loss_range: ArrayLike,
    n_batches: int | ArrayLike,
    delta: ArrayLike,
) -> jnp.ndarray:
    r"""Hoeffding radius of the mean of ``n`` i.i.d. batch losses.

    .. math::
        P\Bigl(\Bigl|\frac1n\sum_{t=1}^n L_t - \mathbb E L\Bigr| >
        R\sqrt{\frac{\log(2/\delta)}{2n}}\Bigr) \le \delta .

    Proof sketch: for a fixed model the batch losses ``L_t`` are i.i.d. and
    each lies in an interval of length ``R`` (E1); Hoeffding gives
    ``P(|mean - E| >= t) <= 2 exp(-2 n t^2 / R^2)``; set it to ``delta``. The
    ``B`` pairs inside a batch interact through the softmax, so the count is
    batches ``n``, not samples ``nB``. A model trained on the same batches is
    not fixed; a uniform bound over a model class needs more (P5 measures it).

    Args:
        loss_range: ``R > 0``, the length of an interval holding every batch loss
            (see :func:`batch_loss_range`).
        n_batches: ``n >= 1``.
        delta: Failure probability in ``(0, 1)``.

    Returns:
        The radius, broadcast over the arguments. Jittable.
    """
    check_positive("loss_range", loss_range)
    if is_concrete(n_batches):
        check_real("n_batches", n_batches, low=1.0)
    check_unit_open("delta", delta)
    r = as_float(loss_range)
    return _radius(r, jnp.asarray(n_batches, r.dtype), jnp.asarray(delta, r.dtype))


@jax.jit
def _radius(r: jnp.ndarray, n: jnp.ndarray, delta: jnp.ndarray) -> jnp.ndarray:
    return r * jnp.sqrt(jnp.log(2.0 / delta) / (2.0 * n))


def two_sample_radius(
    loss_range: ArrayLike,
    n_a: int | ArrayLike,
    n_b: int | ArrayLike,
    delta: ArrayLike,
) -> jnp.ndarray:
    r"""Radius for the difference of two means of batch losses of one fixed model.

    .. math::
        P\Bigl(\bigl|\bar L_{n_a} - \bar L_{n_b}\bigr| >
        r_{n_a}(\delta/2) + r_{n_b}(\delta/2)\Bigr) \le \delta,
        \qquad r_n(\delta) = R\sqrt{\log(2/\delta)/(2n)} .

    Proof sketch: each mean is within its own Hoeffding radius of the common
    expectation except with probability ``delta/2``
    (:func:`concentration_radius`); on the intersection of the two events the
    triangle inequality bounds the difference by the sum of the radii, and the
    union bound gives probability at least ``1 - delta``. With ``n_a = n_b = n``
    this is twice the one-sample radius at ``delta/2``: comparing a mean with an
    estimate of the expectation is not comparing it with the expectation, and the
    one-sample radius ``r_n(delta)`` is too small for it. As ``n_b`` grows the
    radius tends to ``r_{n_a}(delta/2)``.

    Args:
        loss_range: ``R > 0`` (see :func:`batch_loss_range`).
        n_a: Batches in the first mean, ``>= 1``.
        n_b: Batches in the second (independent) mean, ``>= 1``.
        delta: Failure probability in ``(0, 1)``.

    Returns:
        The radius, broadcast over the arguments. Jittable.
    """
    check_unit_open("delta", delta)
    half = jnp.asarray(delta, as_float(loss_range).dtype) / 2
    return (concentration_radius(loss_range, n_a, half)
            + concentration_radius(loss_range, n_b, half))


def batch_loss_range(
    batch_size: int,
    temperature: ArrayLike,
    score_bound: ArrayLike,
) -> jnp.ndarray:
    r"""``R`` of E6: the width of the E1 interval holding every batch loss when ``|s| <= M``.

    .. math::
        R = \log\bigl(1 + (B-1) e^{2M/\tau}\bigr) - \log\bigl(1 + (B-1) e^{-2M/\tau}\bigr)
        \;\approx\; \frac{2M}{\tau} + \log(B - 1) \quad(\tau \to 0).

    Proof sketch: every row and column loss lies in the E1 range
    (:func:`~clipsim.theory.score_range_bounds`), hence so does any mean of
    them, such as ``L_clip``. ``R`` grows like ``1/tau``, so the E6 radius does too.

    Args:
        batch_size: ``B >= 2``.
        temperature: ``tau > 0``.
        score_bound: ``M > 0``.

    Returns:
        ``R``, broadcast over the arguments. Jittable.
    """
    rng = score_range_bounds(batch_size, temperature, score_bound)
    return rng.upper - rng.lower


def concentration_check(
    batch_losses: ArrayLike,
    expected_loss: ArrayLike,
    loss_range: ArrayLike,
    delta: ArrayLike,
) -> ConcentrationCheck:
    r"""Whether one sample of ``n`` batch losses stays within the E6 radius of the expectation.

    .. math::
        \text{holds} \iff \Bigl|\frac1n\sum_t L_t - \mathbb E L\Bigr| \le
        R\sqrt{\frac{\log(2/\delta)}{2n}} .

    A single ``False`` is not a violation of E6 (it happens with probability
    up to ``delta``); over many repetitions the failure frequency must stay
    at most ``delta`` up to binomial error.

    Args:
        batch_losses: ``n`` i.i.d. batch losses, shape ``(n,)``, ``n >= 1``.
        expected_loss: Their expectation (or a precise estimate of it).
        loss_range: ``R > 0``.
        delta: In ``(0, 1)``.

    Returns:
        A :class:`ConcentrationCheck`.
    """
    check_ndim("batch_losses", batch_losses, 1)
    n = np.shape(batch_losses)[0]
    check_int("batch_losses (length)", n, 1)
    check_real("expected_loss", expected_loss)
    losses = as_float(batch_losses)
    radius = concentration_radius(loss_range, n, delta)
    return _concentration(losses, jnp.asarray(expected_loss, losses.dtype),
                          jnp.asarray(radius, losses.dtype))


@jax.jit
def _concentration(losses: jnp.ndarray, expected: jnp.ndarray,
                   radius: jnp.ndarray) -> ConcentrationCheck:
    n = losses.shape[0]
    mean = jnp.mean(losses)
    value = jnp.abs(mean - expected)
    stderr = jnp.std(losses, ddof=1) / jnp.sqrt(n) if n > 1 else jnp.zeros((), losses.dtype)
    return ConcentrationCheck(value=value, bound=radius, holds=value <= radius, stderr=stderr,
                              mean=mean)
