"""E1: the row-loss sandwich and the loss range of bounded scores (docs/theory.md, E1)."""

from __future__ import annotations

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

__all__ = ["RowLossSandwich", "ScoreRange", "row_loss_sandwich", "score_range_bounds"]


@result_type
class RowLossSandwich:
    """Both sides of E1 for every row of one score matrix.

    Attributes:
        value: Row losses ``l_i``, shape ``(B,)``.
        lower: ``log(1 + exp(-m_i / tau))``, shape ``(B,)``.
        upper: ``log(1 + (B - 1) exp(-m_i / tau))``, shape ``(B,)``.
        margin: Margins ``m_i = s_ii - max_{j != i} s_ij`` over all negatives, ``(B,)``.
        holds: ``lower <= value <= upper`` up to rounding, boolean ``(B,)``.
        stderr: 0 (both sides are exact functions of the matrix).
    """

    value: jnp.ndarray
    lower: jnp.ndarray
    upper: jnp.ndarray
    margin: jnp.ndarray
    holds: jnp.ndarray
    stderr: jnp.ndarray


@result_type
class ScoreRange:
    """The interval E1 gives for every row loss when ``|s_ij| <= M``.

    Attributes:
        lower: ``log(1 + (B - 1) exp(-2M / tau))``.
        upper: ``log(1 + (B - 1) exp(2M / tau))``.
    """

    lower: jnp.ndarray
    upper: jnp.ndarray


@jax.jit
def _sandwich(scores: jnp.ndarray, temperature: jnp.ndarray, rtol: jnp.ndarray):
    loss, margin, gap, scale = row_statistics(scores, temperature)
    log_negatives = jnp.log(scores.shape[0] - 1.0)
    lower = jnp.logaddexp(0.0, gap)
    upper = jnp.logaddexp(0.0, log_negatives + gap)
    tol = rtol * scale
    holds = (lower <= loss + tol) & (loss <= upper + tol)
    return RowLossSandwich(
        value=loss, lower=lower, upper=upper, margin=margin, holds=holds,
        stderr=jnp.zeros((), loss.dtype),
    )


def row_loss_sandwich(
    scores: ArrayLike,
    temperature: ArrayLike,
    *,
    rtol: float | None = None,
) -> RowLossSandwich:
    r"""Row losses of a score matrix and the E1 bounds on each of them.

    .. math::
        l_i = \log \sum_{j} e^{s_{ij}/\tau} - \frac{s_{ii}}{\tau}
            = \log\Bigl(1 + \sum_{j \ne i} e^{(s_{ij} - s_{ii})/\tau}\Bigr),

    .. math::
        \log\bigl(1 + e^{-m_i/\tau}\bigr) \;\le\; l_i \;\le\;
        \log\bigl(1 + (B - 1)\, e^{-m_i/\tau}\bigr),
        \qquad m_i = s_{ii} - \max_{j \ne i} s_{ij}.

    Proof sketch: every term of the sum over ``j != i`` is positive, so the sum
    is at least its largest term ``exp(-m_i / tau)`` and at most ``B - 1``
    times it; ``log(1 + .)`` is increasing. Equality on the left when one
    negative dominates, on the right when all negatives tie (and at ``B = 2``
    both sides equal ``l_i``).

    The loss is evaluated as a log-sum-exp of the gaps ``(s_ij - s_ii) / tau``
    (which include an exact 0), and both bounds as ``logaddexp(0, .)``, so
    nothing overflows for tiny ``tau``. The margin here is over *all*
    negatives, as E1 needs; the reported metric margin of docs/theory.md, section 4
    excludes same-latent negatives and is a different quantity. The column
    losses are the row losses of ``scores.T``. Jittable.

    Args:
        scores: Score matrix ``s_ij = <f(x_i), g(y_j)>``, shape ``(B, B)``, ``B >= 2``;
            row ``i`` pairs with column ``i``.
        temperature: ``tau > 0``, a scalar.
        rtol: Rounding tolerance of ``holds`` relative to the logit scale
            ``1 + log B + max|s_ij - s_ii| / tau``. Default: 32 machine epsilons
            of the score dtype.

    Returns:
        A :class:`RowLossSandwich`; per-row arrays of shape ``(B,)``, no reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> res = row_loss_sandwich(jnp.zeros((4, 4)), 0.1)
        >>> bool(jnp.allclose(res.value, jnp.log(4.0))), bool(res.holds.all())
        (True, True)
    """
    check_square_scores("scores", scores)
    check_positive("temperature", temperature)
    if np.ndim(temperature) != 0:
        raise ValueError(f"temperature must be a scalar, got shape {np.shape(temperature)}")
    scores = as_float(scores)
    if rtol is None:
        rtol = default_rtol(scores.dtype)
    check_real("rtol", rtol, low=0.0)
    dt = scores.dtype
    return _sandwich(scores, jnp.asarray(temperature, dt), jnp.asarray(rtol, dt))


def score_range_bounds(
    batch_size: int,
    temperature: ArrayLike,
    score_bound: ArrayLike,
) -> ScoreRange:
    r"""The range of every row (and column) loss when scores are bounded.

    .. math::
        |s_{ij}| \le M \;\Rightarrow\;
        \log\bigl(1 + (B-1) e^{-2M/\tau}\bigr) \le l_i \le
        \log\bigl(1 + (B-1) e^{2M/\tau}\bigr).

    Proof sketch: ``|s| <= M`` gives ``-2M <= s_ij - s_ii <= 2M`` for every
    negative, so each of the ``B - 1`` terms ``exp((s_ij - s_ii)/tau)`` lies in
    ``[exp(-2M/tau), exp(2M/tau)]``. The same holds for column losses and
    hence for the symmetric CLIP loss, a mean of row and column losses. With
    unit-norm embeddings ``M = 1``.

    Computed as ``logaddexp(0, log(B - 1) -+ 2M / tau)``; broadcasts over
    array arguments; jittable.

    Args:
        batch_size: ``B >= 2``, an integer.
        temperature: ``tau > 0``.
        score_bound: ``M > 0`` with ``|s_ij| <= M``.

    Returns:
        A :class:`ScoreRange` with ``lower`` and ``upper``.
    """
    check_int("batch_size", batch_size, 2)
    check_positive("temperature", temperature)
    check_positive("score_bound", score_bound)
    tau = as_float(temperature)
    return _score_range(jnp.asarray(batch_size, tau.dtype), tau,
                        jnp.asarray(score_bound, tau.dtype))


@jax.jit
def _score_range(batch_size: jnp.ndarray, tau: jnp.ndarray, m: jnp.ndarray) -> ScoreRange:
    log_negatives = jnp.log(batch_size - 1.0)
    return ScoreRange(
        lower=jnp.logaddexp(0.0, log_negatives - 2.0 * m / tau),
        upper=jnp.logaddexp(0.0, log_negatives + 2.0 * m / tau),
    )
