"""T1: the completeness chain, data profile -> excess-loss budget -> margin -> top-r error.

Each link is an inequality with its proof in docs/theory.md (section "Computed optima
and the completeness chain"); the functions here compute its right-hand side.

1. Budget (E3 + E4 on a reference model). For any fixed encoders, the expected
   CLIP row loss is at most the E4 bound U computed from their independent-pair
   statistics; for a reference model (the oracle) built from the data alone,
   eps_ref = (U_row + U_col)/2 - F, F the E3 floor, is an excess a *near-optimal*
   model (symmetric loss at most the reference's) cannot exceed:
   ``excess_budget``. This link is a prediction about training, not a theorem.
2. Margin. For any fixed encoders with row-loss excess eps_row = E[l_i] - F,

       P(mhat_i <= mu) <= eps_row / log(1 + e^{-mu/tau}),

   with the collision-adjusted margin mhat_i = max_{j: z_j = z_i} s_ij -
   max_{j: z_j != z_i} s_ij + tau log n_i (n_i the number of batch pairs sharing
   row i's latent; for n_i = 1 it is the in-batch margin over all B - 1 negatives).
   So with probability at least 1 - delta, mhat_i exceeds
   mu_delta = -tau log(expm1(eps_row / delta)) ~ tau log(delta / eps_row):
   ``guaranteed_margin``. And eps_row <= 2 eps_sym for the symmetric loss.
3. Top-r. For any fixed encoders, P(n_i = 1 and at least r negatives score at or
   above the positive) <= eps_row / log(1 + r): ``top_r_error_bound``.

All functions are NumPy on floats (host side); they never sample.
"""

from __future__ import annotations

import math

import numpy as np
from jax.typing import ArrayLike

from clipsim.theory._checks import check_int, check_positive, check_real

__all__ = ["excess_budget", "guaranteed_margin", "margin_violation_bound", "top_r_error_bound"]


def excess_budget(upper_row: float, upper_col: float, floor: float) -> float:
    r"""Excess-loss budget of a near-optimal model: ``(U_row + U_col)/2 - F``, at least 0.

    Proof: a model whose symmetric loss is at most a reference model's has
    ``L - F <= L_ref - F <= (U_row + U_col)/2 - F`` (E4 bounds each direction of the
    reference; E3 gives ``L >= F``, so the result is clipped at 0).

    Args:
        upper_row: an upper bound on the reference's expected row loss (E4).
        upper_col: the same for its column loss.
        floor: the E3 floor ``E[log n_i]``.

    Returns:
        The budget in nats, ``>= 0``.
    """
    for name, v in (("upper_row", upper_row), ("upper_col", upper_col), ("floor", floor)):
        check_real(name, v)
    return max(0.0, 0.5 * (float(upper_row) + float(upper_col)) - float(floor))


def margin_violation_bound(row_excess: ArrayLike, margin: ArrayLike,
                           temperature: float) -> np.ndarray:
    r"""Upper bound on ``P(mhat_i <= mu)``: ``eps_row / log(1 + e^{-mu/tau})``, capped at 1.

    ``mhat_i = max_{j in G} s_ij - max_{j not in G} s_ij + tau log n_i``, with G the
    ``n_i`` batch pairs sharing row i's latent (i included).

    Proof: write ``A = sum_{j in G} e^{s_ij/tau}``, ``R = sum_{j not in G} e^{s_ij/tau}``
    and ``q_i = e^{s_ii/tau} / A``, so ``l_i = -log q_i + log(1 + R/A)``. Given the
    latents and ``x_i``, the texts of G are exchangeable (E3), so ``E[q_i] = 1/n_i``
    and, by Jensen, ``E[-log q_i] >= log n_i``; hence
    ``E[log(1 + R/A)] <= E[l_i - log n_i] = eps_row``. Since
    ``A <= n_i e^{max_G s/tau}`` and ``R >= e^{max_{not G} s/tau}``,
    ``R/A >= e^{-mhat_i/tau}``, and on ``mhat_i <= mu`` the term ``log(1 + R/A)`` is at
    least ``log(1 + e^{-mu/tau})``; Markov's inequality finishes.

    Args:
        row_excess: eps_row >= 0 (scalar or array).
        margin: mu (scalar or array, broadcast with ``row_excess``).
        temperature: tau > 0.

    Returns:
        The bound, in [0, 1], broadcast shape.
    """
    check_positive("temperature", temperature)
    eps = np.maximum(np.asarray(row_excess, np.float64), 0.0)
    mu = np.asarray(margin, np.float64)
    return np.minimum(1.0, eps / np.logaddexp(0.0, -mu / float(temperature)))


def guaranteed_margin(row_excess: float, delta: float, temperature: float) -> float:
    r"""The margin level mu_delta with ``P(mhat_i <= mu_delta) <= delta``.

    .. math::
        \mu_\delta = -\tau \log\bigl(e^{\varepsilon/\delta} - 1\bigr)
        \approx \tau \log(\delta / \varepsilon) \quad (\varepsilon \ll \delta),

    the solution of ``eps / log(1 + e^{-mu/tau}) = delta`` (see
    :func:`margin_violation_bound`). It is positive exactly when
    ``eps < delta log 2``; at ``eps = 0`` it is ``+inf``.

    Args:
        row_excess: eps_row >= 0.
        delta: the allowed violation probability in (0, 1).
        temperature: tau > 0.

    Returns:
        mu_delta (may be negative, or ``inf``).
    """
    check_real("row_excess", row_excess, low=0.0)
    check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    check_positive("temperature", temperature)
    if row_excess == 0:
        return math.inf
    return -float(temperature) * math.log(math.expm1(float(row_excess) / float(delta)))


def top_r_error_bound(row_excess: float, r: int) -> float:
    r"""Bound on ``P(n_i = 1, >= r negatives at or above the positive)``: ``eps / log(1 + r)``.

    Proof: on ``n_i = 1`` the group is ``{i}``, and at least r negatives at or above
    the positive give ``R/A >= r``, so ``log(1 + R/A) >= log(1 + r)``; with
    ``E[log(1 + R/A)] <= eps_row`` (see :func:`margin_violation_bound`), Markov.

    Args:
        row_excess: eps_row >= 0.
        r: rank >= 1.

    Returns:
        The bound, capped at 1.
    """
    check_real("row_excess", row_excess, low=0.0)
    check_int("r", r, 1)
    return min(1.0, float(row_excess) / math.log1p(r))
