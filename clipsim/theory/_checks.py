"""Input checks shared by the theory calculators.

Every check names the argument, the offending value and the allowed range.
Checks on values run only when the value is concrete; under ``jit`` a traced
argument skips them (it was checked, or could not be, at trace time). Shape
checks are static and always run.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

T = TypeVar("T")


def result_type(cls: type[T]) -> type[T]:
    """Makes ``cls`` a frozen dataclass registered as a JAX pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_dataclass(cls)
    return cls


def is_concrete(value: Any) -> bool:
    """True when ``value`` holds no JAX tracer (so it can be inspected on host)."""
    return not isinstance(value, jax.core.Tracer)


def _describe(value: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(arr.item())
    if arr.size <= 8:
        return repr(arr.tolist())
    return f"an array of shape {arr.shape}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{name} = {_describe(value)} is invalid: {allowed}")


def check_real(name: str, value: ArrayLike, *, low: float | None = None,
               high: float | None = None, low_open: bool = False,
               high_open: bool = False) -> None:
    """Checks that every entry of ``value`` is a finite real number in a range."""
    if not is_concrete(value):
        return
    if isinstance(value, bool):
        _fail(name, value, "expected a number, got a bool")
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        _fail(name, value, f"expected real numbers, got dtype {arr.dtype}")
    lo = "(" if low_open else "["
    hi = ")" if high_open or high is None else "]"
    lo = "(" if low is None else lo
    rng = f"{lo}{'-inf' if low is None else _num(low)}, {'inf' if high is None else _num(high)}{hi}"
    if not np.all(np.isfinite(arr)):
        _fail(name, value, f"must be finite and lie in {rng}")
    if low is not None and np.any(arr <= low if low_open else arr < low):
        _fail(name, value, f"must lie in {rng}")
    if high is not None and np.any(arr >= high if high_open else arr > high):
        _fail(name, value, f"must lie in {rng}")


def check_positive(name: str, value: ArrayLike) -> None:
    """Checks ``value > 0`` (every entry) and finite."""
    check_real(name, value, low=0.0, low_open=True)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Checks that ``value`` is an integer in ``[low, high]``."""
    if not is_concrete(value):
        return
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok:
        arr = np.asarray(value)
        ok = arr.ndim == 0 and np.issubdtype(arr.dtype, np.integer)
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    if not ok:
        _fail(name, value, f"must be an integer {bound}")
    v = int(value)
    if v < low or (high is not None and v > high):
        _fail(name, value, f"must be an integer {bound}")


def check_unit_open(name: str, value: ArrayLike) -> None:
    """Checks ``0 < value < 1``."""
    check_real(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def check_probs(name: str, probs: ArrayLike, *, atol: float = 1e-6) -> None:
    """Checks a 1-D probability vector: non-negative entries summing to one."""
    arr_shape = np.shape(probs)
    if len(arr_shape) != 1 or arr_shape[0] < 1:
        raise ValueError(
            f"{name} must be a non-empty 1-D probability vector, got shape {arr_shape}"
        )
    check_real(name, probs, low=0.0)
    if is_concrete(probs):
        total = float(np.sum(np.asarray(probs, dtype=np.float64)))
        if abs(total - 1.0) > atol:
            _fail(name, probs, f"entries must sum to 1 (within {atol}), they sum to {total!r}")


def check_ndim(name: str, x: Any, ndim: int) -> None:
    """Checks the rank of ``x``."""
    shape = np.shape(x)
    if len(shape) != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {shape}")


def check_square_scores(name: str, scores: Any) -> None:
    """Checks a square score matrix with at least two rows (``B >= 2``)."""
    shape = np.shape(scores)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (B, B) matrix, got shape {shape}")
    if shape[0] < 2:
        raise ValueError(f"{name} must have B >= 2 rows (one positive and a negative), "
                         f"got shape {shape}")


def as_float(x: ArrayLike) -> jnp.ndarray:
    """A JAX array of a floating dtype (integers and bools are promoted)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def default_rtol(dtype: Any) -> float:
    """Default relative tolerance of the exact checks: 32 machine epsilons."""
    return 32.0 * float(jnp.finfo(dtype).eps)
