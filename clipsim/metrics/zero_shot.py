"""Zero-shot classification against class embeddings (docs/theory.md, section 4 and E2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_int, check_ndim, check_same_rows
from clipsim.metrics.similarity import scores

__all__ = ["zero_shot_loss", "zero_shot_metrics", "zero_shot_ranks"]


def _class_scores(
    image_emb: ArrayLike, class_emb: ArrayLike, labels: ArrayLike
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Returns scores ``(n, C)``, the true-class score ``(n, 1)`` and labels."""
    s = scores(image_emb, class_emb)
    labels = as_int(labels, "labels")
    check_ndim(labels, 1, "labels")
    check_same_rows(s, labels, ("image_emb", "labels"))
    s_true = jnp.take_along_axis(s, labels[:, None], axis=1)
    return s, s_true, labels


def zero_shot_ranks(image_emb: ArrayLike, class_emb: ArrayLike, labels: ArrayLike) -> jnp.ndarray:
    r"""Rank of the true class among the class scores, ties counted against it.

    .. math::
        r(x) = \#\{c \ne c(x) : s_c(x) \ge s_{c(x)}(x)\},
        \qquad s_c(x) = \langle f(x), g_c \rangle

    The true class is in the top ``r`` exactly when :math:`r(x) < r`. Counting
    ties against the true class is the convention under which the ranking bound
    E2 (top-r error <= E[l_zs] / log(1 + r)) holds.

    Args:
        image_emb: Embeddings of the inputs, shape ``(n, d)``.
        class_emb: Embeddings of the class prompts, shape ``(C, d)``.
        labels: True classes in ``[0, C)``, shape ``(n,)``, integer. Out-of-range
            labels are not checked (they would need a value-dependent check).

    Returns:
        Ranks, shape ``(n,)``, ``int32`` in ``[0, C - 1]``; 0 is optimal. Per
        input, no reduction.
    """
    s, s_true, labels = _class_scores(image_emb, class_emb, labels)
    others = jnp.arange(s.shape[1])[None, :] != labels[:, None]
    return jnp.sum((s >= s_true) & others, axis=1, dtype=jnp.int32)


def zero_shot_loss(
    image_emb: ArrayLike,
    class_emb: ArrayLike,
    labels: ArrayLike,
    temperature: ArrayLike,
) -> jnp.ndarray:
    r"""Per-sample zero-shot loss (cross-entropy over the class prompts).

    .. math::
        \ell_{zs}(x) = \log\Bigl(1 + \sum_{c \ne c(x)}
            e^{(s_c(x) - s_{c(x)}(x))/\tau}\Bigr)
        = \operatorname{logsumexp}_c \bigl((s_c(x) - s_{c(x)}(x))/\tau\bigr)

    computed with ``logsumexp`` (the true class contributes :math:`e^0 = 1`).
    ``temperature`` is an array argument, so the function can be ``vmap``-ped
    over a grid of temperatures (as the E2 bound does).

    Args:
        image_emb: Embeddings of the inputs, shape ``(n, d)``.
        class_emb: Embeddings of the class prompts, shape ``(C, d)``.
        labels: True classes in ``[0, C)``, shape ``(n,)``, integer.
        temperature: Scalar :math:`\tau > 0` (not checked: it may be traced).

    Returns:
        Losses, shape ``(n,)``, no reduction. Range ``(0, \infty)``; tends to 0
        as the true class wins every comparison by a growing margin; equals
        ``log C`` when all scores tie.
    """
    s, s_true, _ = _class_scores(image_emb, class_emb, labels)
    tau = jnp.asarray(temperature, dtype=s.dtype)
    return jax.nn.logsumexp((s - s_true) / tau, axis=1)


def zero_shot_metrics(
    image_emb: ArrayLike,
    class_emb: ArrayLike,
    labels: ArrayLike,
    *,
    top_r: tuple[int, ...],
    temperature: ArrayLike,
) -> dict[str, jnp.ndarray]:
    r"""Zero-shot top-r errors, accuracy and mean loss.

    .. math::
        \mathrm{err}_r = \frac1n \sum_x [\,r(x) \ge r\,], \qquad
        \mathrm{acc} = 1 - \mathrm{err}_1, \qquad
        L_{zs} = \frac1n \sum_x \ell_{zs}(x)

    with :math:`r(x)` from :func:`zero_shot_ranks` (ties count as errors) and
    :math:`\ell_{zs}` from :func:`zero_shot_loss`.

    Keys: ``zs_top{r}_error`` for each ``r`` in ``top_r`` (range ``[0, 1]``,
    optimum 0), ``zs_accuracy`` (range ``[0, 1]``, optimum 1), ``zs_loss``
    (range ``(0, \infty)``, optimum 0). Reduction: mean over the ``n`` inputs.

    Args:
        image_emb: Embeddings of the inputs, shape ``(n, d)``.
        class_emb: Embeddings of the class prompts, shape ``(C, d)``.
        labels: True classes in ``[0, C)``, shape ``(n,)``, integer.
        top_r: Static tuple of positive integers.
        temperature: Scalar :math:`\tau > 0` for the loss.

    Returns:
        Dict of scalars in the score dtype.
    """
    top_r = tuple(top_r)
    if any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in top_r):
        raise ValueError(f"top_r must be a tuple of positive ints, got {top_r}.")
    ranks = zero_shot_ranks(image_emb, class_emb, labels)
    losses = zero_shot_loss(image_emb, class_emb, labels, temperature)
    dtype = losses.dtype
    out = {f"zs_top{r}_error": jnp.mean((ranks >= r).astype(dtype)) for r in top_r}
    out["zs_accuracy"] = jnp.mean((ranks < 1).astype(dtype))
    out["zs_loss"] = jnp.mean(losses)
    return out
