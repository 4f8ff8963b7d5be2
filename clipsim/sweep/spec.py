"""Sweep specifications: a base config, a grid, zip groups and seeds.

A sweep file is TOML::

    name = "margin_vs_tau"

    [base]                      # a run config, dotted or nested keys
    data.family = "onehot"
    objective.name = "clip"
    train.steps = 2000

    [grid]                      # cartesian product over these fields
    "objective.temperature" = [0.01, 0.03, 0.1, 0.3, 1.0]
    seeds = 5                   # seeds 0..4 (or a list: [0, 7, 11])

    [[zip]]                     # optional: lists varied together
    "objective.name" = ["clip", "clip_reg"]
    "objective.reg_weight" = [0.0, 0.1]

    [eval]                      # optional: evaluation settings (the base's eval section)
    num_samples = 1000

``SweepSpec.points()`` expands the spec into concrete ``RunConfig`` s: grid fields
vary slowest (in file order), then zip groups, then the seed. Every point is built
with ``RunConfig.replace``, so unknown fields and bad values raise ``SpecError``
(a ``ConfigError``) naming the field before anything runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsim.config import (
    ALL_FIELDS,
    INT_MAX,
    ConfigError,
    EvalConfig,
    RunConfig,
    did_you_mean,
    flatten_dict,
    read_toml,
)

__all__ = ["SpecError", "SweepSpec", "MAX_SEEDS"]

MAX_SEEDS = 100_000
"""Largest seed count ``seeds = N`` (a larger plan is a mistake, not a sweep)."""

_TOP_KEYS = ("name", "description", "program", "base", "grid", "zip", "seeds", "eval")


class SpecError(ConfigError):
    """A sweep spec is invalid; the message names the offending field or key."""


def _check_field(name: str, where: str) -> None:
    if name == "seed":
        raise SpecError(f"{where}: 'seed' cannot be swept here; use seeds = N or seeds = [...]")
    if name not in ALL_FIELDS:
        raise SpecError(f"{where}: {name!r} is not a known config field"
                        f"{did_you_mean(name, ALL_FIELDS)}; see clipsim.config.ALL_FIELDS")


def _value_list(name: str, values: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        raise SpecError(f"{where}: {name!r} must be a non-empty list of values, got {values!r}")
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def _flat_table(values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise SpecError(f"{where} must be a table of field = [values], got {values!r}")
    return flatten_dict(values)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parse_seeds(value: Any) -> tuple[int, ...]:
    if _is_int(value):
        if not 1 <= value <= MAX_SEEDS:
            raise SpecError(f"seeds = {value!r} is invalid: a count must lie in [1, {MAX_SEEDS}]")
        return tuple(range(int(value)))
    if isinstance(value, (list, tuple)) and value:
        for s in value:
            if not _is_int(s) or not 0 <= s <= INT_MAX:
                raise SpecError(f"seeds = {value!r} is invalid: seeds must be integers in "
                                f"[0, {INT_MAX}]")
        if len(set(value)) != len(value):
            raise SpecError(f"seeds = {value!r} is invalid: seeds must be distinct")
        return tuple(int(s) for s in value)
    raise SpecError(f"seeds = {value!r} is invalid: expected a count N (seeds 0..N-1) "
                    "or a non-empty list of seeds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class SweepSpec:
    """A declarative sweep: ``base`` config x ``grid`` x ``zip`` groups x ``seeds``.

    Attributes:
        name: the sweep's name (the ``sweep`` column of the results table).
        base: the config every point starts from.
        grid: dotted field -> values; the points take the cartesian product.
        zip: groups of dotted field -> values of equal length, varied together.
        seeds: run seeds (``RunConfig.seed``); innermost loop.
        description: free text, kept in the manifest.
        program: the name of the program every point runs (``clipsim.sweep.PROGRAMS``;
            default ``"train_evaluate"``: train, then ``evaluate_program``).

    Example:
        >>> spec = SweepSpec.from_dict({"name": "tau", "grid": {
        ...     "objective.temperature": [0.1, 0.3]}, "seeds": 2})
        >>> len(spec.points())
        4
    """

    name: str
    base: RunConfig = field(default_factory=RunConfig)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    zip: tuple[dict[str, tuple[Any, ...]], ...] = ()
    seeds: tuple[int, ...] | int = (0,)
    description: str = ""
    program: str = "train_evaluate"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"name = {self.name!r} is invalid: a non-empty string is required")
        if not isinstance(self.program, str) or not self.program.strip():
            raise SpecError(f"program = {self.program!r} is invalid: a program name is required")
        if not isinstance(self.base, RunConfig):
            raise SpecError(f"base must be a RunConfig, got {type(self.base).__name__}")
        seen: set[str] = set()
        grid = {}
        for name, values in self.grid.items():
            _check_field(name, "grid")
            grid[name] = _value_list(name, values, "grid")
            seen.add(name)
        groups = []
        for i, group in enumerate(self.zip):
            where = f"zip group {i + 1}"
            if not isinstance(group, Mapping) or not group:
                raise SpecError(f"{where} must be a non-empty table of field = [values]")
            parsed = {}
            for name, values in group.items():
                _check_field(name, where)
                if name in seen:
                    raise SpecError(f"{where}: {name!r} is swept twice (grid and zip, or two "
                                    "zip groups)")
                parsed[name] = _value_list(name, values, where)
                seen.add(name)
            lengths = {n: len(v) for n, v in parsed.items()}
            if len(set(lengths.values())) > 1:
                raise SpecError(f"{where}: lists varied together must have equal lengths, got "
                                + ", ".join(f"{n}: {k}" for n, k in lengths.items()))
            groups.append(parsed)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "zip", tuple(groups))
        object.__setattr__(self, "seeds", _parse_seeds(self.seeds))

    # ------------------------------------------------------------- parsing
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, default_name: str | None = None) -> SweepSpec:
        """Build from a dict shaped like the TOML file (see the module docstring).

        Args:
            values: keys ``name``, ``description``, ``base``, ``grid``, ``zip``,
                ``seeds``, ``eval`` (all but ``name`` optional).
            default_name: the name when ``values`` has none.

        Returns:
            The validated spec (its points are validated by ``points()``).

        Raises:
            SpecError: unknown keys or fields, bad values, mismatched zip lengths.
        """
        if not isinstance(values, Mapping):
            raise SpecError(f"a sweep spec must be a table, got {values!r}")
        for key in values:
            if key not in _TOP_KEYS:
                raise SpecError(f"{key!r} is not a sweep spec key{did_you_mean(key, _TOP_KEYS)}; "
                                f"known: {', '.join(_TOP_KEYS)}")
        name = values.get("name", default_name)
        if name is None:
            raise SpecError("name is required (name = \"my_sweep\")")
        grid = _flat_table(values.get("grid", {}), "grid")
        seeds: Any = None
        if "seeds" in grid:
            seeds = grid.pop("seeds")
        if "seeds" in values:
            if seeds is not None:
                raise SpecError("seeds is given twice (top level and inside [grid])")
            seeds = values["seeds"]
        raw_zip = values.get("zip", ())
        if isinstance(raw_zip, Mapping):
            raw_zip = [raw_zip]
        if not isinstance(raw_zip, (list, tuple)):
            raise SpecError(f"zip must be a table or a list of tables, got {raw_zip!r}")
        groups = tuple(_flat_table(g, f"zip group {i + 1}") for i, g in enumerate(raw_zip))
        if not isinstance(values.get("base", {}), Mapping):
            raise SpecError(f"base must be a table of config fields, got {values['base']!r}")
        base_flat = flatten_dict(values.get("base", {}))
        for key, value in _flat_table(values.get("eval", {}), "eval").items():
            if key not in EvalConfig.field_names():
                raise SpecError(f"eval.{key} is not a known evaluation setting"
                                f"{did_you_mean(key, EvalConfig.field_names())}; known: "
                                + ", ".join(EvalConfig.field_names()))
            if f"eval.{key}" in base_flat:
                raise SpecError(f"eval.{key} is given twice ([eval] and [base])")
            base_flat[f"eval.{key}"] = value
        try:
            base = RunConfig.from_dict(base_flat)
        except SpecError:
            raise
        except ConfigError as err:
            raise SpecError(f"base: {err}") from None
        if seeds is None:
            seeds = (base.seed,)
        return cls(name=name, base=base, grid=grid, zip=groups, seeds=seeds,
                   description=str(values.get("description", "")),
                   program=values.get("program", "train_evaluate"))

    @classmethod
    def from_toml(cls, path_or_text: str | Path) -> SweepSpec:
        """Read a TOML file (a path) or TOML text; a file's stem is the default name.

        Which strings are paths and which are text: ``clipsim.config.read_toml``
        (a path need not end in ``.toml``; a missing one is an error naming it).

        Args:
            path_or_text: a path or the TOML text itself.

        Returns:
            The spec.

        Raises:
            SpecError: missing file or a directory, invalid or empty TOML, or an
                invalid spec.
        """
        values, path = read_toml(path_or_text, what="sweep", error=SpecError)
        return cls.from_dict(values, default_name=None if path is None else path.stem)

    load = from_toml

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict; ``SweepSpec.from_dict(spec.to_dict())`` is the same spec.

        Returns:
            ``{"name", "description", "program", "base" (full nested config), "grid", "zip",
            "seeds"}``.
        """
        return {
            "name": self.name,
            "description": self.description,
            "program": self.program,
            "base": self.base.to_dict(),
            "grid": {k: _jsonable(v) for k, v in self.grid.items()},
            "zip": [{k: _jsonable(v) for k, v in g.items()} for g in self.zip],
            "seeds": list(self.seeds),
        }

    def hash(self) -> str:
        """Stable hash of the spec; results folders are tied to it.

        Returns:
            12 hex digits of the SHA-256 of ``to_dict()`` as canonical JSON.
        """
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    # -------------------------------------------------------------- points
    @property
    def swept_fields(self) -> tuple[str, ...]:
        """Dotted names that vary across points (grid, zip, and ``seed`` if > 1 seed)."""
        names = [*self.grid, *(n for g in self.zip for n in g)]
        return (*names, "seed") if len(self.seeds) > 1 else tuple(names)

    def overrides(self) -> list[dict[str, Any]]:
        """Per point, the dotted fields it sets on ``base`` (including ``seed``).

        Returns:
            One dict per point, in point order: grid fields vary slowest, then zip
            groups, then the seed.
        """
        axes: list[list[dict[str, Any]]] = [
            [{name: v} for v in values] for name, values in self.grid.items()]
        for group in self.zip:
            n = len(next(iter(group.values())))
            axes.append([{name: values[i] for name, values in group.items()} for i in range(n)])
        axes.append([{"seed": s} for s in self.seeds])
        out = []
        for combo in itertools.product(*axes):
            merged: dict[str, Any] = {}
            for part in combo:
                merged.update(part)
            out.append(merged)
        return out

    def points(self) -> list[RunConfig]:
        """The sweep's concrete configs, validated, in a fixed order.

        Returns:
            ``len(self)`` configs, in the order of ``overrides()``.

        Raises:
            SpecError: a point's value is invalid (names the field and the point), or
                two points are identical.
        """
        points: list[RunConfig] = []
        seen: dict[str, int] = {}
        for i, ov in enumerate(self.overrides()):
            try:
                cfg = self.base.replace(**ov)
            except ConfigError as err:
                desc = ", ".join(f"{k}={v!r}" for k, v in ov.items())
                raise SpecError(f"sweep {self.name!r}, point {i} ({desc}): {err}") from None
            h = cfg.hash()
            if h in seen:
                raise SpecError(f"sweep {self.name!r}: points {seen[h]} and {i} are the same "
                                f"config ({h}); remove repeated values")
            seen[h] = i
            points.append(cfg)
        return points

    def describe(self, cfg: RunConfig) -> dict[str, Any]:
        """The swept fields' values of one point.

        Args:
            cfg: one of ``points()``.

        Returns:
            Dotted field -> value for every name in ``swept_fields``, e.g.
            ``{"objective.temperature": 0.1, "seed": 2}``.
        """
        flat = flatten_dict(cfg.to_dict())
        return {name: flat[name] for name in self.swept_fields}

    def __len__(self) -> int:
        n = len(self.seeds)
        for values in self.grid.values():
            n *= len(values)
        for group in self.zip:
            n *= len(next(iter(group.values())))
        return n


def as_spec(spec: SweepSpec | str | Path | Mapping[str, Any]) -> SweepSpec:
    """Accept a spec, a TOML path or text, or a dict.

    Args:
        spec: a ``SweepSpec``, a ``.toml`` path, TOML text, or a dict.

    Returns:
        The ``SweepSpec``.
    """
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec.from_dict(spec)
    if isinstance(spec, (str, Path)):
        return SweepSpec.from_toml(spec)
    raise TypeError(f"expected a SweepSpec, a TOML path or a dict, got {type(spec).__name__}")
