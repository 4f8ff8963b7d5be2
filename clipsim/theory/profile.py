"""E4: upper bounds on the expected row loss from independent-pair statistics (docs/theory.md)."""

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
    default_rtol,
    result_type,
)

__all__ = [
    "BestProfileBound",
    "CompletenessProfile",
    "PairStatisticsBound",
    "best_profile_bound",
    "completeness_profile",
    "pair_statistics_upper_bound",
]


@result_type
class CompletenessProfile:
    """The completeness profile ``(alpha(gamma), beta)`` of a model on a data distribution.

    Attributes:
        beta: Collision rate ``P(z = z')`` of two independent pairs.
        beta_stderr: Its binomial standard error.
        alpha: ``P(z != z', Delta > -gamma)`` for every ``gamma``, shape ``(g,)``.
        alpha_stderr: Binomial standard errors, shape ``(g,)``.
        gammas: The margin levels, shape ``(g,)``.
    """

    beta: jnp.ndarray
    beta_stderr: jnp.ndarray
    alpha: jnp.ndarray
    alpha_stderr: jnp.ndarray
    gammas: jnp.ndarray


@result_type
class PairStatisticsBound:
    """The two E4 upper bounds on ``E[l_i]`` at one margin level ``gamma``.

    Attributes:
        jensen: ``log(1 + (B - 1) E[exp(Delta / tau)])``.
        jensen_stderr: Delta-method standard error of ``jensen``.
        profile: ``log(1 + (B - 1) (beta E[e^{Delta/tau} | z = z'] + alpha e^{2M/tau}
            + e^{-gamma/tau}))``.
        profile_stderr: Delta-method standard error of ``profile``.
        log_mean_exp: ``log E[exp(Delta / tau)]`` (sample estimate).
        beta: Collision rate ``P(z = z')``.
        alpha: ``P(z != z', Delta > -gamma)``.
        gamma: The margin level.
        holds: ``jensen <= profile`` up to rounding (exact on the sample when
            ``within_range``).
        within_range: Every ``|Delta| <= 2M`` (the assumption of the profile bound).
    """

    jensen: jnp.ndarray
    jensen_stderr: jnp.ndarray
    profile: jnp.ndarray
    profile_stderr: jnp.ndarray
    log_mean_exp: jnp.ndarray
    beta: jnp.ndarray
    alpha: jnp.ndarray
    gamma: jnp.ndarray
    holds: jnp.ndarray
    within_range: jnp.ndarray


@result_type
class BestProfileBound:
    """The profile bound minimized over a grid of margin levels.

    Attributes:
        best: :class:`PairStatisticsBound` at the minimizing ``gamma``.
        profiles: Profile bound for every grid ``gamma``, shape ``(g,)``.
        gammas: The grid, shape ``(g,)``.
    """

    best: PairStatisticsBound
    profiles: jnp.ndarray
    gammas: jnp.ndarray


def _check_pairs(deltas: ArrayLike, same_latent: ArrayLike) -> tuple[jnp.ndarray, jnp.ndarray]:
    check_ndim("deltas", deltas, 1)
    check_ndim("same_latent", same_latent, 1)
    n = np.shape(deltas)[0]
    if n < 2:
        raise ValueError(f"deltas must hold at least 2 samples, got shape {np.shape(deltas)}")
    if np.shape(same_latent)[0] != n:
        raise ValueError(f"same_latent must have shape ({n},) to match deltas, "
                         f"got {np.shape(same_latent)}")
    same = jnp.asarray(same_latent)
    if same.dtype != jnp.bool_:
        raise ValueError(f"same_latent must be boolean, got dtype {same.dtype}")
    check_real("deltas", deltas)
    return as_float(deltas), same


def _binomial_stderr(p: jnp.ndarray, n: int) -> jnp.ndarray:
    return jnp.sqrt(p * (1.0 - p) / n)


@jax.jit
def _profile(deltas: jnp.ndarray, same: jnp.ndarray, gammas: jnp.ndarray):
    n = deltas.shape[0]
    beta = jnp.mean(same.astype(deltas.dtype))
    other = ~same
    alpha = jax.vmap(lambda g: jnp.mean((other & (deltas > -g)).astype(deltas.dtype)))(gammas)
    return CompletenessProfile(beta=beta, beta_stderr=_binomial_stderr(beta, n), alpha=alpha,
                               alpha_stderr=_binomial_stderr(alpha, n), gammas=gammas)


