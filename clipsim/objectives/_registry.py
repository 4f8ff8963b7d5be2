"""The objective registry: name -> (loss function, parameter initializer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Protocol

import jax

from clipsim import config as _config
from clipsim.config import ObjectiveConfig


class LossFn(Protocol):
    """``loss_fn(za, zb, params, *, cfg) -> (loss, aux)``."""

    def __call__(
        self,
        za: jax.Array,
        zb: jax.Array,
        params: Mapping[str, jax.Array],
        *,
        cfg: ObjectiveConfig,
    ) -> tuple[jax.Array, dict[str, jax.Array]]: ...


InitFn = Callable[[ObjectiveConfig], dict[str, jax.Array]]


def no_params(cfg: ObjectiveConfig) -> dict[str, jax.Array]:
    """Initializer of objectives without learnable parameters: ``{}``."""
    del cfg
    return {}


@dataclasses.dataclass(frozen=True)
class Objective:
    """A registered objective.

    Attributes:
      name: registry name (the value of ``ObjectiveConfig.name``).
      loss_fn: ``loss_fn(za, zb, params, *, cfg) -> (loss, aux)``.
      init_params: ``init_params(cfg) -> dict`` of the objective's own learnable
        parameters (``{}`` if none).
    """

    name: str
    loss_fn: LossFn
    init_params: InitFn = no_params

    def __call__(
        self,
        za: jax.Array,
        zb: jax.Array,
        params: Mapping[str, jax.Array],
        *,
        cfg: ObjectiveConfig,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Shorthand for ``self.loss_fn(za, zb, params, cfg=cfg)``."""
        return self.loss_fn(za, zb, params, cfg=cfg)


OBJECTIVES: dict[str, Objective] = {}
"""Registered objectives by name."""


def register(name: str, loss_fn: LossFn, init_params: InitFn | None = None) -> Objective:
    """Register an objective and let ``ObjectiveConfig.name`` accept it.

    Args:
      name: a new, non-empty name.
      loss_fn: ``loss_fn(za, zb, params, *, cfg) -> (loss, aux)``; ``aux`` must have
        the keys ``AUX_KEYS`` (use ``batch_stats``).
      init_params: ``init_params(cfg) -> dict``; default: no parameters.

    Returns:
      The registered ``Objective``.

    Raises:
      ValueError: if the name is empty or already registered, or ``loss_fn`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective name must be a non-empty string; got {name!r}")
    if name in OBJECTIVES:
        raise ValueError(f"objective {name!r} is already registered")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn of objective {name!r} must be callable; got {loss_fn!r}")
    if init_params is not None and not callable(init_params):
        raise ValueError(f"init_params of objective {name!r} must be callable; got {init_params!r}")
    objective = Objective(name, loss_fn, init_params or no_params)
    OBJECTIVES[name] = objective
    if name not in _config.OBJECTIVE_NAMES:
        _config.OBJECTIVE_NAMES.append(name)
    return objective


def get(name: str) -> Objective:
    """The objective registered as ``name``.

    Args:
      name: a registered name (the value of ``ObjectiveConfig.name``).

    Returns:
      The ``Objective`` (``loss_fn`` and ``init_params``).

    Raises:
      ValueError: the name is unknown; the message lists the known names.
    """
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in OBJECTIVES)
        raise ValueError(f"unknown objective {name!r}; known objectives: {known}") from None
