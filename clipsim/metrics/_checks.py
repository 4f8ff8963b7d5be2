"""Shape and dtype checks shared by the metric entry points.

Checks run on static shapes and dtypes only, so they are free under ``jit`` and
see per-example shapes under ``vmap``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "as_float",
    "as_int",
    "check_ndim",
    "check_same_dim",
    "check_same_rows",
    "check_split",
]


def check_ndim(x: jnp.ndarray, ndim: int, name: str) -> None:
    """Raises ``ValueError`` unless ``x`` has rank ``ndim``."""
    if x.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {x.shape}.")


def check_same_rows(x: jnp.ndarray, y: jnp.ndarray, names: tuple[str, str]) -> None:
    """Raises ``ValueError`` unless ``x`` and ``y`` have the same number of rows."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows, got "
            f"{x.shape} and {y.shape}."
        )


def check_same_dim(x: jnp.ndarray, y: jnp.ndarray, names: tuple[str, str]) -> None:
    """Raises ``ValueError`` unless ``x`` and ``y`` have the same last dimension."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same last dimension, got "
            f"{x.shape} and {y.shape}."
        )


def as_float(x: ArrayLike, name: str) -> jnp.ndarray:
    """Converts to a JAX array, promoting integer or bool input to float."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(f"{name} must be real, got dtype {x.dtype}.")
        x = x.astype(jnp.result_type(float))
    return x


def as_int(x: ArrayLike, name: str) -> jnp.ndarray:
    """Converts to a JAX array and checks an integer dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name} must have an integer dtype, got {x.dtype}.")
    return x


def check_split(n: int, train_frac: float) -> int:
    """Returns ``floor(train_frac * n)``; needs at least one row on each side."""
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must lie in (0, 1), got {train_frac}.")
    n_train = int(train_frac * n)
    if n_train < 1 or n - n_train < 1:
        raise ValueError(
            f"train_frac={train_frac} with n={n} rows leaves {n_train} training and "
            f"{n - n_train} held-out rows; both must be at least 1."
        )
    return n_train
