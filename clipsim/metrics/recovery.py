"""Feature recovery: what the embeddings keep of the latents (docs/theory.md, section 4)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.typing import ArrayLike

from clipsim.metrics._checks import (
    as_float,
    check_axis_match,
    check_ndim,
    check_same_rows,
    check_split,
)
from clipsim.metrics._ridge import fit_predict

__all__ = ["principal_angles", "ridge_r2", "unique_weight_share"]

# Held-out targets count as constant when their spread is within this many
# machine epsilons of their largest magnitude (rounding in the mean).
_ZERO_VARIANCE_ULPS = 64.0


def ridge_r2(
    features: ArrayLike,
    targets: ArrayLike,
    *,
    ridge: float = 1e-3,
    train_frac: float = 0.5,
) -> jnp.ndarray:
    r"""Held-out :math:`R^2` of a ridge regression from features to targets.

    Fits ridge regression with an unpenalized intercept on the first
    :math:`n_{tr} = \lfloor \mathrm{train\_frac} \cdot n \rfloor` rows:

    .. math::
        W = (\tilde X^\top \tilde X + \lambda n_{tr} I)^{-1} \tilde X^\top \tilde Y

    (:math:`\tilde X, \tilde Y` centered by the training means, solved with
    ``jnp.linalg.solve``), then scores the remaining rows, pooled over target
    columns:

    .. math::
        R^2 = 1 - \frac{\sum_{i \in te} \sum_t (y_{it} - \hat y_{it})^2}
                       {\sum_{i \in te} \sum_t (y_{it} - \bar y^{te}_t)^2}

    with :math:`\bar y^{te}` the held-out means. Returns NaN when the held-out
    targets have zero variance (up to rounding), including ``t = 0`` target
    columns (e.g. a generator with no unique features). Rows should be in random
    order, since the split is by position.

    Args:
        features: Inputs, shape ``(n, p)`` (e.g. embeddings).
        targets: Targets, shape ``(n, t)`` or ``(n,)`` (e.g. shared or unique
            latents).
        ridge: Penalty per training row, :math:`\lambda \ge 0`.
        train_frac: Static fraction of rows used for fitting, in ``(0, 1)``.

    Returns:
        Scalar in ``(-\infty, 1]``; 1 is perfect recovery, about 0 (slightly
        below) for targets independent of the features. Reduction: sums of
        squares pooled over held-out rows and target columns.
    """
    features = as_float(features, "features")
    targets = as_float(targets, "targets")
    if targets.ndim == 1:
        targets = targets[:, None]
    check_ndim(features, 2, "features")
    check_ndim(targets, 2, "targets")
    check_same_rows(features, targets, ("features", "targets"))
    dtype = jnp.result_type(features, targets)
    features = features.astype(dtype)
    targets = targets.astype(dtype)
    n_train = check_split(features.shape[0], train_frac)
    y_test = targets[n_train:]
    pred = fit_predict(features[:n_train], targets[:n_train], features[n_train:], ridge)
    sse = jnp.sum(jnp.square(y_test - pred))
    sst = jnp.sum(jnp.square(y_test - jnp.mean(y_test, axis=0)))
    scale = jnp.max(jnp.abs(y_test), initial=0.0)
    tol = y_test.size * jnp.square(_ZERO_VARIANCE_ULPS * jnp.finfo(dtype).eps * scale)
    constant = sst <= tol
    return jnp.where(constant, jnp.nan, 1.0 - sse / jnp.where(constant, 1.0, sst))


def unique_weight_share(
    weight: ArrayLike, shared_basis: ArrayLike, unique_basis: ArrayLike
) -> jnp.ndarray:
    r"""Share of a linear encoder's energy on the unique (modality-specific) block.

    .. math::
        \frac{\lVert W A_\xi \rVert_F^2}
             {\lVert W A_z \rVert_F^2 + \lVert W A_\xi \rVert_F^2}

    for an encoder :math:`f(x) = W x` and an input :math:`x = A_z z + A_\xi \xi`.

    Args:
        weight: Encoder matrix :math:`W`, shape ``(d, dx)``.
        shared_basis: Mixing of the shared latents :math:`A_z`, shape ``(dx, k)``.
        unique_basis: Mixing of the unique latents :math:`A_\xi`, shape
            ``(dx, kx)``; ``kx = 0`` gives 0.

    Returns:
        Scalar in ``[0, 1]``; 0 is ideal (the encoder ignores the unique block).
        NaN when :math:`W` annihilates both blocks. Reduction: sums of squares.
    """
    weight = as_float(weight, "weight")
    shared_basis = as_float(shared_basis, "shared_basis")
    unique_basis = as_float(unique_basis, "unique_basis")
    check_ndim(weight, 2, "weight")
    check_ndim(shared_basis, 2, "shared_basis")
    check_ndim(unique_basis, 2, "unique_basis")
    for name, basis in (("shared_basis", shared_basis), ("unique_basis", unique_basis)):
        check_axis_match(weight, 1, basis, 0, ("weight", name),
                         f"weight.shape[1] == {name}.shape[0] (rows)")
    shared = jnp.sum(jnp.square(weight @ shared_basis))
    unique = jnp.sum(jnp.square(weight @ unique_basis))
    return unique / (shared + unique)


def principal_angles(weight: ArrayLike, shared_basis: ArrayLike) -> np.ndarray:
    r"""Principal angles between an encoder's row space and the shared subspace.

    Host-side (NumPy/SciPy, not jittable): returns
    ``scipy.linalg.subspace_angles(weight.T, shared_basis)``, the angles
    :math:`\theta_1 \ge \dots \ge \theta_q` between :math:`\mathrm{row}(W)` and
    :math:`\mathrm{col}(A_z)`, with :math:`\cos \theta_i` the singular values of
    :math:`Q_W^\top Q_A` for orthonormal bases :math:`Q_W, Q_A`.

    The count is :math:`q = \min(\mathrm{rank}\,W, \mathrm{rank}\,A_z)`, which is
    ``min(d, k)`` for full-rank inputs.

    Args:
        weight: Encoder matrix, shape ``(d, dx)``.
        shared_basis: Mixing of the shared latents, shape ``(dx, k)``.

    Returns:
        Angles in radians in ``[0, pi/2]``, shape ``(q,)``, sorted descending (as
        SciPy returns them). All zero when the row space contains the shared
        subspace (or vice versa); ``pi/2`` where they are orthogonal. No
        reduction (summarize with max or mean; ``evaluate`` reports both in degrees).
    """
    weight = np.asarray(weight)
    shared_basis = np.asarray(shared_basis)
    check_ndim(weight, 2, "weight")
    check_ndim(shared_basis, 2, "shared_basis")
    check_axis_match(weight, 1, shared_basis, 0, ("weight", "shared_basis"),
                     "weight.shape[1] == shared_basis.shape[0] (rows)")
    return scipy.linalg.subspace_angles(weight.T, shared_basis)
