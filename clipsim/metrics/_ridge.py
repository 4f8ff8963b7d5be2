"""Closed-form ridge regression with an unpenalized intercept."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["fit_predict"]


def fit_predict(
    x_train: jnp.ndarray, y_train: jnp.ndarray, x_test: jnp.ndarray, ridge: float
) -> jnp.ndarray:
    r"""Fits ridge regression on the training rows and predicts the test rows.

    .. math::
        W = (\tilde X^\top \tilde X + \lambda n_{tr} I)^{-1} \tilde X^\top \tilde Y,
        \qquad \hat Y = (X_{te} - \bar x) W + \bar y

    where :math:`\tilde X, \tilde Y` are the training rows centered by their
    means :math:`\bar x, \bar y` (the intercept is not penalized).

    Args:
        x_train: Shape ``(n_tr, p)``.
        y_train: Shape ``(n_tr, t)``.
        x_test: Shape ``(n_te, p)``.
        ridge: Penalty per training row, :math:`\lambda`.

    Returns:
        Predictions, shape ``(n_te, t)``.
    """
    n_train, p = x_train.shape
    x_mean = jnp.mean(x_train, axis=0)
    y_mean = jnp.mean(y_train, axis=0)
    xc = x_train - x_mean
    yc = y_train - y_mean
    gram = xc.T @ xc + (ridge * n_train) * jnp.eye(p, dtype=xc.dtype)
    weight = jnp.linalg.solve(gram, xc.T @ yc)
    return (x_test - x_mean) @ weight + y_mean
