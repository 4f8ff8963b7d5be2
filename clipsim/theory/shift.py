"""E7: zero-shot error under distribution shift (docs/theory.md, E7)."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.typing import ArrayLike

from clipsim.theory._checks import as_float, check_probs, check_real, result_type

__all__ = [
    "ShiftCheck",
    "TVEstimate",
    "reweighted_error",
    "shift_check",
    "tv_class_prior",
    "tv_gaussian_same_mean_upper",
    "tv_joint_same_prior",
    "tv_monte_carlo",
]


@result_type
class ShiftCheck:
    """Both sides of E7.

    Attributes:
        value: ``|err_D' - err_D|``.
        bound: The total variation ``TV(D, D')`` (or an upper bound on it).
        holds: ``value <= bound + n_sigma * stderr + atol``.
        stderr: Combined standard error of the three inputs (0 when all are exact).
    """

    value: float
    bound: float
    holds: bool
    stderr: float


@result_type
class TVEstimate:
    """A Monte Carlo total-variation estimate.

    Attributes:
        value: Estimated ``TV(P, Q)``.
        stderr: Its standard error.
    """

    value: jnp.ndarray
    stderr: jnp.ndarray


def _check_pair_probs(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> None:
    check_probs(names[0], a)
    check_probs(names[1], b)
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{np.shape(a)} and {np.shape(b)}")


def tv_class_prior(pi: ArrayLike, pi_prime: ArrayLike) -> jnp.ndarray:
    r"""Total variation between two class priors.

    .. math::
        \mathrm{TV}(\pi, \pi') = \frac12 \sum_c |\pi_c - \pi'_c| .

    When only the prior shifts (the class-conditional distributions of the
    inputs stay the same), this is exactly ``TV(D, D')`` of the joint
    distributions of (input, label): ``D = sum_c pi_c delta_c x P_c`` and the
    ``P_c`` cancel in ``(1/2) int |dD - dD'|``. Jittable.

    Args:
        pi: Class probabilities, shape ``(C,)``.
        pi_prime: Shifted class probabilities, shape ``(C,)``.

    Returns:
        The total variation, in ``[0, 1]``.
    """
    _check_pair_probs(pi, pi_prime, ("pi", "pi_prime"))
    return _half_l1(as_float(pi), as_float(pi_prime))


@jax.jit
def _half_l1(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    # a probability: clipped, since rounding can leave [0, 1] by an ulp (disjoint priors)
    return jnp.clip(0.5 * jnp.sum(jnp.abs(a - b)), 0.0, 1.0)


@jax.jit
def _dot(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.sum(a * b)


def tv_joint_same_prior(pi: ArrayLike, per_class_tv: ArrayLike) -> jnp.ndarray:
    r"""Total variation of a class-conditional shift that keeps the class prior.

    .. math::
        \mathrm{TV}\Bigl(\sum_c \pi_c\, \delta_c \otimes P_c,\
        \sum_c \pi_c\, \delta_c \otimes P'_c\Bigr) = \sum_c \pi_c\, \mathrm{TV}(P_c, P'_c).

    Proof sketch: the labels split the joint space into disjoint slices, and
    on slice ``c`` the two measures are ``pi_c P_c`` and ``pi_c P'_c``. Upper
    bounds on the ``TV(P_c, P'_c)`` (for instance
    :func:`tv_gaussian_same_mean_upper`) give an upper bound. If the prior moves
    too, the triangle inequality adds ``TV(pi, pi')``. Jittable.

    Args:
        pi: Class probabilities, shape ``(C,)``.
        per_class_tv: ``TV(P_c, P'_c)`` (or upper bounds) in ``[0, 1]``, shape ``(C,)``.

    Returns:
        The total variation of the joint distributions.
    """
    check_probs("pi", pi)
    check_real("per_class_tv", per_class_tv, low=0.0, high=1.0)
    if np.shape(per_class_tv) != np.shape(pi):
        raise ValueError(f"per_class_tv must have shape {np.shape(pi)} to match pi, "
                         f"got {np.shape(per_class_tv)}")
    return _dot(as_float(pi), as_float(per_class_tv))


def reweighted_error(per_class_error: ArrayLike, pi_prime: ArrayLike) -> jnp.ndarray:
    r"""Error of a fixed classifier after a class-prior shift.

    .. math::
        \mathrm{err}_{D'} = \sum_c \pi'_c\, \mathrm{err}_c,
        \qquad \mathrm{err}_c = P_{x \sim P_c}\bigl(h(x) \ne c\bigr).

    Proof sketch: condition on the class; the per-class errors depend only on
    the class-conditional input distributions, which a prior shift leaves
    unchanged. Exact (no estimation beyond that of ``err_c``). Jittable.

    Args:
        per_class_error: ``err_c`` in ``[0, 1]``, shape ``(C,)``.
        pi_prime: Shifted class probabilities, shape ``(C,)``.

    Returns:
        ``err_D'`` in ``[0, 1]`` (clipped: the sum is a probability, but rounding can
        leave it by an ulp, e.g. 1.0000000000000002 when every ``err_c`` is 1).
    """
    check_probs("pi_prime", pi_prime)
    check_real("per_class_error", per_class_error, low=0.0, high=1.0)
    if np.shape(per_class_error) != np.shape(pi_prime):
        raise ValueError(f"per_class_error must have shape {np.shape(pi_prime)} to match "
                         f"pi_prime, got {np.shape(per_class_error)}")
    return jnp.clip(_dot(as_float(pi_prime), as_float(per_class_error)), 0.0, 1.0)


def shift_check(
    err_d: float,
    err_d_prime: float,
    tv: float,
    *,
    err_d_stderr: float = 0.0,
    err_d_prime_stderr: float = 0.0,
    tv_stderr: float = 0.0,
    n_sigma: float = 3.0,
    atol: float = 1e-12,
) -> ShiftCheck:
    r"""Checks E7, ``|err_D' - err_D| <= TV(D, D')``, within estimation error.

    .. math::
        |\mathrm{err}_{D'} - \mathrm{err}_D|
        = \bigl|\mathbb E_{D'} \mathbf 1[h(x) \ne y] - \mathbb E_D \mathbf 1[h(x) \ne y]\bigr|
        \le \mathrm{TV}(D, D').

    Proof sketch: for any ``f`` with values in ``[0, 1]``,
    ``|E_D' f - E_D f| <= sup_A |D'(A) - D(A)| = TV``; the error indicator of a
    fixed classifier is such an ``f``. The TV is that of the joint (input,
    label) distributions; a TV between distributions of raw inputs also bounds
    the TV between their encoded features (data processing).

    Args:
        err_d: Error on ``D`` in ``[0, 1]``.
        err_d_prime: Error on ``D'`` in ``[0, 1]``.
        tv: ``TV(D, D')`` or an upper bound on it, in ``[0, 1]``.
        err_d_stderr: Standard error of ``err_d`` (0 if exact).
        err_d_prime_stderr: Standard error of ``err_d_prime``.
        tv_stderr: Standard error of ``tv`` (for a Monte Carlo TV).
        n_sigma: Tolerance in combined standard errors.
        atol: Absolute rounding tolerance.

    Returns:
        A :class:`ShiftCheck`.
    """
    check_real("err_d", err_d, low=0.0, high=1.0)
    check_real("err_d_prime", err_d_prime, low=0.0, high=1.0)
    check_real("tv", tv, low=0.0, high=1.0)
    for name, v in (("err_d_stderr", err_d_stderr), ("err_d_prime_stderr", err_d_prime_stderr),
                    ("tv_stderr", tv_stderr), ("n_sigma", n_sigma), ("atol", atol)):
        check_real(name, v, low=0.0)
    value = abs(float(err_d_prime) - float(err_d))
    se = math.sqrt(float(err_d_stderr) ** 2 + float(err_d_prime_stderr) ** 2
                   + float(tv_stderr) ** 2)
    holds = value <= float(tv) + n_sigma * se + atol
    return ShiftCheck(value=value, bound=float(tv), holds=bool(holds), stderr=se)


def tv_monte_carlo(
    logp: Callable[[jax.Array], jax.Array],
    logq: Callable[[jax.Array], jax.Array],
    samples_from_p: ArrayLike,
) -> TVEstimate:
    r"""Monte Carlo total variation from samples of ``P`` and both log densities.

    .. math::
        \mathrm{TV}(P, Q) = \int (p - q)_+ = \mathbb E_{x \sim P}\bigl[(1 - q(x)/p(x))_+\bigr].

    Each term lies in ``[0, 1]``, so the estimate is unbiased with standard
    error ``std / sqrt(n)``. The ratio is formed as ``exp(min(log q - log p, 0))``,
    so no density needs to be representable on its own.

    Args:
        logp: Log density of ``P``, mapping the sample array (leading axis ``n``) to ``(n,)``.
        logq: Log density of ``Q``, same convention (same base measure as ``logp``).
        samples_from_p: ``n >= 2`` samples of ``P``, shape ``(n, ...)``.

    Returns:
        A :class:`TVEstimate`.
    """
    x = jnp.asarray(samples_from_p)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"samples_from_p must hold n >= 2 samples along axis 0, got shape "
                         f"{x.shape}")
    lp, lq = jnp.asarray(logp(x)), jnp.asarray(logq(x))
    if lp.shape != (x.shape[0],) or lq.shape != (x.shape[0],):
        raise ValueError(f"logp and logq must map the samples to shape ({x.shape[0]},), got "
                         f"{lp.shape} and {lq.shape}")
    return _tv_terms(as_float(lp), as_float(lq))


@jax.jit
def _tv_terms(lp: jnp.ndarray, lq: jnp.ndarray) -> TVEstimate:
    w = -jnp.expm1(jnp.minimum(lq - lp, 0.0))
    return TVEstimate(value=jnp.mean(w), stderr=jnp.std(w, ddof=1) / jnp.sqrt(w.shape[0]))


def _as_cov(name: str, cov: ArrayLike) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim == 0:
        c = c.reshape(1, 1)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 1:
        raise ValueError(f"{name} must be a square (d, d) covariance matrix (or a scalar "
                         f"variance), got shape {np.shape(cov)}")
    check_real(name, c)
    if not np.allclose(c, c.T, rtol=1e-8, atol=1e-12 * max(1.0, float(np.abs(c).max()))):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite (restrict degenerate Gaussians "
                         "to their common support first)") from None
    return c


def tv_gaussian_same_mean_upper(cov1: ArrayLike, cov2: ArrayLike) -> float:
    r"""Upper bound on the TV between two Gaussians with the same mean.

    Devroye, Mehrabian and Reddad (2018), *The total variation distance between
    high-dimensional Gaussians*, arXiv:1810.08693, Theorem 1.1: for
    :math:`N(\mu, \Sigma_1)` and :math:`N(\mu, \Sigma_2)` with positive definite
    covariances,

    .. math::
        \mathrm{TV} \le \frac32 \min\bigl(1,
        \|\Sigma_1^{-1/2} \Sigma_2 \Sigma_1^{-1/2} - I\|_F\bigr),

    which, with ``TV <= 1``, gives ``min(1, (3/2) ||.||_F)``. TV is symmetric,
    so the same bound with the roles of the covariances swapped also holds;
    the smaller of the two is returned. Computed from the generalized
    eigenvalues ``lambda`` of ``(Sigma2, Sigma1)``:
    ``||.||_F = ||lambda - 1||_2`` and, swapped, ``||1/lambda - 1||_2``.

    Use for feature-scale shifts: with ``x = A_z z + A_xi xi + eps``, changing
    ``sigma_xi`` or ``sigma_noise`` changes each class-conditional covariance
    and not its mean. For degenerate Gaussians on a common affine support, pass
    the covariances restricted to it. Combine classes with
    :func:`tv_joint_same_prior`. Host-side (SciPy).

    Args:
        cov1: Covariance ``Sigma_1``, shape ``(d, d)`` (a scalar is a variance).
        cov2: Covariance ``Sigma_2``, same shape.

    Returns:
        The bound, a float in ``[0, 1]``.
    """
    c1, c2 = _as_cov("cov1", cov1), _as_cov("cov2", cov2)
    if c1.shape != c2.shape:
        raise ValueError(f"cov1 and cov2 must have the same shape, got {c1.shape} and {c2.shape}")
    lam = scipy.linalg.eigh(c2, c1, eigvals_only=True)
    frob = min(float(np.linalg.norm(lam - 1.0)), float(np.linalg.norm(1.0 / lam - 1.0)))
    return min(1.0, 1.5 * frob)
