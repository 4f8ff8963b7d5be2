"""Score matrices and row normalization."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, check_ndim, check_same_dim

__all__ = ["l2_normalize", "scores"]


def scores(emb_a: ArrayLike, emb_b: ArrayLike) -> jnp.ndarray:
    r"""Inner-product score matrix between two sets of embeddings.

    .. math::
        s_{ij} = \langle a_i, b_j \rangle

    No normalization is applied: pass unit rows to get cosines.

    Args:
        emb_a: Embeddings of the first modality, shape ``(n, d)``.
        emb_b: Embeddings of the second modality, shape ``(m, d)``.

    Returns:
        Scores, shape ``(n, m)``, dtype of the promoted inputs. No reduction.
    """
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_ndim(emb_a, 2, "emb_a")
    check_ndim(emb_b, 2, "emb_b")
    check_same_dim(emb_a, emb_b, ("emb_a", "emb_b"))
    return emb_a @ emb_b.T


def l2_normalize(x: ArrayLike, *, eps: float = 1e-12) -> jnp.ndarray:
    r"""Scales each row to unit Euclidean norm, safely at zero.

    .. math::
        u_i = x_i / \sqrt{\max(\lVert x_i \rVert^2, \epsilon^2)}

    Rows with norm below ``eps`` are divided by ``eps`` instead (a zero row stays
    zero), and the gradient stays finite at zero.

    Args:
        x: Array of shape ``(..., d)``.
        eps: Smallest norm divided by.

    Returns:
        Array of the same shape and dtype as ``x``.
    """
    x = as_float(x, "x")
    sq = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    return x * jnp.reciprocal(jnp.sqrt(jnp.maximum(sq, jnp.asarray(eps, x.dtype) ** 2)))
