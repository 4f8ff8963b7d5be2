"""Per-pair margins with same-latent negatives excluded (docs/theory.md, section 4)."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._blocked import block_rows, map_row_blocks, use_blocked
from clipsim.metrics._checks import as_float, check_ndim, check_same_dim, check_same_rows
from clipsim.metrics.similarity import scores

__all__ = ["margin_stats", "margin_summary", "pair_margins", "same_latent_mask"]


def same_latent_mask(latents: ArrayLike, *, atol: float = 1e-6) -> jnp.ndarray:
    r"""Which pairs of rows share a latent.

    .. math::
        E_{ij} = \bigwedge_k \bigl[\,|z_{ik} - z_{jk}| \le \mathrm{atol}\,\bigr]

    Args:
        latents: Latents, shape ``(n, k)``.
        atol: Absolute tolerance per coordinate.

    Returns:
        Boolean matrix, shape ``(n, n)``, true on the diagonal for finite rows.
        No reduction.
    """
    latents = as_float(latents, "latents")
    check_ndim(latents, 2, "latents")
    diff = jnp.abs(latents[:, None, :] - latents[None, :, :])
    return jnp.all(diff <= atol, axis=-1)


def pair_margins(
    emb_a: ArrayLike,
    emb_b: ArrayLike,
    latents: ArrayLike,
    *,
    atol: float = 1e-6,
    block: int | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    r"""Margin of each positive pair over its different-latent negatives.

    .. math::
        m_i = s_{ii} - \max_{j \ne i,\; z_j \ne z_i} s_{ij},
        \qquad u_i = \#\{j \ne i : z_j = z_i\}

    with :math:`s_{ij} = \langle a_i, b_j \rangle`. Negatives that share the
    latent of pair ``i`` (unexpected positives) are excluded from the max and
    counted in :math:`u_i`. Two latent rows are equal when every coordinate
    agrees within ``atol``. If every ``j != i`` shares the latent of ``i``,
    :math:`m_i` is NaN.

    Range :math:`(-\infty, \infty)`; larger is better, positive means the pair
    beats every different-latent negative.

    From ``n >= BLOCKED_MIN_ROWS`` (or whenever ``block`` is given) the scores and
    the latent comparisons are computed ``block`` rows at a time
    (``clipsim.metrics._blocked``), so memory is O(block x n) instead of O(n^2);
    the results are the same.

    Args:
        emb_a: Embeddings, shape ``(n, d)``; row ``i`` pairs with row ``i`` of
            ``emb_b``.
        emb_b: Embeddings, shape ``(n, d)``.
        latents: Shared latents of the pairs, shape ``(n, k)``.
        atol: Absolute tolerance for latent equality.
        block: Rows per block (static), or None for the default: dense below
            ``BLOCKED_MIN_ROWS`` rows, blocks of ``block_rows(n, n)`` rows above.

    Returns:
        ``(margins, num_same_latent_negatives)``: margins of shape ``(n,)`` in the
        score dtype, counts of shape ``(n,)`` as ``int32``. Per pair, no reduction.
    """
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    latents = as_float(latents, "latents")
    check_ndim(latents, 2, "latents")
    check_same_rows(emb_a, emb_b, ("emb_a", "emb_b"))
    check_same_rows(emb_a, latents, ("emb_a", "latents"))
    n = emb_a.shape[0]
    if use_blocked(n, block):
        check_ndim(emb_a, 2, "emb_a")
        check_ndim(emb_b, 2, "emb_b")
        check_same_dim(emb_a, emb_b, ("emb_a", "emb_b"))
        return _pair_margins_blocked(emb_a, emb_b, latents, atol, block_rows(n, n, block))
    s = scores(emb_a, emb_b)
    off_diag = ~jnp.eye(n, dtype=bool)
    same = same_latent_mask(latents, atol=atol)
    negatives = off_diag & ~same
    hardest = jnp.max(jnp.where(negatives, s, -jnp.inf), axis=1)
    margins = jnp.where(jnp.any(negatives, axis=1), jnp.diagonal(s) - hardest, jnp.nan)
    counts = jnp.sum(off_diag & same, axis=1, dtype=jnp.int32)
    return margins.astype(s.dtype), counts


def _same_latent_rows(z_block: jnp.ndarray, latents_t: jnp.ndarray, atol: float) -> jnp.ndarray:
    """``same_latent_mask`` rows of a block: (block, k) against (k, n) -> (block, n) bool.

    The coordinates are the leading axis of the comparison, so the reduction
    over them runs along contiguous rows of length n.
    """
    diff = jnp.abs(z_block.T[:, :, None] - latents_t[:, None, :])
    return jnp.all(diff <= atol, axis=0)


def _pair_margins_blocked(
    emb_a: jnp.ndarray, emb_b: jnp.ndarray, latents: jnp.ndarray, atol: float, block: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``pair_margins`` over blocks of ``block`` rows (checked inputs)."""
    n = emb_a.shape[0]
    latents_t = latents.T
    cols = jnp.arange(n, dtype=jnp.int32)
    dtype = jnp.result_type(emb_a, emb_b)

    def one(rows, valid, a, z):
        s = a @ emb_b.T
        off = rows[:, None] != cols[None, :]
        same = _same_latent_rows(z, latents_t, atol)
        negatives = off & ~same
        hardest = jnp.max(jnp.where(negatives, s, -jnp.inf), axis=1)
        diag = jnp.take_along_axis(s, jnp.minimum(rows, n - 1)[:, None], axis=1)[:, 0]
        margins = jnp.where(jnp.any(negatives, axis=1), diag - hardest, jnp.nan)
        counts = jnp.sum(off & same, axis=1, dtype=jnp.int32)
        return margins.astype(dtype), counts

    return map_row_blocks(one, n, block, emb_a, latents)


