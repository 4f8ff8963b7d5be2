"""Score matrices and row normalization."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, check_ndim, check_same_dim

__all__ = ["NORM_FLOOR", "l2_normalize", "scores"]

NORM_FLOOR = 1e-6
"""Smallest row norm divided by in ``l2_normalize`` (encoders and metrics alike).

A float32 embedding computed from O(1) inputs carries rounding of about 1e-7 per
coordinate, so a row shorter than 1e-6 has no meaningful direction; the floor
also bounds the Jacobian of the normalization at ``1 / NORM_FLOOR`` = 1e6 near a
zero row, where a floor of 1e-12 would give 1e12 and overflow float32 updates.
"""


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


def l2_normalize(x: ArrayLike, *, eps: float = NORM_FLOOR) -> jnp.ndarray:
    r"""Scales each row to unit Euclidean norm, safely at zero.

    .. math::
        u_i = x_i / \sqrt{\max(\lVert x_i \rVert^2, \epsilon^2)}

    Rows with norm below ``eps`` are divided by ``eps`` instead (a zero row stays
    zero), and the gradient stays finite at zero (at most ``1 / eps`` in norm).
    The one normalization of the package: the encoders' outputs
    (``clipsim.models.normalize_rows`` is this function), the class embeddings
    and the metrics all use it.

    Args:
        x: Array of shape ``(..., d)``.
        eps: Smallest norm divided by (default ``NORM_FLOOR`` = 1e-6).

    Returns:
        Array of the same shape and dtype as ``x``.
    """
    x = as_float(x, "x")
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, jnp.asarray(eps * eps, x.dtype)))