def completeness_profile(
    deltas: ArrayLike,
    same_latent: ArrayLike,
    gammas: ArrayLike,
) -> CompletenessProfile:
    r"""Collision rate ``beta`` and the completeness curve ``alpha(gamma)``.

    From ``n`` independent draws of two pairs ``(x, y), (x', y')``, with
    :math:`\Delta = \langle f(x), g(y') \rangle - \langle f(x), g(y) \rangle` and
    ``same_latent`` the indicator of ``z = z'``:

    .. math::
        \beta = P(z = z'), \qquad
        \alpha(\gamma) = P\bigl(z \ne z',\ \Delta > -\gamma\bigr).

    ``alpha(gamma)`` is the rate at which a foreign text comes within ``gamma``
    of the true one: small ``alpha`` at a large ``gamma`` means a complete
    model (every different-latent negative loses by at least ``gamma``). It is
    non-decreasing in ``gamma`` and at most ``1 - beta``. Both are sample
    means with binomial standard errors. Jittable apart from the checks.

    Args:
        deltas: Samples of ``Delta``, shape ``(n,)``, ``n >= 2``.
        same_latent: Boolean ``z = z'`` per sample, shape ``(n,)``.
        gammas: Margin levels ``gamma >= 0``, shape ``(g,)``.

    Returns:
        A :class:`CompletenessProfile`.
    """
    deltas, same = _check_pairs(deltas, same_latent)
    check_ndim("gammas", gammas, 1)
    check_real("gammas", gammas, low=0.0)
    return _profile(deltas, same, jnp.asarray(gammas, deltas.dtype))


@jax.jit
def _pair_bound(deltas, same, tau, batch_size, score_bound, gamma, rtol):
    n = deltas.shape[0]
    sqrt_n = jnp.sqrt(jnp.asarray(n, deltas.dtype))
    log_neg = jnp.log(batch_size - 1.0)
    z = deltas / tau

    # Jensen: log(1 + (B-1) mean(exp z)), with exp scaled by its max.
    c = jnp.max(z)
    w = jnp.exp(z - c)
    mean_w = jnp.mean(w)
    log_mean_exp = c + jnp.log(mean_w)
    jensen = jnp.logaddexp(0.0, log_neg + log_mean_exp)
    rel = jnp.std(w, ddof=1) / sqrt_n / mean_w
    jensen_se = jax.nn.sigmoid(log_neg + log_mean_exp) * rel

    # Profile: mean(u) + exp(-gamma/tau), u = e^z on collisions, e^{2M/tau} on
    # non-collisions within gamma, 0 otherwise.
    close = ~same & (deltas > -gamma)
    log_u = jnp.where(same, z, jnp.where(close, 2.0 * score_bound / tau, -jnp.inf))
    tail = -gamma / tau
    c2 = jnp.maximum(jnp.max(log_u), tail)
    u = jnp.exp(log_u - c2)
    t_scaled = jnp.mean(u) + jnp.exp(tail - c2)
    log_t = c2 + jnp.log(t_scaled)
    profile = jnp.logaddexp(0.0, log_neg + log_t)
    profile_se = jax.nn.sigmoid(log_neg + log_t) * jnp.std(u, ddof=1) / sqrt_n / t_scaled

    beta = jnp.mean(same.astype(deltas.dtype))
    alpha = jnp.mean(close.astype(deltas.dtype))
    within = jnp.max(jnp.abs(deltas)) <= 2.0 * score_bound * (1.0 + rtol)
    scale = 1.0 + log_neg + jnp.maximum(jnp.max(jnp.abs(z)), jnp.maximum(2.0 * score_bound / tau,
                                                                       jnp.abs(tail)))
    holds = jensen <= profile + rtol * scale
    return PairStatisticsBound(
        jensen=jensen, jensen_stderr=jensen_se, profile=profile, profile_stderr=profile_se,
        log_mean_exp=log_mean_exp, beta=beta, alpha=alpha, gamma=gamma, holds=holds,
        within_range=within,
    )


def _check_bound_args(temperature, batch_size, score_bound) -> None:
    check_positive("temperature", temperature)
    check_int("batch_size", batch_size, 2)
    check_positive("score_bound", score_bound)
    for name, v in (("temperature", temperature), ("score_bound", score_bound)):
        if np.ndim(v) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}")


