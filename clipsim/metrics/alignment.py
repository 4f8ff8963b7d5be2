"""Alignment, modality gap and uniformity of embeddings (THEORY.md section 4)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, check_ndim, check_same_dim, check_same_rows
from clipsim.metrics.similarity import l2_normalize

__all__ = ["modality_gap", "positive_cosine", "uniformity"]


def positive_cosine(emb_a: ArrayLike, emb_b: ArrayLike, *, eps: float = 1e-12) -> jnp.ndarray:
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


def uniformity(emb: ArrayLike, *, eps: float = 1e-12) -> jnp.ndarray:
    r"""Uniformity of embeddings on the sphere (Wang and Isola, 2020).

    .. math::
        \log \frac{2}{n(n-1)} \sum_{i<j} \exp\bigl(-2 \lVert u_i - u_j \rVert^2\bigr),
        \qquad u_i = a_i / \max(\lVert a_i \rVert, \epsilon)

    computed with ``logsumexp`` over the pairs, with
    :math:`\lVert u_i - u_j \rVert^2 = \lVert u_i \rVert^2 + \lVert u_j \rVert^2
    - 2 \langle u_i, u_j \rangle` (clipped at 0).

    Args:
        emb: Embeddings, shape ``(n, d)`` with ``n >= 2``; normalized here.
        eps: Smallest norm divided by.

    Returns:
        Scalar in ``[-8, 0]``; lower is more uniform, 0 when all rows coincide.
        Reduction: mean over the ``n(n-1)/2`` unordered pairs inside the log.
    """
    emb = as_float(emb, "emb")
    check_ndim(emb, 2, "emb")
    n = emb.shape[0]
    if n < 2:
        raise ValueError(f"uniformity needs at least 2 rows, got shape {emb.shape}.")
    u = l2_normalize(emb, eps=eps)
    sq = jnp.sum(jnp.square(u), axis=-1)
    dist2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (u @ u.T), 0.0)
    upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)
    total = jax.nn.logsumexp(jnp.where(upper, -2.0 * dist2, -jnp.inf))
    return total - jnp.asarray(math.log(n * (n - 1) / 2), dtype=total.dtype)
