"""Linear probe accuracy on frozen features."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.metrics._checks import as_float, as_int, check_ndim, check_same_rows, check_split
from clipsim.metrics._ridge import fit_predict

__all__ = ["linear_probe_accuracy"]


def linear_probe_accuracy(
    features: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    *,
    ridge: float = 1e-3,
    train_frac: float = 0.5,
) -> jnp.ndarray:
    r"""Held-out accuracy of a linear probe (a ridge classifier) on frozen features.

    The probe is a ridge-regression classifier, not logistic regression: it fits
    one-hot targets :math:`Y` by least squares with an unpenalized intercept on
    the first :math:`n_{tr} = \lfloor \mathrm{train\_frac} \cdot n \rfloor` rows,

    .. math::
        W = (\tilde X^\top \tilde X + \lambda n_{tr} I)^{-1} \tilde X^\top \tilde Y,
        \qquad \hat c(x) = \arg\max_c \bigl((x - \bar x) W + \bar y\bigr)_c

    (closed form, so it is jittable and ``vmap``-pable with no inner optimizer),
    and reports accuracy on the remaining rows. Rows should be in random order,
    since the split is by position.

    Args:
        features: Frozen features, shape ``(n, p)``.
        labels: Classes in ``[0, num_classes)``, shape ``(n,)``, integer.
        num_classes: Static number of classes ``C``.
        ridge: Penalty per training row, :math:`\lambda \ge 0`.
        train_frac: Static fraction of rows used for fitting, in ``(0, 1)``.

    Returns:
        Scalar accuracy in ``[0, 1]`` in the feature dtype, optimum 1; chance is
        about ``1 / C`` for balanced classes. Reduction: mean over held-out rows.
    """
    features = as_float(features, "features")
    labels = as_int(labels, "labels")
    check_ndim(features, 2, "features")
    check_ndim(labels, 1, "labels")
    check_same_rows(features, labels, ("features", "labels"))
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    n_train = check_split(features.shape[0], train_frac)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=features.dtype)
    pred = fit_predict(features[:n_train], onehot[:n_train], features[n_train:], ridge)
    correct = jnp.argmax(pred, axis=1) == labels[n_train:]
    return jnp.mean(correct.astype(features.dtype))
