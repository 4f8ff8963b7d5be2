"""E2: top-r ranking error bounded by the contrastive loss (docs/theory.md, E2)."""

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
    check_square_scores,
    default_rtol,
    is_concrete,
    result_type,
)
from clipsim.theory._rows import row_statistics

__all__ = ["RankingBound", "ZeroShotRankingBound", "ranking_bound", "zero_shot_ranking_bound"]


@result_type
class RankingBound:
    """Both sides of E2 on the rows of one score matrix.

    Attributes:
        value: Fraction of rows whose positive is not in the top ``r``.
        bound: ``mean_i l_i / log(1 + r)``.
        holds: ``value <= bound`` up to rounding (exact for the batch).
        stderr: Standard error of ``bound - value`` read as an estimate of the
            population slack (sample std of the per-row slack / sqrt(B)).
        miss: Per-row indicator of at least ``r`` negatives scoring at or above
            the positive, boolean ``(B,)``.
        loss: Row losses ``l_i``, shape ``(B,)``.
    """

    value: jnp.ndarray
    bound: jnp.ndarray
    holds: jnp.ndarray
    stderr: jnp.ndarray
    miss: jnp.ndarray
    loss: jnp.ndarray


@result_type
class ZeroShotRankingBound:
    """Both sides of E2 for zero-shot classification with class prompts.

    Attributes:
        value: Top-``r`` zero-shot error (ties count against the true class).
        bound: ``min_tau mean l_zs(tau) / log(1 + r)`` over the temperature grid.
        holds: ``value <= bound`` up to rounding (exact for the sample).
        stderr: Standard error of ``bound - value`` at the best temperature
            (ignores the selection of the best temperature on the same sample).
        best_temperature: The grid temperature attaining the bound.
        bounds: ``mean l_zs(tau) / log(1 + r)`` for every grid temperature, ``(T,)``.
        temperatures: The grid, ``(T,)``.
    """

    value: jnp.ndarray
    bound: jnp.ndarray
    holds: jnp.ndarray
    stderr: jnp.ndarray
    best_temperature: jnp.ndarray
    bounds: jnp.ndarray
    temperatures: jnp.ndarray


def _stderr_of_mean(x: jnp.ndarray) -> jnp.ndarray:
    n = x.shape[0]
    if n < 2:
        return jnp.zeros((), x.dtype)
    return jnp.std(x, ddof=1) / jnp.sqrt(n)


@jax.jit
def _ranking(scores: jnp.ndarray, temperature: jnp.ndarray, r: jnp.ndarray, rtol: jnp.ndarray):
    loss, _, _, scale = row_statistics(scores, temperature)
    b = scores.shape[0]
    diag = jnp.diagonal(scores)
    at_or_above = (scores >= diag[:, None]) & ~jnp.eye(b, dtype=bool)
    miss = jnp.sum(at_or_above, axis=1) >= r
    log_r = jnp.log1p(r.astype(loss.dtype))
    value = jnp.mean(miss.astype(loss.dtype))
    bound = jnp.mean(loss) / log_r
    slack = loss / log_r - miss.astype(loss.dtype)
    holds = value <= bound + rtol * scale
    return RankingBound(value=value, bound=bound, holds=holds, stderr=_stderr_of_mean(slack),
                        miss=miss, loss=loss)


def ranking_bound(
    scores: ArrayLike,
    temperature: ArrayLike,
    r: int,
    *,
    rtol: float | None = None,
) -> RankingBound:
    r"""Top-``r`` in-batch retrieval error against the mean row loss over ``log(1 + r)``.

    .. math::
        \frac{1}{B}\sum_i \mathbf 1\bigl[\#\{j \ne i : s_{ij} \ge s_{ii}\} \ge r\bigr]
        \;\le\; \frac{1}{B} \sum_i \frac{l_i}{\log(1 + r)} .

    Proof sketch: if at least ``r`` negatives score at or above the positive,
    each contributes ``exp((s_ij - s_ii)/tau) >= 1`` inside the row loss, so
    ``l_i >= log(1 + r)``; otherwise ``l_i >= 0``. Hence
    ``1[miss_i] <= l_i / log(1 + r)`` row by row; average (Markov). Ties count
    against the positive, which is exactly when this per-row step holds.
    Applied to the batch as the distribution, the inequality is exact; applied
    to a model and a data distribution it holds in expectation. Jittable.

    Args:
        scores: Score matrix, shape ``(B, B)``, ``B >= 2``; row ``i`` pairs with column ``i``.
        temperature: ``tau > 0``, a scalar.
        r: Rank, an integer ``>= 1`` (``r >= B`` makes the error 0).
        rtol: Rounding tolerance of ``holds`` relative to ``1 + log B + max|Delta|/tau``.

    Returns:
        A :class:`RankingBound`; ``value`` and ``bound`` are means over rows.
    """
    check_square_scores("scores", scores)
    check_positive("temperature", temperature)
    if np.ndim(temperature) != 0:
        raise ValueError(f"temperature must be a scalar, got shape {np.shape(temperature)}")
    check_int("r", r, 1)
    scores = as_float(scores)
    if rtol is None:
        rtol = default_rtol(scores.dtype)
    check_real("rtol", rtol, low=0.0)
    return _ranking(scores, jnp.asarray(temperature, scores.dtype), jnp.asarray(r),
                    jnp.asarray(rtol, scores.dtype))


