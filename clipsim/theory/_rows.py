"""Row statistics of a score matrix shared by E1, E2 and E5."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def row_statistics(scores: jnp.ndarray, temperature: jnp.ndarray) -> tuple[jnp.ndarray, ...]:
    r"""Per-row loss, margin and largest scaled negative gap.

    With :math:`\Delta_{ij} = s_{ij} - s_{ii}` (set to exactly 0 on the diagonal),

    .. math::
        l_i = \log \sum_j e^{\Delta_{ij}/\tau}, \qquad
        m_i = -\max_{j \ne i} \Delta_{ij}, \qquad
        g_i = -m_i / \tau .

    Writing the loss as a log-sum-exp of gaps that contains an exact 0 keeps it
    non-negative and finite for every ``tau > 0``.

    Returns:
        ``(loss, margin, gap, scale)``: three ``(B,)`` arrays and the scalar
        ``1 + log B + max |Delta| / tau`` used to size rounding tolerances.
    """
    b = scores.shape[0]
    diag = jnp.diagonal(scores)
    eye = jnp.eye(b, dtype=bool)
    delta = jnp.where(eye, jnp.zeros((), scores.dtype), scores - diag[:, None])
    z = delta / temperature
    loss = jax.nn.logsumexp(z, axis=1)
    max_neg = jnp.max(jnp.where(eye, -jnp.inf, delta), axis=1)
    margin = 0.0 - max_neg  # 0 - x keeps an exact zero margin at +0
    gap = max_neg / temperature
    scale = 1.0 + jnp.log(b) + jnp.max(jnp.abs(z))
    return loss, margin, gap, scale
