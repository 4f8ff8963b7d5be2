r"""How much scores and weights depend on modality-unique features (docs/theory.md, P2).

Two numbers, both zero for the oracle encoders and both blind to nothing that
decodability (ridge R^2) sees:

- :func:`unique_invariance`: the score's conditional variance over the unique
  features at a fixed shared latent, in units of the temperature,
  :math:`\mathbb E_z \operatorname{Var}_{\xi,\zeta}[s(x, y) \mid z] / \tau^2`.
  Its inputs are embeddings of pairs drawn with z (and everything else but the
  unique features) held fixed, so a Monte Carlo estimate is one call;
- :func:`unique_energy_share`: the share of a linear encoder's output energy
  that comes from the unique block, weighted by the unique features' variance,
  :math:`\lVert W A_\xi \rVert_F^2 \sigma_\xi^2 / \mathbb E \lVert W x \rVert^2`.
  Unlike the unweighted block share it says how much of f(x) the unique
  features actually move, whatever their scale.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, check_ndim

__all__ = ["conditional_score_variance", "unique_energy_share", "unique_invariance"]


def conditional_score_variance(scores: ArrayLike, *, temperature: ArrayLike = 1.0) -> jnp.ndarray:
    r"""Mean over groups of the within-group variance of scores, over :math:`\tau^2`.

    .. math::
        V = \frac{1}{m} \sum_{i=1}^{m} \frac{1}{r-1} \sum_{j=1}^{r}
            \bigl(s_{ij} - \bar s_i\bigr)^2 \Big/ \tau^2,
        \qquad \bar s_i = \frac1r \sum_j s_{ij}

    Row i holds r scores that share everything but what is being resampled (for
    :func:`unique_invariance`: one shared latent z_i, r draws of the unique
    features), so V is an unbiased estimate of
    :math:`\mathbb E_z \operatorname{Var}[s \mid z] / \tau^2`.

    Args:
        scores: Scores, shape ``(m, r)`` with ``r >= 2``.
        temperature: :math:`\tau > 0` (a scalar; traced values are fine).

    Returns:
        Scalar >= 0; 0 when every row is constant (a score invariant to what was
        resampled). Units: squared logits (scores over tau). Reduction: unbiased
        variance (ddof 1) within rows, mean over rows.
    """
    scores = as_float(scores, "scores")
    check_ndim(scores, 2, "scores")
    if scores.shape[1] < 2:
        raise ValueError(f"scores needs at least 2 draws per row (axis 1), got shape "
                         f"{scores.shape}.")
    tau = jnp.asarray(temperature, scores.dtype)
    var = jnp.var(scores, axis=1, ddof=1)
    return jnp.mean(var) / jnp.square(tau)


def unique_invariance(emb_a: ArrayLike, emb_b: ArrayLike, *,
                      temperature: ArrayLike = 1.0) -> jnp.ndarray:
    r"""The score's sensitivity to unique features at a fixed shared latent.

    ``emb_a[i, j]`` and ``emb_b[i, j]`` embed a positive pair drawn from the
    shared latent z_i with the j-th draw of the unique features (xi for the
    image, zeta for the text; everything else held fixed within row i). The
    scores :math:`s_{ij} = \langle a_{ij}, b_{ij} \rangle` go to
    :func:`conditional_score_variance`. An encoder pair that ignores the unique
    features (the oracle) gives exactly 0; the paper's near-optimal model makes
    it small.

    Args:
        emb_a: Embeddings, shape ``(m, r, d)``: m latents, r >= 2 draws each.
        emb_b: Embeddings, shape ``(m, r, d)``.
        temperature: :math:`\tau > 0`.

    Returns:
        Scalar >= 0, optimum 0. Reduction: as ``conditional_score_variance``.
    """
    emb_a = as_float(emb_a, "emb_a")
    emb_b = as_float(emb_b, "emb_b")
    check_ndim(emb_a, 3, "emb_a")
    check_ndim(emb_b, 3, "emb_b")
    if emb_a.shape != emb_b.shape:
        raise ValueError(f"emb_a and emb_b must have the same (m, r, d) shape, got "
                         f"{emb_a.shape} and {emb_b.shape}.")
    return conditional_score_variance(jnp.sum(emb_a * emb_b, axis=-1), temperature=temperature)


def unique_energy_share(weight: ArrayLike, unique_basis: ArrayLike, unique_scale: ArrayLike,
                        inputs: ArrayLike) -> jnp.ndarray:
    r"""Share of a linear encoder's output energy driven by the unique features.

    .. math::
        \frac{\sigma_\xi^2 \lVert W A_\xi \rVert_F^2}
             {\frac1n \sum_{i=1}^n \lVert W x_i \rVert^2}

    For :math:`x = A_z z + A_\xi \xi + \epsilon` with
    :math:`\xi \sim N(0, \sigma_\xi^2 I)` independent of the rest, the numerator
    is :math:`\mathbb E \lVert W A_\xi \xi \rVert^2`, the part of
    :math:`\mathbb E \lVert W x \rVert^2` (estimated by the mean over ``inputs``)
    that the unique features contribute. The bias and the output normalization
    of the encoder are not included.

    Args:
        weight: Encoder matrix :math:`W`, shape ``(d, dx)``.
        unique_basis: :math:`A_\xi`, shape ``(dx, kx)``.
        unique_scale: :math:`\sigma_\xi \ge 0`, a scalar.
        inputs: Samples :math:`x_i` from the data, shape ``(n, dx)``.

    Returns:
        Scalar in ``[0, 1]`` up to Monte Carlo error in the denominator; 0 is
        ideal. Reduction: sums of squares, mean over the n inputs.
    """
    weight = as_float(weight, "weight")
    unique_basis = as_float(unique_basis, "unique_basis")
    inputs = as_float(inputs, "inputs")
    check_ndim(weight, 2, "weight")
    check_ndim(unique_basis, 2, "unique_basis")
    check_ndim(inputs, 2, "inputs")
    for name, rows in (("unique_basis", unique_basis.shape[0]), ("inputs", inputs.shape[1])):
        if rows != weight.shape[1]:
            raise ValueError(f"{name} must match weight.shape[1] = {weight.shape[1]}, got "
                             f"unique_basis {unique_basis.shape} and inputs {inputs.shape}.")
    scale = jnp.asarray(unique_scale, weight.dtype)
    unique = jnp.square(scale) * jnp.sum(jnp.square(weight @ unique_basis))
    total = jnp.mean(jnp.sum(jnp.square(inputs @ weight.T), axis=1))
    return unique / total
