"""Alignment, modality gap and uniformity of embeddings (docs/theory.md, section 4)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._blocked import block_rows, map_row_blocks, use_blocked
from clipsim.metrics._checks import (
    as_float,
    check_min_rows,
    check_ndim,
    check_same_dim,
    check_same_rows,
)
from clipsim.metrics.similarity import NORM_FLOOR, l2_normalize

__all__ = ["modality_gap", "positive_cosine", "uniformity"]


def positive_cosine(
    emb_a: ArrayLike, emb_b: ArrayLike, *, eps: float = NORM_FLOOR
) -> jnp.ndarray:
    r"""Mean cosine similarity of the positive pairs.

    .. math::
        \frac1n \sum_i \frac{\langle a_i, b_i \rangle}
            {\max(\lVert a_i \rVert, \epsilon)\,\max(\lVert b_i \rVert, \epsilon)}

    Rows are normalized here, so unnormalized inputs are fine; a zero row has
    cosine 0.

    Args:
        emb_a: Embeddings, shape ``(n, d)``.
        emb_b: Embeddings, shape ``(n, d)``; row ``i`` pairs with ``emb_a[i]``.
        eps: Smallest norm divided by.

    Returns:
        Scalar in ``[-1, 1]``, optimum 1. Reduction: mean over pairs.
    """
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_ndim(emb_a, 2, "emb_a")
    check_ndim(emb_b, 2, "emb_b")
    check_same_rows(emb_a, emb_b, ("emb_a", "emb_b"))
    check_same_dim(emb_a, emb_b, ("emb_a", "emb_b"))
    cos = jnp.sum(l2_normalize(emb_a, eps=eps) * l2_normalize(emb_b, eps=eps), axis=-1)
    return jnp.mean(cos)


def modality_gap(emb_a: ArrayLike, emb_b: ArrayLike) -> jnp.ndarray:
    r"""Distance between the mean embeddings of the two modalities.

    .. math::
        \Bigl\lVert \frac1n \sum_i a_i - \frac1m \sum_j b_j \Bigr\rVert_2

    The embeddings are used as given (no normalization): pass unit rows for the
    gap on the sphere.

    Args:
        emb_a: Embeddings, shape ``(n, d)``.
        emb_b: Embeddings, shape ``(m, d)``.

    Returns:
        Scalar in ``[0, \infty)`` (at most 2 for unit rows); 0 means no gap.
        Reduction: means over rows, then the Euclidean norm.
    """
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_ndim(emb_a, 2, "emb_a")
    check_ndim(emb_b, 2, "emb_b")
    check_same_dim(emb_a, emb_b, ("emb_a", "emb_b"))
    return jnp.linalg.norm(jnp.mean(emb_a, axis=0) - jnp.mean(emb_b, axis=0))


def _uniformity_blocked_lse(u: jnp.ndarray, sq: jnp.ndarray, block: int) -> jnp.ndarray:
    """``logsumexp_{i<j} -2 ||u_i - u_j||^2`` over blocks of rows, each pair visited once.

    Row i meets rows i + t (mod n) for t = 1, ..., floor(n/2); for even n the pairs
    at t = n/2 are met from both ends and carry weight 1/2. A block of rows
    starting at r0 needs the window of rows r0 + 1, ..., r0 + block - 1 + n/2
    (mod n), read from ``u`` repeated. The exponents lie in [-8, 0], so the sums
    of exponentials need no shift.
    """
    n = u.shape[0]
    h = n // 2
    width = block - 1 + h
    u_rep = jnp.concatenate([u, u, u[:block]], axis=0)
    sq_rep = jnp.concatenate([sq, sq, sq[:block]], axis=0)
    offsets = jnp.arange(width, dtype=jnp.int32)
    local = jnp.arange(block, dtype=jnp.int32)
    half = jnp.log(jnp.asarray(0.5, u.dtype))

    def one(rows, valid, u_rows, sq_rows):
        start = rows[0] + 1
        u_win = jax.lax.dynamic_slice_in_dim(u_rep, start, width)
        sq_win = jax.lax.dynamic_slice_in_dim(sq_rep, start, width)
        dist2 = jnp.maximum(sq_rows[:, None] + sq_win[None, :] - 2.0 * (u_rows @ u_win.T), 0.0)
        t = offsets[None, :] + 1 - local[:, None]           # j = i + t (mod n)
        pair = (t >= 1) & (t <= h) & valid[:, None]
        logit = -2.0 * dist2
        if n % 2 == 0:
            logit = jnp.where(t == h, logit + half, logit)
        return jnp.sum(jnp.where(pair, jnp.exp(logit), 0.0), axis=1)

    return jnp.log(jnp.sum(map_row_blocks(one, n, block, u, sq)))


def uniformity(
    emb: ArrayLike, *, eps: float = NORM_FLOOR, block: int | None = None
) -> jnp.ndarray:
    r"""Uniformity of embeddings on the sphere (Wang and Isola, 2020).

    .. math::
        \log \frac{2}{n(n-1)} \sum_{i<j} \exp\bigl(-2 \lVert u_i - u_j \rVert^2\bigr),
        \qquad u_i = a_i / \max(\lVert a_i \rVert, \epsilon)

    computed with ``logsumexp`` over the pairs, with
    :math:`\lVert u_i - u_j \rVert^2 = \lVert u_i \rVert^2 + \lVert u_j \rVert^2
    - 2 \langle u_i, u_j \rangle` (clipped at 0).

    From ``n >= BLOCKED_MIN_ROWS`` (or whenever ``block`` is given) the pairs are
    visited ``block`` rows at a time, each unordered pair once (row i against
    rows i+1, ..., i+n/2 modulo n, the pair at distance n/2 with weight 1/2 when
    n is even), so the blocked path does half the dense work in O(block x n)
    memory; the value is the same. Gradients through it recompute each block
    (``jax.checkpoint``), so they do not hold the n x n matrix either.

    Args:
        emb: Embeddings, shape ``(n, d)`` with ``n >= 2``; normalized here.
        eps: Smallest norm divided by.
        block: Rows per block (static), or None for the default: dense below
            ``BLOCKED_MIN_ROWS`` rows, blocks of ``block_rows(n, n)`` rows above.

    Returns:
        Scalar in ``[-8, 0]``; lower is more uniform, 0 when all rows coincide.
        Reduction: mean over the ``n(n-1)/2`` unordered pairs inside the log.
    """
    emb = as_float(emb, "emb")
    check_ndim(emb, 2, "emb")
    check_min_rows(emb, 2, "emb")
    n = emb.shape[0]
    u = l2_normalize(emb, eps=eps)
    sq = jnp.sum(jnp.square(u), axis=-1)
    if use_blocked(n, block):
        total = _uniformity_blocked_lse(u, sq, block_rows(n, n, block))
    else:
        dist2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (u @ u.T), 0.0)
        upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)
        total = jax.nn.logsumexp(jnp.where(upper, -2.0 * dist2, -jnp.inf))
    return total - jnp.asarray(math.log(n * (n - 1) / 2), dtype=total.dtype)
