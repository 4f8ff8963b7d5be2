"""Sweep specifications: a base config, a grid, zip groups, seeds, and chained grids.

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

**Chained grids** (big_vision's ``chainit``): a sweep that is the union of several
grids. Each ``[[chain]]`` table is one link with its own ``grid``, ``zip`` groups
and (optionally) ``seeds``; the top-level ``[grid]`` and ``[[zip]]`` are crossed
with every link, and the top-level ``seeds`` apply to links that set none::

    [grid]
    "objective.temperature" = [0.1, 0.3]     # crossed with both links

    [[chain]]                                # plain CLIP: no lambda to sweep
    grid."objective.name" = ["clip"]

    [[chain]]                                # regularized CLIP over lambda
    grid."objective.name" = ["clip_reg"]
    grid."objective.reg_weight" = [0.0, 0.1, 1.0]
    seeds = [0, 1, 2, 3]

The points are those of the first link, then those of the second not already
seen, and so on: points of different links are de-duplicated by config hash
(a repeated value *within* one link is an error).

**Points.** ``SweepSpec.points()`` expands the spec: within a link, grid fields vary
slowest (in file order), then zip groups, then the seed. It validates every point
before anything runs (unknown fields and bad values raise ``SpecError``, a
``ConfigError``, naming the field and the point) and returns a ``SweepPoints``: a
read-only sequence of ``RunConfig`` s built on demand. Validation and the config
hashes cost each *distinct* value once: each config section is built once per
distinct combination of the swept values it holds, the cross-section checks run
once per combination of sections, and the hash of a point is assembled from
per-section pieces (equal to ``RunConfig.hash()``, tested). A plan of 10^5 points
expands in about a second; a spec above ``max_points`` (default ``MAX_POINTS``,
200,000) is refused before expansion with a message naming the limit and the knob.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import json
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from clipsim.config import (
    ALL_FIELDS,
    INT_MAX,
    ConfigError,
    EvalConfig,
    RunConfig,
    did_you_mean,
    flatten_dict,
    read_toml,
    static_signature,
)

__all__ = ["SpecError", "SweepSpec", "SweepPoints", "Link", "MAX_SEEDS", "MAX_POINTS"]

MAX_SEEDS = 100_000
"""Largest seed count ``seeds = N`` (a larger plan is a mistake, not a sweep)."""

MAX_POINTS = 200_000
"""Default largest number of points (before de-duplication) a spec may expand to.

