"""The objective registry: name -> (loss function, parameter initializer).

``OBJECTIVES`` is the one registry (the same object as ``clipsim.config.OBJECTIVES``,
which ``ObjectiveConfig.name`` is checked against); ``register`` adds to it.
"""

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


OBJECTIVES: _config.Registry[Objective] = _config.OBJECTIVES
"""Registered objectives by name (a read-only mapping; add with ``register``)."""


def register(name: str, loss_fn: LossFn, init_params: InitFn | None = None, *,
             replace: bool = False) -> Objective:
    """Register an objective and let ``ObjectiveConfig.name`` accept it.

    Args:
      name: a new, non-empty name.
      loss_fn: ``loss_fn(za, zb, params, *, cfg) -> (loss, aux)``; ``aux`` must have
        the keys ``AUX_KEYS`` (use ``batch_stats``).
      init_params: ``init_params(cfg) -> dict``; default: no parameters.
      replace: allow replacing an objective already registered under ``name``.

    Returns:
      The registered ``Objective``.

    Raises:
      ValueError: if the name is empty, or already registered and ``replace`` is
        False, or ``loss_fn`` / ``init_params`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective name must be a non-empty string; got {name!r}")
    if name in OBJECTIVES and not replace:
        raise ValueError(f"objective {name!r} is already registered; pass replace=True "
                         "to replace it")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn of objective {name!r} must be callable; got {loss_fn!r}")
    if init_params is not None and not callable(init_params):
        raise ValueError(f"init_params of objective {name!r} must be callable; got {init_params!r}")
    objective = Objective(name, loss_fn, init_params or no_params)
    return OBJECTIVES.register(name, objective, replace=replace)


def get(name: str) -> Objective:
    """The objective registered as ``name``.

    Args:
      name: a registered name (the value of ``ObjectiveConfig.name``).

    Returns:
      The ``Objective`` (``loss_fn`` and ``init_params``).

    Raises:
      ValueError: the name is unknown; the message lists the known names.
    """
    return OBJECTIVES.lookup(name)
