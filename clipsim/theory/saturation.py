"""E5: margin saturation of the CLIP loss (docs/theory.md, E5)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from clipsim.theory._checks import (
    as_float,
    check_int,
    check_positive,
    check_real,
    check_square_scores,
    default_rtol,
    result_type,
)
from clipsim.theory._rows import row_statistics

__all__ = ["SaturationCheck", "margin_needed", "saturation_check", "saturation_loss_bound"]


@result_type
class SaturationCheck:
    """Both sides of E5 on one score matrix.

    Attributes:
        value: Symmetric CLIP loss ``(1/2B) sum_i (l_i + l'_i)``.
        bound: ``log(1 + (B - 1) exp(-mu / tau))`` at the smallest margin ``mu``.
        holds: ``value <= bound`` up to rounding.
        stderr: 0 (both sides are exact functions of the matrix).
        margin: ``mu = min(row_margin, column_margin)``.
        row_margin: ``min_i (s_ii - max_{j != i} s_ij)``.
        column_margin: ``min_i (s_ii - max_{j != i} s_ji)``.
    """

    value: jnp.ndarray
    bound: jnp.ndarray
    holds: jnp.ndarray
    stderr: jnp.ndarray
    margin: jnp.ndarray
    row_margin: jnp.ndarray
    column_margin: jnp.ndarray


def saturation_loss_bound(
    batch_size: int,
    temperature: ArrayLike,
    mu: ArrayLike,
) -> jnp.ndarray:
    r"""The largest CLIP loss a batch with every margin at least ``mu`` can have.

    .. math::
        m_i \ge \mu,\ m'_i \ge \mu \ \forall i \;\Rightarrow\;
        L_{\mathrm{clip}} \le \log\bigl(1 + (B-1)\, e^{-\mu/\tau}\bigr).

    Proof sketch: by the right side of E1 each row loss is at most
    ``log(1 + (B-1) exp(-m_i/tau))``, which decreases in ``m_i``, so at most the
    value at ``mu``; the same for every column loss; ``L_clip`` is their mean.
    Equality when every negative sits exactly ``mu`` below its positive.
    Computed as ``logaddexp(0, log(B - 1) - mu / tau)``; broadcasts; jittable.

    Args:
        batch_size: ``B >= 2``.
        temperature: ``tau > 0``.
        mu: Margin level (any real; negative margins give bounds above ``log B``).

    Returns:
        The bound, broadcast over ``temperature`` and ``mu``.
    """
    check_int("batch_size", batch_size, 2)
    check_positive("temperature", temperature)
    check_real("mu", mu)
    tau = as_float(temperature)
    return _loss_bound(jnp.asarray(batch_size, tau.dtype), tau, jnp.asarray(mu, tau.dtype))


@jax.jit
def _loss_bound(batch_size: jnp.ndarray, tau: jnp.ndarray, mu: jnp.ndarray) -> jnp.ndarray:
    return jnp.logaddexp(0.0, jnp.log(batch_size - 1.0) - mu / tau)


def margin_needed(
    batch_size: int,
    temperature: ArrayLike,
    eps: ArrayLike,
    *,
    exact: bool = False,
) -> jnp.ndarray:
    r"""A margin that guarantees ``L_clip <= eps`` through the E5 bound.

    .. math::
        \mu_{\mathrm{suff}} = \tau \log\frac{B - 1}{\varepsilon}
        \qquad\text{(default)}, \qquad
        \mu_{\mathrm{exact}} = \tau \log\frac{B - 1}{e^{\varepsilon} - 1}
        \qquad(\texttt{exact=True}).

    Proof sketch: ``log(1 + x) <= x`` gives
    ``L_clip <= log(1 + (B-1) e^{-mu/tau}) <= (B-1) e^{-mu/tau}``, which is
    ``<= eps`` once ``mu >= mu_suff`` (the formula of docs/theory.md, E5). At ``mu_suff`` the
    E5 bound equals ``log(1 + eps)``, slightly below ``eps``, so ``mu_suff`` is
    sufficient, not minimal. ``mu_exact`` solves
    ``log(1 + (B-1) e^{-mu/tau}) = eps`` exactly; since ``e^eps - 1 >= eps``,
    ``mu_exact <= mu_suff`` with a difference of about ``tau eps / 2`` for small
    ``eps``. Either way the needed margin grows only like ``tau log B``.

    Args:
        batch_size: ``B >= 2``.
        temperature: ``tau > 0``.
        eps: Target loss ``eps > 0``.
        exact: Return ``mu_exact`` instead of ``mu_suff``.

    Returns:
        The margin, broadcast over ``temperature`` and ``eps``. Jittable.
    """
    check_int("batch_size", batch_size, 2)
    check_positive("temperature", temperature)
    check_positive("eps", eps)
    tau = as_float(temperature)
    return _margin(jnp.asarray(batch_size, tau.dtype), tau, jnp.asarray(eps, tau.dtype),
                   bool(exact))


@functools.partial(jax.jit, static_argnums=3)
def _margin(batch_size: jnp.ndarray, tau: jnp.ndarray, eps: jnp.ndarray,
            exact: bool) -> jnp.ndarray:
    denom = jnp.log(jnp.expm1(eps)) if exact else jnp.log(eps)
    return tau * (jnp.log(batch_size - 1.0) - denom)


@jax.jit
def _saturation(scores: jnp.ndarray, temperature: jnp.ndarray, rtol: jnp.ndarray):
    row_loss, row_m, _, scale = row_statistics(scores, temperature)
    col_loss, col_m, _, _ = row_statistics(scores.T, temperature)
    value = 0.5 * (jnp.mean(row_loss) + jnp.mean(col_loss))
    row_margin, col_margin = jnp.min(row_m), jnp.min(col_m)
    mu = jnp.minimum(row_margin, col_margin)
    log_neg = jnp.log(scores.shape[0] - 1.0)
    bound = jnp.logaddexp(0.0, log_neg - mu / temperature)
    holds = value <= bound + rtol * scale
    return SaturationCheck(value=value, bound=bound, holds=holds, stderr=jnp.zeros((), value.dtype),
                           margin=mu, row_margin=row_margin, column_margin=col_margin)


def saturation_check(
    scores: ArrayLike,
    temperature: ArrayLike,
    *,
    rtol: float | None = None,
) -> SaturationCheck:
    r"""The symmetric CLIP loss of a batch against the E5 bound at its smallest margin.

    .. math::
        L_{\mathrm{clip}} = \frac{1}{2B}\sum_i (l_i + l'_i) \;\le\;
        \log\bigl(1 + (B-1) e^{-\mu/\tau}\bigr), \qquad
        \mu = \min\bigl(\min_i m_i,\ \min_i m'_i\bigr),

    with row margins ``m_i = s_ii - max_{j != i} s_ij`` and column margins
    ``m'_i = s_ii - max_{j != i} s_ji``. The two directions have different
    margins in general, so ``mu`` takes the smaller; margins here run over all
    negatives, as E5 needs. See :func:`saturation_loss_bound` for the proof.
    Jittable apart from the checks.

    Args:
        scores: Score matrix, shape ``(B, B)``, ``B >= 2``.
        temperature: ``tau > 0``, a scalar.
        rtol: Rounding tolerance of ``holds`` relative to the logit scale.

    Returns:
        A :class:`SaturationCheck`; ``value`` is the mean over ``2B`` row and column losses.
    """
    check_square_scores("scores", scores)
    check_positive("temperature", temperature)
    if np.ndim(temperature) != 0:
        raise ValueError(f"temperature must be a scalar, got shape {np.shape(temperature)}")
    scores = as_float(scores)
    if rtol is None:
        rtol = default_rtol(scores.dtype)
    check_real("rtol", rtol, low=0.0)
    return _saturation(scores, jnp.asarray(temperature, scores.dtype),
                       jnp.asarray(rtol, scores.dtype))