@jax.jit
def _zero_shot(scores: jnp.ndarray, labels: jnp.ndarray, r: jnp.ndarray,
               temperatures: jnp.ndarray, rtol: jnp.ndarray):
    true = jnp.take_along_axis(scores, labels[:, None], axis=1)  # (n, 1)
    delta = scores - true
    cols = jnp.arange(scores.shape[1])[None, :]
    delta = jnp.where(cols == labels[:, None], jnp.zeros((), scores.dtype), delta)
    miss = (jnp.sum(scores >= true, axis=1) - 1) >= r
    missf = miss.astype(scores.dtype)
    log_r = jnp.log1p(r.astype(scores.dtype))

    def losses(tau: jnp.ndarray) -> jnp.ndarray:
        return jax.nn.logsumexp(delta / tau, axis=1)

    per_tau = jax.lax.map(lambda tau: jnp.mean(losses(tau)), temperatures)
    bounds = per_tau / log_r
    best = jnp.argmin(bounds)
    best_tau = temperatures[best]
    slack = losses(best_tau) / log_r - missf
    value = jnp.mean(missf)
    scale = 1.0 + jnp.log(scores.shape[1]) + jnp.max(jnp.abs(delta)) / best_tau
    holds = value <= bounds[best] + rtol * scale
    return ZeroShotRankingBound(
        value=value, bound=bounds[best], holds=holds, stderr=_stderr_of_mean(slack),
        best_temperature=best_tau, bounds=bounds, temperatures=temperatures,
    )


def zero_shot_ranking_bound(
    scores_classes: ArrayLike,
    labels: ArrayLike,
    r: int,
    temperatures: ArrayLike,
    *,
    rtol: float | None = None,
) -> ZeroShotRankingBound:
    r"""Top-``r`` zero-shot error against the best E2 bound over a temperature grid.

    With class scores :math:`s_c(x) = \langle f(x), g(\mathrm{prompt}_c) \rangle` and
    zero-shot loss
    :math:`l_{zs}(x;\tau) = \log\bigl(1 + \sum_{c \ne c(x)} e^{(s_c - s_{c(x)})/\tau}\bigr)`,

    .. math::
        P\bigl(c(x) \notin \text{top-}r\bigr) \;\le\;
        \min_{\tau \in \text{grid}} \frac{\mathbb E\, l_{zs}(x; \tau)}{\log(1 + r)} .

    Proof sketch: the row argument of :func:`ranking_bound` with the prompts
    as the candidates: ``r`` wrong classes at or above the true one force
    ``l_zs >= log(1 + r)``, for every ``tau > 0`` separately, so the minimum
    over any grid is still a bound. The temperature here is a free parameter
    of the bound, not the training temperature. Jittable apart from the checks.

    Args:
        scores_classes: Scores ``s_c(x_n)``, shape ``(n, C)``, ``C >= 2``.
        labels: True classes, integers in ``[0, C)``, shape ``(n,)``.
        r: Rank, an integer ``>= 1``.
        temperatures: Grid of ``tau > 0``, shape ``(T,)``.
        rtol: Rounding tolerance of ``holds`` relative to the logit scale.

    Returns:
        A :class:`ZeroShotRankingBound`; error and bounds are means over the ``n`` samples.
    """
    check_ndim("scores_classes", scores_classes, 2)
    n, c = np.shape(scores_classes)
    if c < 2 or n < 1:
        raise ValueError(f"scores_classes must have shape (n, C) with n >= 1 and C >= 2, "
                         f"got {(n, c)}")
    check_ndim("labels", labels, 1)
    if np.shape(labels)[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match scores_classes, "
                         f"got {np.shape(labels)}")
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    if is_concrete(labels):
        check_real("labels", labels, low=0, high=c - 1)
    check_int("r", r, 1)
    check_ndim("temperatures", temperatures, 1)
    if np.shape(temperatures)[0] < 1:
        raise ValueError("temperatures must hold at least one temperature, got shape (0,)")
    check_positive("temperatures", temperatures)
    scores_classes = as_float(scores_classes)
    if rtol is None:
        rtol = default_rtol(scores_classes.dtype)
    check_real("rtol", rtol, low=0.0)
    return _zero_shot(scores_classes, labels, jnp.asarray(r),
                      jnp.asarray(temperatures, scores_classes.dtype),
                      jnp.asarray(rtol, scores_classes.dtype))