def pair_statistics_upper_bound(
    deltas: ArrayLike,
    same_latent: ArrayLike,
    temperature: ArrayLike,
    batch_size: int,
    score_bound: ArrayLike,
    gamma: ArrayLike,
    *,
    rtol: float | None = None,
) -> PairStatisticsBound:
    r"""E4: the Jensen and completeness-profile upper bounds on the expected row loss.

    .. math::
        \mathbb E[l_i] \;\le\; \log\bigl(1 + (B-1)\,\mathbb E[e^{\Delta/\tau}]\bigr)
        \;\le\; \log\Bigl(1 + (B-1)\bigl(\beta\, \mathbb E[e^{\Delta/\tau} \mid z = z']
        + \alpha(\gamma)\, e^{2M/\tau} + e^{-\gamma/\tau}\bigr)\Bigr).

    Proof sketch: ``l_i = log(1 + sum_{j != i} exp(Delta_ij / tau))`` and each of
    the ``B - 1`` gaps is distributed as ``Delta`` of an independent pair; ``log``
    is concave, so Jensen moves the expectation inside. Then split
    ``E[e^{Delta/tau}]`` over ``{z = z'}``, ``{z != z', Delta > -gamma}`` (where
    ``Delta <= 2M`` bounds the term by ``e^{2M/tau}``) and
    ``{z != z', Delta <= -gamma}`` (term at most ``e^{-gamma/tau}``, probability
    at most 1). The second inequality holds sample by sample too, so
    ``holds`` is exact when ``within_range``.

    Estimates replace expectations by sample means (computed in the log domain
    with the largest exponent factored out, so tiny ``tau`` is safe); standard
    errors use the delta method,
    ``se(log(1 + (B-1) m)) = (B-1) se(m) / (1 + (B-1) m)``. The plug-in
    ``log(1 + (B-1) mean)`` is biased low by ``O(1/n)`` (concavity). Compare
    with a model's mean row loss using
    :func:`~clipsim.theory.mean_loss_upper_check`.

    Args:
        deltas: Samples of ``Delta = s(x, y') - s(x, y)`` from independent pairs, ``(n,)``.
        same_latent: Boolean ``z = z'`` per sample, ``(n,)``.
        temperature: ``tau > 0``.
        batch_size: ``B >= 2``.
        score_bound: ``M > 0`` with ``|s| <= M`` (so ``|Delta| <= 2M``).
        gamma: Margin level ``gamma >= 0``.
        rtol: Rounding tolerance of ``holds`` relative to the logit scale.

    Returns:
        A :class:`PairStatisticsBound`.
    """
    deltas, same = _check_pairs(deltas, same_latent)
    _check_bound_args(temperature, batch_size, score_bound)
    check_real("gamma", gamma, low=0.0)
    if np.ndim(gamma) != 0:
        raise ValueError(f"gamma must be a scalar, got shape {np.shape(gamma)}")
    if rtol is None:
        rtol = default_rtol(deltas.dtype)
    check_real("rtol", rtol, low=0.0)
    dt = deltas.dtype
    return _pair_bound(deltas, same, jnp.asarray(temperature, dt), jnp.asarray(batch_size, dt),
                       jnp.asarray(score_bound, dt), jnp.asarray(gamma, dt),
                       jnp.asarray(rtol, dt))


@jax.jit
def _best(deltas, same, tau, batch_size, score_bound, gammas, rtol):
    curve = jax.vmap(lambda g: _pair_bound(deltas, same, tau, batch_size, score_bound, g, rtol))(
        gammas)
    i = jnp.argmin(curve.profile)
    best = jax.tree_util.tree_map(lambda x: x[i], curve)
    return BestProfileBound(best=best, profiles=curve.profile, gammas=gammas)


def best_profile_bound(
    deltas: ArrayLike,
    same_latent: ArrayLike,
    temperature: ArrayLike,
    batch_size: int,
    score_bound: ArrayLike,
    gammas: ArrayLike,
    *,
    rtol: float | None = None,
) -> BestProfileBound:
    r"""The E4 profile bound minimized over a grid of margin levels ``gamma``.

    .. math::
        \min_{\gamma \in \text{grid}} \log\Bigl(1 + (B-1)\bigl(\beta\,
        \mathbb E[e^{\Delta/\tau} \mid z = z'] + \alpha(\gamma)\, e^{2M/\tau}
        + e^{-\gamma/\tau}\bigr)\Bigr).

    Proof sketch: the bound of :func:`pair_statistics_upper_bound` holds for
    every ``gamma``, so also for the minimizer. Small ``gamma`` makes the tail
    term ``e^{-gamma/tau}`` large; large ``gamma`` lets more foreign texts into
    ``alpha``, each charged ``e^{2M/tau}``. The selected ``gamma`` is the
    model's effective margin. Choosing it on the same sample makes the
    estimate slightly optimistic.

    Args:
        deltas: Samples of ``Delta``, ``(n,)``.
        same_latent: Boolean ``z = z'`` per sample, ``(n,)``.
        temperature: ``tau > 0``.
        batch_size: ``B >= 2``.
        score_bound: ``M > 0``.
        gammas: Grid of ``gamma >= 0``, shape ``(g,)``, ``g >= 1``.
        rtol: Rounding tolerance of ``holds``.

    Returns:
        A :class:`BestProfileBound`.
    """
    deltas, same = _check_pairs(deltas, same_latent)
    _check_bound_args(temperature, batch_size, score_bound)
    check_ndim("gammas", gammas, 1)
    if np.shape(gammas)[0] < 1:
        raise ValueError("gammas must hold at least one margin level, got shape (0,)")
    check_real("gammas", gammas, low=0.0)
    if rtol is None:
        rtol = default_rtol(deltas.dtype)
    check_real("rtol", rtol, low=0.0)
    dt = deltas.dtype
    return _best(deltas, same, jnp.asarray(temperature, dt), jnp.asarray(batch_size, dt),
                 jnp.asarray(score_bound, dt), jnp.asarray(gammas, dt), jnp.asarray(rtol, dt))
