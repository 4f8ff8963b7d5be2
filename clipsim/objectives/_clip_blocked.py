"""The symmetric CLIP loss computed over row blocks of the score matrix, never holding B x B.

The tiling of Inf-CL (Cheng et al., 2024, arXiv 2410.17243): the score matrix
S = za zb^T is produced ``block`` rows at a time; each block of rows gives its
rows' log-sum-exps directly and updates the columns' log-sum-exps with an online
(running max) log-sum-exp; the backward pass recomputes each block of scores
instead of storing it. A training step therefore holds O(block x B) scores
instead of several B x B matrices, at the price of one more score matmul
(three in the forward-backward pass of the dense loss, four here).

``clip`` switches to this path from B = ``BLOCKED_MIN_BATCH`` on.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "BLOCKED_MIN_BATCH",
    "BLOCK_ROWS",
    "blocked_batch_stats",
    "clip_loss_blocked",
]

BLOCKED_MIN_BATCH = 1024
"""Smallest batch size B at which ``clip`` uses the blocked loss.

Measured with ``benchmarks/w2_large_batch.py`` (docs/performance.md): on a
2-core CPU the blocked loss's forward-backward pass is faster than the dense
one from B = 1024 on (1.2x at d = 64, 1.5x-2x at B = 2048-4096) and its memory
is O(block x B); at B <= 512 the gain is within the noise of the machine and
the dense path keeps the W1-sized runs exactly as they were.
"""

BLOCK_ROWS = 256
"""Default rows per block (a 256 x B float32 slab: 16 MiB at B = 16,384)."""


def _slab_terms(a_rows, zb, rows, valid, shift_rows, shift_cols, tau):
    """Scores of a block of rows and their shifted logits for both directions.

    Returns ``(s, x_row, x_col)``: ``s`` (T, B) scores, ``x_row`` = (s_ij - d_i)/tau
    and ``x_col`` = (s_ij - d_j)/tau, with padded rows set to -inf in ``x_col``.
    """
    s = a_rows @ zb.T
    x_row = (s - shift_rows[:, None]) / tau
    x_col = jnp.where(valid[:, None], (s - shift_cols[None, :]) / tau, -jnp.inf)
    return s, x_row, x_col


def _split(x: jax.Array, block: int) -> jax.Array:
    b = x.shape[0]
    nb = -(-b // block)
    widths = [(0, nb * block - b)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, widths).reshape(nb, block, *x.shape[1:])


def _row_indices(b: int, block: int) -> jax.Array:
    nb = -(-b // block)
    return jnp.arange(nb * block, dtype=jnp.int32).reshape(nb, block)


def _forward(za, zb, tau, block):
    """Row and column log-sum-exps (shifted), diagonals and hardest negatives, by blocks."""
    b, dtype = za.shape[0], za.dtype
    shift = jax.lax.stop_gradient(jnp.sum(za * zb, axis=-1))  # ~ s_ii; any finite shift is exact
    cols = jnp.arange(b, dtype=jnp.int32)

    def step(carry, args):
        col_max, col_sum = carry
        rows, a_rows, shift_rows = args
        valid = rows < b
        s, x_row, x_col = _slab_terms(a_rows, zb, rows, valid, shift_rows, shift, tau)
        row_lse = jax.nn.logsumexp(x_row, axis=1)
        diag = jnp.take_along_axis(s, jnp.minimum(rows, b - 1)[:, None], axis=1)[:, 0]
        off = rows[:, None] != cols[None, :]
        max_neg = jnp.max(jnp.where(off, s, -jnp.inf), axis=1)
        # online log-sum-exp over the rows for every column; before the first
        # block col_max is -inf and col_sum 0, so the rescaling factor is 0
        new_max = jnp.maximum(col_max, jnp.max(x_col, axis=0))
        rescale = jnp.where(jnp.isneginf(col_max), 0.0, jnp.exp(col_max - new_max))
        col_sum = rescale * col_sum + jnp.sum(jnp.exp(x_col - new_max[None, :]), axis=0)
        return (new_max, col_sum), (row_lse, diag, max_neg)

    init = (jnp.full((b,), -jnp.inf, dtype), jnp.zeros((b,), dtype))
    # the first block has a valid row for every column, so col_max is finite after it
    first_rows = _row_indices(b, block)
    (col_max, col_sum), (row_lse, diag, max_neg) = jax.lax.scan(
        step, init, (first_rows, _split(za, block), _split(shift, block)))
    col_lse = col_max + jnp.log(col_sum)
    cut = lambda x: x.reshape(-1)[:b]  # noqa: E731
    return cut(row_lse), col_lse, cut(diag), cut(max_neg), shift


def _losses(za, zb, tau, block):
    row_lse, col_lse, diag, max_neg, shift = _forward(za, zb, tau, block)
    # l_i = lse_j((s_ij - d_i)/tau) - (s_ii - d_i)/tau; d_i cancels exactly in exact arithmetic
    row = row_lse - (diag - shift) / tau
    col = col_lse - (diag - shift) / tau
    return (row, col, diag, max_neg), (row_lse, col_lse, shift)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _blocked(za, zb, tau, block):
    return _losses(za, zb, tau, block)[0]


def _blocked_fwd(za, zb, tau, block):
    out, (row_lse, col_lse, shift) = _losses(za, zb, tau, block)
    return out, (za, zb, tau, row_lse, col_lse, shift, out[2])


def _blocked_bwd(block, residuals, cotangents):
    za, zb, tau, row_lse, col_lse, shift, diag = residuals
    g_row, g_col = cotangents[0], cotangents[1]  # diag and max_neg are statistics: no gradient
    b = za.shape[0]

    def step(carry, args):
        d_zb, d_tau = carry
        rows, a_rows, shift_rows, lse_rows, g_rows = args
        valid = rows < b
        s, x_row, x_col = _slab_terms(a_rows, zb, rows, valid, shift_rows, shift, tau)
        p = jnp.exp(x_row - lse_rows[:, None])             # row softmax, entries <= 1
        q = jnp.exp(x_col - col_lse[None, :])              # column softmax (0 on padding)
        w = (g_rows[:, None] * p + g_col[None, :] * q) / tau
        d_rows = w @ zb
        d_zb = d_zb + w.T @ a_rows
        # d tau from the softmax parts; the shifts make the sums well conditioned
        x_col = jnp.where(valid[:, None], x_col, 0.0)      # q = 0 there; avoid 0 * -inf
        d_tau = d_tau - jnp.sum(g_rows[:, None] * p * x_row + g_col[None, :] * q * x_col) / tau
        return (d_zb, d_tau), d_rows

    rows = _row_indices(b, block)
    init = (jnp.zeros_like(zb), jnp.zeros((), za.dtype))
    g_row_blocks = _split(g_row, block)
    (d_zb, d_tau), d_za = jax.lax.scan(
        step, init, (rows, _split(za, block), _split(shift, block), _split(row_lse, block),
                     g_row_blocks))
    d_za = d_za.reshape(-1, za.shape[1])[:b]
    # the diagonal (positive) terms: dL/ds_ii gets -(g_i + g'_i) / tau
    g_diag = (g_row + g_col) / tau
    d_za = d_za - g_diag[:, None] * zb
    d_zb = d_zb - g_diag[:, None] * za
    d_tau = d_tau + jnp.sum(g_diag * (diag - shift)) / tau
    return d_za, d_zb, d_tau.astype(tau.dtype)


_blocked.defvjp(_blocked_fwd, _blocked_bwd)


def clip_loss_blocked(
    za: jax.Array, zb: jax.Array, tau: Any, *, block: int = BLOCK_ROWS
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Per-pair CLIP row and column losses of S = za zb^T, computed ``block`` rows at a time.

    The same values as ``clip_loss_from_scores(za @ zb.T, tau)``:

        l_i  = log sum_j exp((s_ij - s_ii) / tau),
        l'_j = log sum_i exp((s_ij - s_jj) / tau),

    with the rows' log-sum-exps taken inside each block of rows and the columns'
    accumulated over blocks by an online log-sum-exp (running max and rescaled
    sum). Logits are shifted by d_i = <za_i, zb_i> before exponentiation, which
    the losses do not depend on. The gradient (a custom VJP) recomputes each
    block of scores: with P, Q the row and column softmaxes and g, g' the
    cotangents of the row and column losses,

        dL/ds_ij = (g_i (P_ij - [i = j]) + g'_j (Q_ij - [i = j])) / tau,

    contracted with zb (for za), za (for zb) and -s_ij / tau (for tau) block by
    block. Memory: O(block x B) scores at any time, for any B.

    Also returns the in-batch statistics that ``batch_stats`` derives from the
    score matrix, computed in the same pass (no gradient).

    Args:
      za: (B, d) embeddings, B >= 2.
      zb: (B, d) embeddings; row i pairs with row i of ``za``; same dtype.
      tau: temperature, a positive scalar (may be traced; differentiable).
      block: rows per block (static); the last block may be partial.

    Returns:
      ``(row_losses, col_losses, stats)``: losses of shape (B,), no reduction;
      ``stats`` has ``diag`` (s_ii, shape (B,)) and ``max_neg``
      (max_{j != i} s_ij, shape (B,)), both without gradient.
    """
    if not isinstance(block, int) or isinstance(block, bool) or block < 1:
        raise ValueError(f"block must be a positive int, got {block!r}")
    za, zb = jnp.asarray(za), jnp.asarray(zb)
    tau = jnp.asarray(tau, za.dtype)
    block = min(block, za.shape[0])
    row, col, diag, max_neg = _blocked(za, zb, tau, block)
    return row, col, {"diag": jax.lax.stop_gradient(diag),
                      "max_neg": jax.lax.stop_gradient(max_neg)}


