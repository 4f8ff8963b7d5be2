"""The CLIP loss of a model over consecutive batches of held-out pairs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from clipsim.objectives._clip import clip_loss_from_scores

__all__ = ["clip_loss_per_batch"]


def clip_loss_per_batch(za: jax.Array, zb: jax.Array, *, batch_size: int,
                        temperature: Any) -> jax.Array:
    """Symmetric CLIP loss of each consecutive batch of ``batch_size`` pairs.

    The n pairs are cut into ``nb = n // batch_size`` batches in order (a last
    partial batch is dropped); batch t's loss is
    ``(1/2B) sum_i (l_i + l'_i)`` on its own B x B score matrix, the reduction of
    ``clip``. This is how held-out (population) losses are measured everywhere in
    the toolkit: at the training batch size, since the loss depends on B.

    Args:
        za: (n, d) embeddings of the first modality.
        zb: (n, d) embeddings of the second, row i paired with ``za[i]``.
        batch_size: B, static; at least 2.
        temperature: tau > 0, a scalar (may be traced).

    Returns:
        (nb,) losses, one per batch (empty when n < B).

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.eye(4)
        >>> clip_loss_per_batch(z, z, batch_size=2, temperature=1.0).shape
        (2,)
    """
    if za.ndim != 2 or za.shape != zb.shape:
        raise ValueError(f"clip_loss_per_batch: za {za.shape} and zb {zb.shape} must be the "
                         "same (n, d) shape")
    if batch_size < 2:
        raise ValueError(f"clip_loss_per_batch: batch_size = {batch_size} must be >= 2")
    nb = za.shape[0] // batch_size
    sa = za[: nb * batch_size].reshape(nb, batch_size, -1)
    sb = zb[: nb * batch_size].reshape(nb, batch_size, -1)

    def one(a: jax.Array, b: jax.Array) -> jax.Array:
        rows, cols = clip_loss_from_scores(a @ b.T, temperature)
        return 0.5 * (jnp.mean(rows) + jnp.mean(cols))

    return jax.lax.map(lambda ab: one(*ab), (sa, sb)) if nb else jnp.zeros((0,), za.dtype)