Raise it with ``max_points`` (``clipsim sweep --max-points N``). Expanding costs
about 10 us a point and planning chunks about 25 us more (a 10^5-point dry run
takes a few seconds on one CPU core); a 10^6-point spec is refused by default,
before anything is expanded, since its plan and table hold an entry per point."""

_TOP_KEYS = ("name", "description", "program", "base", "grid", "zip", "seeds", "eval",
             "chain")
_LINK_KEYS = ("grid", "zip", "seeds")
_SECTION_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "seed")


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


def _parse_seeds(value: Any, where: str = "") -> tuple[int, ...]:
    pre = f"{where}: " if where else ""
    if _is_int(value):
        if not 1 <= value <= MAX_SEEDS:
            raise SpecError(f"{pre}seeds = {value!r} is invalid: a count must lie in "
                            f"[1, {MAX_SEEDS}]")
        return tuple(range(int(value)))
    if isinstance(value, (list, tuple)) and value:
        for s in value:
            if not _is_int(s) or not 0 <= s <= INT_MAX:
                raise SpecError(f"{pre}seeds = {value!r} is invalid: seeds must be integers in "
                                f"[0, {INT_MAX}]")
        if len(set(value)) != len(value):
            raise SpecError(f"{pre}seeds = {value!r} is invalid: seeds must be distinct")
        return tuple(int(s) for s in value)
    raise SpecError(f"{pre}seeds = {value!r} is invalid: expected a count N (seeds 0..N-1) "
                    "or a non-empty list of seeds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _parse_zip(groups: Any, seen: set[str], where: str) -> tuple[dict[str, tuple], ...]:
    out = []
    for i, group in enumerate(groups):
        label = f"{where}zip group {i + 1}"
        if not isinstance(group, Mapping) or not group:
            raise SpecError(f"{label} must be a non-empty table of field = [values]")
        parsed = {}
        for name, values in group.items():
            _check_field(name, label)
            if name in seen:
                raise SpecError(f"{label}: {name!r} is swept twice (grid and zip, two zip "
                                "groups, or a chain link and the top level)")
            parsed[name] = _value_list(name, values, label)
            seen.add(name)
        lengths = {n: len(v) for n, v in parsed.items()}
        if len(set(lengths.values())) > 1:
            raise SpecError(f"{label}: lists varied together must have equal lengths, got "
                            + ", ".join(f"{n}: {k}" for n, k in lengths.items()))
        out.append(parsed)
    return tuple(out)


def _parse_grid(grid: Mapping[str, Any], seen: set[str], where: str) -> dict[str, tuple]:
    out = {}
    for name, values in grid.items():
        label = f"{where}grid"
        _check_field(name, label)
        if name in seen:
            raise SpecError(f"{label}: {name!r} is swept twice (a chain link and the top level)")
        out[name] = _value_list(name, values, label)
        seen.add(name)
    return out


def _raw_zip(raw: Any, where: str) -> tuple[dict[str, Any], ...]:
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise SpecError(f"{where}zip must be a table or a list of tables, got {raw!r}")
    return tuple(_flat_table(g, f"{where}zip group {i + 1}") for i, g in enumerate(raw))


@dataclass(frozen=True)
class Link:
    """One grid of a chained sweep: its own ``grid``, ``zip`` groups and ``seeds``.

    Attributes:
        grid: dotted field -> values (crossed with the spec's top-level grid).
        zip: groups of dotted field -> values of equal length.
        seeds: run seeds; None to use the spec's.
    """

    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    zip: tuple[dict[str, tuple[Any, ...]], ...] = ()
    seeds: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (``seeds`` omitted when None)."""
        out: dict[str, Any] = {"grid": {k: _jsonable(v) for k, v in self.grid.items()},
                               "zip": [{k: _jsonable(v) for k, v in g.items()}
                                       for g in self.zip]}
        if self.seeds is not None:
            out["seeds"] = list(self.seeds)
        return out


def _check_keys(table: Mapping[str, Any], known: Sequence[str], message: str) -> None:
    """Refuse a key of ``table`` not in ``known``: ``message`` (with ``{key!r}``), a
    did-you-mean suggestion and the known keys."""
    for key in table:
        if key not in known:
            raise SpecError(message.format(key=key) + f"{did_you_mean(key, known)}; known: "
                            f"{', '.join(known)}")


def _parse_link(value: Any, index: int, top_fields: set[str]) -> Link:
    where = f"chain link {index + 1}: "
    if isinstance(value, Link):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}expected a table with grid, zip and seeds, got {value!r}")
    _check_keys(value, _LINK_KEYS, f"{where}{{key!r}} is not a chain link key")
    grid = _flat_table(value.get("grid", {}), f"{where}grid")
    seeds = value.get("seeds")
    if "seeds" in grid:
        if seeds is not None:
            raise SpecError(f"{where}seeds is given twice (in the link and inside its grid)")
        seeds = grid.pop("seeds")
    seen = set(top_fields)
    parsed_grid = _parse_grid(grid, seen, where)
    groups = _parse_zip(_raw_zip(value.get("zip", ()), where), seen, where)
    return Link(grid=parsed_grid, zip=groups,
                seeds=None if seeds is None else _parse_seeds(seeds, where.rstrip(": ")))


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
        chain: links of a chained sweep (``Link`` s or dicts with ``grid``, ``zip``,
            ``seeds``); the sweep is the union of ``grid x zip x link`` over links,
            de-duplicated by config hash (see the module docstring). Empty: one grid.

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
    chain: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"name = {self.name!r} is invalid: a non-empty string is required")
        if not isinstance(self.program, str) or not self.program.strip():
            raise SpecError(f"program = {self.program!r} is invalid: a program name is required")
        if not isinstance(self.base, RunConfig):
            raise SpecError(f"base must be a RunConfig, got {type(self.base).__name__}")
        seen: set[str] = set()
        grid = _parse_grid(self.grid, seen, "")
        groups = _parse_zip(self.zip, seen, "")
        raw_chain = self.chain
        if isinstance(raw_chain, Mapping) or not isinstance(raw_chain, (list, tuple)):
            raise SpecError(f"chain must be a list of tables ([[chain]]), got {raw_chain!r}")
        chain = tuple(_parse_link(link, i, seen) for i, link in enumerate(raw_chain))
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "zip", groups)
        object.__setattr__(self, "seeds", _parse_seeds(self.seeds))
        object.__setattr__(self, "chain", chain)
        object.__setattr__(self, "_points", None)

    # ------------------------------------------------------------- parsing
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, default_name: str | None = None) -> SweepSpec:
        """Build from a dict shaped like the TOML file (see the module docstring).

        Args:
            values: keys ``name``, ``description``, ``program``, ``base``, ``grid``,
                ``zip``, ``seeds``, ``eval``, ``chain`` (all but ``name`` optional).
            default_name: the name when ``values`` has none.

        Returns:
            The validated spec (its points are validated by ``points()``).

        Raises:
            SpecError: unknown keys or fields, bad values, mismatched zip lengths.
        """
        if not isinstance(values, Mapping):
            raise SpecError(f"a sweep spec must be a table, got {values!r}")
        _check_keys(values, _TOP_KEYS, "{key!r} is not a sweep spec key")
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
        groups = _raw_zip(values.get("zip", ()), "")
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
        chain = values.get("chain", ())
        if isinstance(chain, Mapping):
            raise SpecError("chain must be a list of tables: write [[chain]], not [chain]")
        return cls(name=name, base=base, grid=grid, zip=groups, seeds=seeds,
                   description=str(values.get("description", "")),
                   program=values.get("program", "train_evaluate"), chain=chain)

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
            "seeds"}``, and ``"chain"`` (a list of links) for a chained sweep.
        """
        out = {
            "name": self.name,
            "description": self.description,
            "program": self.program,
            "base": self.base.to_dict(),
            "grid": {k: _jsonable(v) for k, v in self.grid.items()},
            "zip": [{k: _jsonable(v) for k, v in g.items()} for g in self.zip],
            "seeds": list(self.seeds),
        }
        if self.chain:
            out["chain"] = [link.to_dict() for link in self.chain]
        return out

    def hash(self) -> str:
        """Stable hash of the spec (recorded in its results folder's manifest).

        Returns:
            12 hex digits of the SHA-256 of ``to_dict()`` as canonical JSON. Two specs
            with different hashes may still share runs (runs are identified by their
            config hash): a results folder accepts any spec of the same name and program.
        """
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    # -------------------------------------------------------------- points
    def links(self) -> list[Link]:
        """The grids whose union is the sweep, each with the top-level grid, zip and seeds.

        Returns:
            One ``Link`` (grid, zip, seeds all filled in) per chain link, or a single
            link for a spec without a chain.
        """
        if not self.chain:
            return [Link(dict(self.grid), self.zip, self.seeds)]
        return [Link({**self.grid, **link.grid}, (*self.zip, *link.zip),
                     self.seeds if link.seeds is None else link.seeds) for link in self.chain]

    @property
    def swept_fields(self) -> tuple[str, ...]:
        """Dotted names that vary across points (grids, zips, and ``seed`` if > 1 seed)."""
        names: dict[str, None] = {}
        seeds: set[int] = set()
        for link in self.links():
            names.update(dict.fromkeys(link.grid))
            for group in link.zip:
                names.update(dict.fromkeys(group))
            seeds.update(link.seeds or ())
        return (*names, "seed") if len(seeds) > 1 else tuple(names)

    @property
    def num_candidates(self) -> int:
        """Points before de-duplication across chain links (the product per link, summed).

        Cheap (no expansion); equals ``len(self)`` for a spec without a chain.
        """
        total = 0
        for link in self.links():
            n = len(link.seeds or ())
            for values in link.grid.values():
                n *= len(values)
            for group in link.zip:
                n *= len(next(iter(group.values())))
            total += n
        return total

    def overrides(self) -> list[dict[str, Any]]:
        """Per point, the dotted fields it sets on ``base`` (including ``seed``).

        Returns:
            One dict per point, in point order: within a link, grid fields vary
            slowest, then zip groups, then the seed.
        """
        points = self.points()
        return [points.overrides(i) for i in range(len(points))]

    def points(self, *, max_points: int | None = None) -> SweepPoints:
        """The sweep's concrete configs, validated, in a fixed order.

        Args:
            max_points: refuse a spec of more points (before de-duplication) than
                this; default ``MAX_POINTS``.

        Returns:
            A ``SweepPoints`` (a sequence of ``RunConfig``) of ``len(self)`` points,
            in the order of ``overrides()``; cached on the spec.

        Raises:
            SpecError: a point's value is invalid (names the field and the point), two
                points of one grid are identical, or the spec exceeds ``max_points``.
        """
        limit = MAX_POINTS if max_points is None else max_points
        n = self.num_candidates
        if n > limit:
            raise SpecError(
                f"sweep {self.name!r} has {n:,} points, above the limit of {limit:,} "
                "(max_points: clipsim sweep --max-points N, or clipsim.sweep.run(..., "
                "max_points=N)); split it into several sweeps or raise the limit")
        cached = self._points  # type: ignore[attr-defined]
        if cached is None:
            cached = SweepPoints(self)
            object.__setattr__(self, "_points", cached)
        return cached

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
        if not self.chain:
            return self.num_candidates
        return len(self.points(max_points=max(MAX_POINTS, self.num_candidates)))


# ------------------------------------------------------------------ expansion
class _Axis:
    """One loop of a link: a grid field, a zip group or the seeds."""

    def __init__(self, overrides: list[dict[str, Any]]) -> None:
        self.overrides = overrides
        self.sections = sorted({k.split(".", 1)[0] for o in overrides for k in o})


class _LinkPlan:
    """The loops of one link and the memoized sections of its points."""

    def __init__(self, base: RunConfig, link: Link) -> None:
        axes = [_Axis([{name: v} for v in values]) for name, values in link.grid.items()]
        for group in link.zip:
            n = len(next(iter(group.values())))
            axes.append(_Axis([{name: values[i] for name, values in group.items()}
                               for i in range(n)]))
        self.axes = axes
        self.seeds = tuple(link.seeds or ())
        self.sizes = [len(a.overrides) for a in axes]
        self.num_combos = 1
        for s in self.sizes:
            self.num_combos *= s
        self.size = self.num_combos * len(self.seeds)
        # per section: the axes that touch it
        self.section_axes = {sec: [j for j, a in enumerate(axes) if sec in a.sections]
                             for sec in _SECTION_NAMES}
        self.base = base
        self.memo: dict[tuple[str, tuple[int, ...]], Any] = {}
        self.configs: dict[int, RunConfig] = {}

    def config(self, combo: int, seed: int) -> RunConfig:
        """The config of (combo, seed): the combo's validated config with its seed set.

        The combo's config is built and validated once (``RunConfig(...)``); the
        other seeds copy it and set ``seed`` (a validated seed changes no check).
        """
        cfg = self.configs.get(combo)
        if cfg is None:
            digits = self.digits(combo)
            cfg = RunConfig(**{sec: self.section(sec, digits) for sec in _SECTION_NAMES},
                            seed=self.seeds[0])
            self.configs[combo] = cfg
        if cfg.seed == seed:
            return cfg
        out = object.__new__(RunConfig)
        out.__dict__.update(cfg.__dict__)
        out.__dict__["seed"] = seed
        return out

    def digits(self, combo: int) -> tuple[int, ...]:
        out = []
        for s in reversed(self.sizes):
            combo, r = divmod(combo, s)
            out.append(r)
        return tuple(reversed(out))

    def overrides(self, digits: Sequence[int]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for axis, d in zip(self.axes, digits, strict=True):
            merged.update(axis.overrides[d])
        return merged

    def section(self, sec: str, digits: Sequence[int]) -> Any:
        """The ``sec`` section of the points with these axis digits (built once)."""
        key = (sec, tuple(digits[j] for j in self.section_axes[sec]))
        obj = self.memo.get(key)
        if obj is None:
            base_sec = getattr(self.base, sec)
            if not key[1]:
                obj = base_sec
            else:
                values = base_sec.to_dict()
                for j in self.section_axes[sec]:
                    for name, v in self.axes[j].overrides[digits[j]].items():
                        s, f = name.split(".", 1)
                        if s == sec:
                            values[f] = v
                obj = type(base_sec).from_dict(values)
            self.memo[key] = obj
        return obj


def _section_changes(sec: str, obj: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flatten_dict(obj.to_dict(), prefix=f"{sec}.").items()
            if k not in defaults or defaults[k] != v}


class SweepPoints(Sequence[RunConfig]):
    """The validated points of a ``SweepSpec``: a read-only sequence of ``RunConfig`` s.

    Built by ``SweepSpec.points()``. Every point is validated and hashed on
    construction (each distinct section once, see the module docstring); a
    ``RunConfig`` is built when first indexed (and kept). ``hash(i)`` equals
    ``points[i].hash()`` at a fraction of its cost.

    Args:
        spec: the spec to expand.

    Raises:
        SpecError: as ``SweepSpec.points()``.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self._links = [_LinkPlan(spec.base, link) for link in spec.links()]
        defaults = flatten_dict(RunConfig().to_dict())
        default_seed = defaults["seed"]
        hashes: list[str] = []
        kept: list[list[int] | None] = []
        combo_sig: list[list[Any]] = []
        first_seen: dict[str, int] = {}
        link_of: dict[str, int] = {}
        sig_ids: dict[Any, int] = {}
        self._group_of_combo: list[list[int]] = []
        sha = hashlib.sha256
        for li, plan in enumerate(self._links):
            local_kept: list[int] = []
            dropped = False
            sec_changes: dict[tuple[str, tuple[int, ...]], dict[str, Any]] = {}
            groups: list[int] = []
            for combo in range(plan.num_combos):
                digits = plan.digits(combo)
                start = len(hashes)
                try:
                    sections = {sec: plan.section(sec, digits) for sec in _SECTION_NAMES}
                    cfg = RunConfig(**sections, seed=plan.seeds[0])
                except ConfigError as err:
                    ov = plan.overrides(digits)
                    ov["seed"] = plan.seeds[0]
                    desc = ", ".join(f"{k}={v!r}" for k, v in ov.items())
                    raise SpecError(f"sweep {spec.name!r}, point {start} ({desc}): {err}"
                                    ) from None
                sig = static_signature(cfg)
                groups.append(sig_ids.setdefault(sig, len(sig_ids)))
                changed: dict[str, Any] = {}
                for sec in _SECTION_NAMES:
                    key = (sec, tuple(digits[j] for j in plan.section_axes[sec]))
                    part = sec_changes.get(key)
                    if part is None:
                        part = sec_changes[key] = _section_changes(sec, sections[sec],
                                                                   defaults)
                    changed.update(part)
                low = {k: v for k, v in changed.items() if k < "seed"}
                high = {k: v for k, v in changed.items() if k > "seed"}
                head = json.dumps(low, sort_keys=True, separators=(",", ":"))[:-1]
                tail = json.dumps(high, sort_keys=True, separators=(",", ":"))[1:]
                plain = (head + ("," if low and high else "") + tail).encode()
                head = (head + ",") if low else head
                tail = ("," + tail) if high else tail
                for si, seed in enumerate(plan.seeds):
                    if seed == default_seed:
                        text = plain
                    else:
                        text = f'{head}"seed":{seed}{tail}'.encode()
                    h = sha(text).hexdigest()[:12]
                    local = combo * len(plan.seeds) + si
                    prev = link_of.get(h)
                    if prev is not None:
                        if prev == li:
                            raise SpecError(
                                f"sweep {spec.name!r}: points {first_seen[h]} and "
                                f"{len(hashes)} are the same config ({h}); remove repeated "
                                "values")
                        dropped = True
                        continue
                    link_of[h] = li
                    first_seen[h] = len(hashes)
                    hashes.append(h)
                    local_kept.append(local)
            kept.append(local_kept if dropped else None)
            combo_sig.append(groups)
        self._hashes = hashes
        self._kept = kept
        self._combo_group = combo_sig
        self._index: dict[str, int] | None = None
        self._built: list[RunConfig | None] = [None] * len(hashes)
        counts = [len(k) if k is not None else p.size for k, p in zip(kept, self._links,
                                                                      strict=True)]
        self._starts = list(itertools.accumulate([0, *counts[:-1]]))

    # ------------------------------------------------------------ sequence
    def __len__(self) -> int:
        return len(self._hashes)

    def _locate(self, i: int) -> tuple[_LinkPlan, int, int]:
        n = len(self._hashes)
        if not -n <= i < n:
            raise IndexError(f"point {i} is out of range for a sweep of {n} points")
        i %= n
        li = bisect.bisect_right(self._starts, i) - 1
        local = i - self._starts[li]
        kept = self._kept[li]
        if kept is not None:
            local = kept[local]
        plan = self._links[li]
        combo, si = divmod(local, len(plan.seeds))
        return plan, combo, plan.seeds[si]

    @overload
    def __getitem__(self, i: int) -> RunConfig: ...

    @overload
    def __getitem__(self, i: slice) -> list[RunConfig]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise TypeError(f"point indices must be integers, got {type(i).__name__}")
        i = int(i)
        cfg = self._built[i]
        if cfg is None:
            plan, combo, seed = self._locate(i)
            cfg = plan.config(combo, seed)
            self._built[i] = cfg
        return cfg

    def __iter__(self) -> Iterator[RunConfig]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"SweepPoints({self.spec.name!r}, {len(self)} points)"

    # ------------------------------------------------------------- extras
    def hash(self, i: int) -> str:
        """``self[i].hash()``, without building the config."""
        return self._hashes[i]

    @property
    def hashes(self) -> list[str]:
        """Config hashes of every point, in point order (a new list)."""
        return list(self._hashes)

    def index(self, config_hash: str, *args: Any) -> int:  # type: ignore[override]
        """The point whose config hash is ``config_hash``.

        Raises:
            ValueError: no point has that hash.
        """
        if self._index is None:
            self._index = {h: i for i, h in enumerate(self._hashes)}
        if not isinstance(config_hash, str):
            raise ValueError("SweepPoints.index takes a config hash")
        try:
            return self._index[config_hash]
        except KeyError:
            raise ValueError(f"no point of sweep {self.spec.name!r} has config hash "
                             f"{config_hash!r}") from None

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return self._contains_hash(item)
        if isinstance(item, RunConfig):
            return self._contains_hash(item.hash())
        return False

    def _contains_hash(self, h: str) -> bool:
        if self._index is None:
            self._index = {x: i for i, x in enumerate(self._hashes)}
        return h in self._index

    def overrides(self, i: int) -> dict[str, Any]:
        """The dotted fields point ``i`` sets on the base (``seed`` included)."""
        plan, combo, seed = self._locate(i)
        return {**plan.overrides(plan.digits(combo)), "seed": seed}

    def groups(self) -> list[list[int]]:
        """Point indices by static signature, groups in first-seen order.

        The same partition as ``clipsim.sweep.engine.group_points(points)``, computed
        once per combination of swept values rather than per point.
        """
        out: dict[int, list[int]] = {}
        for li, plan in enumerate(self._links):
            kept = self._kept[li]
            locals_ = range(plan.size) if kept is None else kept
            start = self._starts[li]
            groups = self._combo_group[li]
            n_seeds = len(plan.seeds)
            for j, local in enumerate(locals_):
                out.setdefault(groups[local // n_seeds], []).append(start + j)
        return list(out.values())


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