def margin_stats(
    emb_a: ArrayLike,
    emb_b: ArrayLike,
    latents: ArrayLike,
    *,
    atol: float = 1e-6,
    block: int | None = None,
) -> dict[str, jnp.ndarray]:
    r"""Summary statistics of :func:`pair_margins` over a batch.

    Keys (all scalars in the score dtype):

    - ``margin_median``: NaN-ignoring median of :math:`m_i`. Larger is better.
    - ``margin_p05``: NaN-ignoring 5th percentile (linear interpolation, as
      ``numpy.nanpercentile``). Larger is better.
    - ``margin_frac_nonpositive``: :math:`\#\{i : m_i \le 0\} / \#\{i : m_i
      \text{ defined}\}`, in ``[0, 1]``, optimum 0.
    - ``unexpected_positive_rate``: :math:`\frac1n \sum_i [u_i > 0]`, the
      fraction of pairs with at least one same-latent negative, in ``[0, 1]``.
      A property of the data, not of the model.
    - ``unexpected_positive_mean``: :math:`\frac1n \sum_i u_i`, in ``[0, n-1]``.

    Reduction: mean (or median/percentile) over the ``n`` pairs; margin keys
    skip NaN margins and are NaN when every margin is NaN.

    Args:
        emb_a: Embeddings, shape ``(n, d)``.
        emb_b: Embeddings, shape ``(n, d)``.
        latents: Latents, shape ``(n, k)``.
        atol: Absolute tolerance for latent equality.
        block: Rows per block, or None (see :func:`pair_margins`).

    Returns:
        Dict of the five scalars above.
    """
    return margin_summary(*pair_margins(emb_a, emb_b, latents, atol=atol, block=block))


def margin_summary(margins: jnp.ndarray, counts: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """The five statistics of ``margin_stats`` from per-pair margins and counts.

    Lets a caller that computes ``pair_margins`` another way (for example in row
    blocks, for n too large for an n x n score matrix) report the same numbers.

    Reduction: as ``margin_stats`` (median, 5th percentile and means over pairs;
    NaN margins skipped).

    Args:
        margins: per-pair margins m_i, shape ``(n,)``; NaN where undefined.
        counts: same-latent negatives per pair, shape ``(n,)``, integer.

    Returns:
        Dict with ``margin_median``, ``margin_p05``, ``margin_frac_nonpositive``,
        ``unexpected_positive_rate``, ``unexpected_positive_mean``.
    """
    dtype = margins.dtype
    nonpositive = jnp.where(jnp.isnan(margins), jnp.nan, (margins <= 0).astype(dtype))
    return {
        "margin_median": jnp.nanmedian(margins),
        "margin_p05": jnp.nanpercentile(margins, 5.0).astype(dtype),
        "margin_frac_nonpositive": jnp.nanmean(nonpositive),
        "unexpected_positive_rate": jnp.mean((counts > 0).astype(dtype)),
        "unexpected_positive_mean": jnp.mean(counts.astype(dtype)),
    }
