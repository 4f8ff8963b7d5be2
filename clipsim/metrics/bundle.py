"""One call for the embedding metrics logged at every evaluation point."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics.alignment import modality_gap, positive_cosine, uniformity
from clipsim.metrics.margins import margin_stats
from clipsim.metrics.retrieval import retrieval_recall

__all__ = ["embedding_metrics"]


def embedding_metrics(
    emb_a: ArrayLike,
    emb_b: ArrayLike,
    latents: ArrayLike,
    *,
    ks: tuple[int, ...],
    atol: float = 1e-6,
) -> dict[str, jnp.ndarray]:
    """Margins, retrieval, alignment, gap and uniformity of paired embeddings.

    Merges :func:`margin_stats`, :func:`retrieval_recall` (``ks``),
    ``positive_cosine``, ``modality_gap``, ``uniformity_a`` and ``uniformity_b``
    (see those functions for the math, ranges and reductions). All values are
    scalars; the function is jittable and ``vmap``-pable.

    Args:
        emb_a: Embeddings, shape ``(n, d)``, ``n >= 2``.
        emb_b: Embeddings, shape ``(n, d)``; row ``i`` pairs with ``emb_a[i]``.
        latents: Shared latents of the pairs, shape ``(n, k)``.
        ks: Static tuple of positive ints for recall@k.
        atol: Absolute tolerance for latent equality in the margins.

    Returns:
        Dict of scalars.
    """
    out = dict(margin_stats(emb_a, emb_b, latents, atol=atol))
    out.update(retrieval_recall(emb_a, emb_b, ks=ks))
    out["positive_cosine"] = positive_cosine(emb_a, emb_b)
    out["modality_gap"] = modality_gap(emb_a, emb_b)
    out["uniformity_a"] = uniformity(emb_a)
    out["uniformity_b"] = uniformity(emb_b)
    return out