def blocked_batch_stats(
    za: jax.Array, zb: jax.Array, parts: dict[str, jax.Array], temperature: Any
) -> dict[str, jax.Array]:
    """``batch_stats`` from the diagonal and hardest negatives of ``clip_loss_blocked``.

    Same keys and definitions as ``batch_stats(za @ zb.T, temperature)``;
    ``neg_mean`` uses sum_{i != j} s_ij = <sum_i za_i, sum_j zb_j> - sum_i s_ii,
    so no B x B matrix is needed. Reduction: means over the B pairs
    (``neg_mean``: over the B(B-1) negatives). No gradient.

    Args:
      za: (B, d) embeddings.
      zb: (B, d) embeddings.
      parts: ``{"diag": (B,), "max_neg": (B,)}`` from ``clip_loss_blocked``.
      temperature: the effective tau.

    Returns:
      A dict of scalars with keys ``AUX_KEYS``.
    """
    za, zb = jax.lax.stop_gradient(za), jax.lax.stop_gradient(zb)
    diag, max_neg = parts["diag"], parts["max_neg"]
    b = za.shape[0]
    total = jnp.dot(jnp.sum(za, axis=0), jnp.sum(zb, axis=0))
    return {
        "pos_mean": jnp.mean(diag),
        "neg_mean": (total - jnp.sum(diag)) / (b * (b - 1)),
        "accuracy": jnp.mean((diag > max_neg).astype(diag.dtype)),
        "margin": jnp.mean(diag - max_neg),
        "temperature": jax.lax.stop_gradient(jnp.asarray(temperature, diag.dtype)),
    }
