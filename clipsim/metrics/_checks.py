"""Shape and dtype checks shared by the metric entry points.

One style for every metric: a failed check raises ``ValueError`` (``TypeError``
for a dtype) whose message names the array(s) and shows the shape(s) involved,
e.g. ``emb_a and emb_b must have the same number of rows, got (4, 3) and (5, 3).``
Checks run on static shapes and dtypes only, so they are free under ``jit`` and
see per-example shapes under ``vmap``; they accept JAX and NumPy arrays.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "as_float",
    "as_int",
    "check_axis_match",
    "check_min_rows",
    "check_ndim",
    "check_same_dim",
    "check_same_rows",
    "check_split",
]


def check_ndim(x: jnp.ndarray, ndim: int, name: str) -> None:
    """Raises ``ValueError`` unless ``x`` has rank ``ndim``."""
    if x.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}.")


def check_axis_match(
    x: jnp.ndarray, x_axis: int, y: jnp.ndarray, y_axis: int, names: tuple[str, str],
    what: str | None = None,
) -> None:
    """Raises ``ValueError`` unless ``x.shape[x_axis] == y.shape[y_axis]``; names both shapes.

    Args:
        x: first array.
        x_axis: its axis.
        y: second array.
        y_axis: its axis.
        names: the two arrays' names, as the caller's arguments are called.
        what: how the message states the requirement (default:
            ``"{x}.shape[{x_axis}] == {y}.shape[{y_axis}]"``).
    """
    if x.shape[x_axis] != y.shape[y_axis]:
        what = what or f"{names[0]}.shape[{x_axis}] == {names[1]}.shape[{y_axis}]"
        raise ValueError(
            f"{names[0]} and {names[1]} must have {what}, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )


def check_same_rows(x: jnp.ndarray, y: jnp.ndarray, names: tuple[str, str]) -> None:
    """Raises ``ValueError`` unless ``x`` and ``y`` have the same number of rows."""
    check_axis_match(x, 0, y, 0, names, "the same number of rows")


def check_same_dim(x: jnp.ndarray, y: jnp.ndarray, names: tuple[str, str]) -> None:
    """Raises ``ValueError`` unless ``x`` and ``y`` have the same last dimension."""
    check_axis_match(x, -1, y, -1, names, "the same last dimension")


def check_min_rows(x: jnp.ndarray, minimum: int, name: str) -> None:
    """Raises ``ValueError`` unless ``x`` has at least ``minimum`` rows."""
    if x.shape[0] < minimum:
        raise ValueError(f"{name} must have at least {minimum} rows, got shape "
                         f"{tuple(x.shape)}.")


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
