"""Run configuration: frozen dataclasses, validation, TOML/JSON round trip, hashing.

Every config class is a JAX pytree. Its fields come in two kinds:

* **static** fields (``field(metadata={"static": True})``) change array shapes or
  code paths: dimensions, batch size, step counts, family / encoder / objective
  names. They live in the pytree *structure*, so two configs that differ in a
  static field compile to different programs.
* **dynamic** fields are plain numbers: seeds, temperature, regularization
  weights, learning rate, noise scales, omission probability. They are pytree
  *leaves*, so a batch of configs that share their static fields can be stacked
  leaf-wise and trained as one ``jit(vmap(...))`` program.

``static_signature(cfg)`` returns the pytree structure; the sweep engine groups
points by it. ``DYNAMIC_FIELDS`` lists the dotted names of every dynamic field.

Validation runs at construction for concrete Python values and raises
``ConfigError`` naming the dotted field, the bad value and the allowed range.
When JAX rebuilds a config from traced or stacked leaves, leaf checks are skipped
(the values were checked when the concrete configs were built).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import jax
import tomli_w

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
    "DYNAMIC_FIELDS",
    "STATIC_FIELDS",
    "static_signature",
    "config_hash",
]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the dotted field."""


def static(default: Any) -> Any:
    """A static (shape- or code-path-changing) dataclass field."""
    return field(default=default, metadata={"static": True})


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _fail(section: str, name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{section}.{name} = {value!r} is invalid: {allowed}")


def _check_range(
    section: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Check a concrete number against a range; skip traced/array values."""
    if isinstance(value, bool):
        _fail(section, name, value, "expected a number, got a bool")
    if not _is_concrete_number(value):
        if isinstance(value, (str, list, tuple, dict)):
            _fail(section, name, value, "expected a number")
        return  # traced, stacked or placeholder leaf: checked when it was concrete
    if integer and not float(value).is_integer():
        _fail(section, name, value, "must be an integer")
    if math.isnan(value) or math.isinf(value):
        _fail(section, name, value, "must be a finite number (got NaN or inf)")
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if low is not None and (value < low or (low_open and value == low)):
        _fail(section, name, value, f"must lie in {rng}")
    if high is not None and (value > high or (high_open and value == high)):
        _fail(section, name, value, f"must lie in {rng}")


def _check_choice(section: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(section, name, value, f"must be one of {', '.join(repr(c) for c in choices)}")


def _check_int(section: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(section, name, value, f"must be an integer >= {low}")
    _check_range(section, name, value, low=low, high=high, integer=True)


class _Section:
    """Mixin: dict conversion and field metadata for one config section."""

    section: ClassVar[str] = ""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def static_field_names(cls) -> tuple[str, ...]:
        return tuple(
            f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            elif hasattr(value, "item") and getattr(value, "shape", None) == ():
                value = value.item()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Any:
        if not isinstance(values, Mapping):
            raise ConfigError(f"{cls.section} must be a table of fields, got {values!r}")
        known = set(cls.field_names())
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"{cls.section}.{key} is not a known field; known fields: "
                    + ", ".join(sorted(known))
                )
        static_names = set(cls.static_field_names())
        for key, value in values.items():
            if value is None and key not in static_names:
                raise ConfigError(f"{cls.section}.{key} = None is invalid: expected a number")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kwargs)


LATENT_FAMILIES: list[str] = ["onehot", "sparse", "gaussian"]
"""Names accepted by ``DataConfig.family``; ``clipsim.data.register_latent_family`` appends."""

OBJECTIVE_NAMES: list[str] = [
    "clip",
    "clip_reg",
    "neg_reg",
    "both_reg",
    "square",
    "spectral",
    "align_only",
    "siglip",
    "cyclip",
]
"""Names accepted by ``ObjectiveConfig.name``; ``clipsim.objectives.register`` appends."""


@dataclass(frozen=True)
class DataConfig(_Section):
    """The paired-data generator (THEORY.md section 1).

    Static: ``family``, ``num_concepts`` (k; K for ``onehot``), ``num_classes``
    (zero-shot classes of the ``gaussian`` family), ``image_dim`` (dx),
    ``text_dim`` (dy), ``image_unique_dim`` (kx), ``text_unique_dim`` (ky),
    ``mixing``, ``class_probs`` (pi; None for uniform), ``sparse_active`` (s: exactly
    s concepts on; None for independent Bernoulli(``sparse_prob``) coordinates).

    Dynamic: ``seed`` (draws the mixing matrices and class centres),
    ``image_unique_scale`` (sigma_xi), ``text_unique_scale`` (sigma_zeta),
    ``omit_prob`` (p_omit), ``noise_scale`` (sigma_noise), ``sparse_prob`` (p),
    ``within_class_std`` (spread of ``gaussian`` latents around their class centre),
    ``leaky_slope`` (slope of the nonlinear mixing's leaky ReLU).
    """

    section: ClassVar[str] = "data"

    family: str = static("onehot")
    num_concepts: int = static(10)
    num_classes: int = static(10)
    image_dim: int = static(32)
    text_dim: int = static(32)
    image_unique_dim: int = static(8)
    text_unique_dim: int = static(8)
    mixing: str = static("linear")
    class_probs: tuple[float, ...] | None = static(None)
    sparse_active: int | None = static(None)
    seed: int = 0
    image_unique_scale: float = 1.0
    text_unique_scale: float = 1.0
    omit_prob: float = 0.0
    noise_scale: float = 0.1
    sparse_prob: float = 0.2
    within_class_std: float = 0.5
    leaky_slope: float = 0.3

    def __post_init__(self) -> None:
        s = self.section
        _check_choice(s, "family", self.family, tuple(LATENT_FAMILIES))
        _check_choice(s, "mixing", self.mixing, ("linear", "nonlinear"))
        _check_int(s, "num_concepts", self.num_concepts, 1)
        _check_int(s, "num_classes", self.num_classes, 2)
        _check_int(s, "image_unique_dim", self.image_unique_dim, 0)
        _check_int(s, "text_unique_dim", self.text_unique_dim, 0)
        _check_int(s, "image_dim", self.image_dim, 1)
        _check_int(s, "text_dim", self.text_dim, 1)
        if self.family in ("onehot", "sparse") and self.num_concepts < 2:
            _fail(s, "num_concepts", self.num_concepts, f"must be >= 2 for family {self.family!r}")
        need_x = self.num_concepts + self.image_unique_dim
        if self.image_dim < need_x:
            _fail(s, "image_dim", self.image_dim,
                  f"must be >= num_concepts + image_unique_dim = {need_x} (orthonormal mixing)")
        need_y = self.num_concepts + self.text_unique_dim
        if self.text_dim < need_y:
            _fail(s, "text_dim", self.text_dim,
                  f"must be >= num_concepts + text_unique_dim = {need_y} (orthonormal mixing)")
        if self.class_probs is not None:
            probs = self.class_probs
            n_cls = self.num_concepts if self.family in ("onehot", "sparse") else self.num_classes
            if self.family == "sparse":
                _fail(s, "class_probs", probs,
                      "applies to the 'onehot' and 'gaussian' families only")
            if len(probs) != n_cls:
                _fail(s, "class_probs", probs, f"must have {n_cls} entries (one per class)")
            for p in probs:
                _check_range(s, "class_probs", p, low=0.0)
            if abs(sum(probs) - 1.0) > 1e-6:
                _fail(s, "class_probs", probs, "must sum to 1")
        if self.sparse_active is not None:
            _check_int(s, "sparse_active", self.sparse_active, 1, self.num_concepts)
        _check_range(s, "seed", self.seed, low=0, integer=True)
        _check_range(s, "image_unique_scale", self.image_unique_scale, low=0.0)
        _check_range(s, "text_unique_scale", self.text_unique_scale, low=0.0)
        _check_range(s, "omit_prob", self.omit_prob, low=0.0, high=1.0)
        _check_range(s, "noise_scale", self.noise_scale, low=0.0)
        _check_range(s, "sparse_prob", self.sparse_prob, low=0.0, high=1.0, low_open=True)
        _check_range(s, "within_class_std", self.within_class_std, low=0.0)
        _check_range(s, "leaky_slope", self.leaky_slope, low=0.0, high=1.0, low_open=True)

    @property
    def latent_dim(self) -> int:
        """k, the dimension of the shared latent z."""
        return self.num_concepts

    @property
    def num_zero_shot_classes(self) -> int:
        """C: K for ``onehot``, k single concepts for ``sparse``, ``num_classes`` otherwise."""
        return self.num_classes if self.family not in ("onehot", "sparse") else self.num_concepts


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The two encoders f (image side) and g (text side) (THEORY.md section 2).

    Static: ``kind`` (``linear``: f(x) = W x; ``mlp2``: f(x) = W2 relu(W1 x + b1) + b2),
    ``embed_dim`` (d), ``hidden_dim`` (mlp2 width), ``bias``, ``normalize``
    (L2-normalize outputs, so |s_ij| <= 1).

    Dynamic: ``init_scale`` (weights start as ``init_scale / sqrt(fan_in)`` times a
    standard normal).
    """

    section: ClassVar[str] = "model"

    kind: str = static("linear")
    embed_dim: int = static(16)
    hidden_dim: int = static(64)
    bias: bool = static(True)
    normalize: bool = static(True)
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        s = self.section
        _check_choice(s, "kind", self.kind, ("linear", "mlp2"))
        _check_int(s, "embed_dim", self.embed_dim, 1)
        _check_int(s, "hidden_dim", self.hidden_dim, 1)
        if not isinstance(self.bias, bool):
            _fail(s, "bias", self.bias, "must be true or false")
        if not isinstance(self.normalize, bool):
            _fail(s, "normalize", self.normalize, "must be true or false")
        _check_range(s, "init_scale", self.init_scale, low=0.0, low_open=True)


@dataclass(frozen=True)
class ObjectiveConfig(_Section):
    """The contrastive objective (THEORY.md section 3).

    Static: ``name`` (a registered objective), ``learn_temperature``.

    Dynamic: ``temperature`` (tau, or its initial value when learned),
    ``min_temperature`` (floor of a learned tau; CLIP uses 0.01),
    ``reg_weight`` (lambda of ``clip_reg``/``neg_reg``/``both_reg``; lambda_cross
    of ``cyclip``), ``in_modal_weight`` (lambda_in of ``cyclip``),
    ``siglip_scale`` and ``siglip_bias`` (initial exp(t') and b of ``siglip``).
    """

    section: ClassVar[str] = "objective"

    name: str = static("clip")
    learn_temperature: bool = static(False)
    temperature: float = 0.1
    min_temperature: float = 0.01
    reg_weight: float = 0.1
    in_modal_weight: float = 0.1
    siglip_scale: float = 10.0
    siglip_bias: float = -10.0

    def __post_init__(self) -> None:
        s = self.section
        _check_choice(s, "name", self.name, tuple(OBJECTIVE_NAMES))
        if not isinstance(self.learn_temperature, bool):
            _fail(s, "learn_temperature", self.learn_temperature, "must be true or false")
        _check_range(s, "temperature", self.temperature, low=0.0, low_open=True)
        _check_range(s, "min_temperature", self.min_temperature, low=0.0, low_open=True)
        if (_is_concrete_number(self.temperature) and _is_concrete_number(self.min_temperature)
                and self.learn_temperature and self.temperature < self.min_temperature):
            _fail(s, "temperature", self.temperature,
                  f"must be >= min_temperature = {self.min_temperature} when learned")
        _check_range(s, "reg_weight", self.reg_weight, low=0.0)
        _check_range(s, "in_modal_weight", self.in_modal_weight, low=0.0)
        _check_range(s, "siglip_scale", self.siglip_scale, low=0.0, low_open=True)
        _check_range(s, "siglip_bias", self.siglip_bias)


@dataclass(frozen=True)
class TrainConfig(_Section):
    """The optimizer and the training loop.

    Static: ``steps``, ``batch_size`` (B >= 2), ``optimizer`` (``adam``, ``adamw``,
    ``sgd``), ``schedule`` (``constant`` or ``cosine``), ``warmup_steps``,
    ``log_every`` (history resolution; must divide ``steps``), ``num_train_batches``
    (None: a fresh batch every step, the population regime; n: a fixed training set
    of n batches, cycled), ``dtype`` (``float32`` or ``float64``; float64 needs
    ``jax_enable_x64``).

    Dynamic: ``learning_rate``, ``weight_decay`` (decoupled, for ``adamw`` and
    ``sgd``), ``momentum`` (``sgd``).
    """

    section: ClassVar[str] = "train"

    steps: int = static(500)
    batch_size: int = static(128)
    optimizer: str = static("adam")
    schedule: str = static("constant")
    warmup_steps: int = static(0)
    log_every: int = static(10)
    num_train_batches: int | None = static(None)
    dtype: str = static("float32")
    learning_rate: float = 0.01
    weight_decay: float = 0.0
    momentum: float = 0.9

    def __post_init__(self) -> None:
        s = self.section
        _check_int(s, "steps", self.steps, 1)
        _check_int(s, "batch_size", self.batch_size, 2)
        _check_choice(s, "optimizer", self.optimizer, ("adam", "adamw", "sgd"))
        _check_choice(s, "schedule", self.schedule, ("constant", "cosine"))
        _check_int(s, "warmup_steps", self.warmup_steps, 0, self.steps)
        _check_int(s, "log_every", self.log_every, 1, self.steps)
        if self.steps % self.log_every != 0:
            _fail(s, "log_every", self.log_every, f"must divide train.steps = {self.steps}")
        if self.num_train_batches is not None:
            _check_int(s, "num_train_batches", self.num_train_batches, 1)
        _check_choice(s, "dtype", self.dtype, ("float32", "float64"))
        _check_range(s, "learning_rate", self.learning_rate, low=0.0, low_open=True)
        _check_range(s, "weight_decay", self.weight_decay, low=0.0)
        _check_range(s, "momentum", self.momentum, low=0.0, high=1.0, high_open=True)

    @property
    def num_logs(self) -> int:
        """Number of history entries: ``steps // log_every``."""
        return self.steps // self.log_every


@dataclass(frozen=True)
class EvalConfig(_Section):
    """Evaluation settings (all static: they set sample counts and code paths).

    ``num_samples``: test pairs and test images; ``num_prompts``: captions averaged
    per class prompt (1: the clean "appropriate prompt"; P > 1: ensemble of P
    sampled captions); ``top_r``: ranks for zero-shot error and retrieval recall;
    ``ridge``: ridge penalty of the recovery regressions and the linear probe;
    ``test_class_probs`` / ``test_image_unique_scale`` / ``test_noise_scale``: a
    shifted test distribution (None: same as training).
    """

    section: ClassVar[str] = "eval"

    num_samples: int = static(2000)
    num_prompts: int = static(1)
    top_r: tuple[int, ...] = static((1, 3, 5))
    ridge: float = static(1e-3)
    test_class_probs: tuple[float, ...] | None = static(None)
    test_image_unique_scale: float | None = static(None)
    test_noise_scale: float | None = static(None)

    def __post_init__(self) -> None:
        s = self.section
        _check_int(s, "num_samples", self.num_samples, 10)
        _check_int(s, "num_prompts", self.num_prompts, 1)
        if not isinstance(self.top_r, tuple) or not self.top_r:
            _fail(s, "top_r", self.top_r, "must be a non-empty list of integers >= 1")
        for r in self.top_r:
            _check_int(s, "top_r", r, 1)
        _check_range(s, "ridge", self.ridge, low=0.0, low_open=True)
        if self.test_class_probs is not None:
            for p in self.test_class_probs:
                _check_range(s, "test_class_probs", p, low=0.0)
            if abs(sum(self.test_class_probs) - 1.0) > 1e-6:
                _fail(s, "test_class_probs", self.test_class_probs, "must sum to 1")
        if self.test_image_unique_scale is not None:
            _check_range(s, "test_image_unique_scale", self.test_image_unique_scale, low=0.0)
        if self.test_noise_scale is not None:
            _check_range(s, "test_noise_scale", self.test_noise_scale, low=0.0)


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}

C = TypeVar("C", bound="RunConfig")


@dataclass(frozen=True)
class RunConfig:
    """A whole run: data, model, objective, training, evaluation, and the run seed.

    ``seed`` (dynamic) seeds encoder initialization, training batches and
    evaluation samples (``clipsim.train`` uses ``jax.random.key(seed)`` when no
    key is given). ``data.seed`` separately fixes the dataset's mixing matrices.

    Example:
        >>> cfg = RunConfig.from_dict({"objective": {"temperature": 0.05}})
        >>> cfg.objective.temperature
        0.05
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        _check_range("run", "seed", self.seed, low=0, integer=True)
        tp = self.eval.test_class_probs
        if tp is not None and len(tp) != self.data.num_zero_shot_classes:
            raise ConfigError(
                f"eval.test_class_probs = {tp!r} is invalid: must have "
                f"{self.data.num_zero_shot_classes} entries (one per zero-shot class)"
            )

    # ------------------------------------------------------------------ dicts
    def to_dict(self) -> dict[str, Any]:
        """Nested plain-Python dict (JSON- and TOML-safe; None values kept)."""
        out: dict[str, Any] = {name: getattr(self, name).to_dict() for name in _SECTIONS}
        seed = self.seed
        out["seed"] = seed.item() if hasattr(seed, "item") else seed
        return out

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a nested dict; missing fields take their defaults.

        Dotted top-level keys (``"objective.temperature": 0.1``) are accepted too.
        Raises ``ConfigError`` naming any unknown or invalid field.
        """
        nested = nest_dotted(values)
        for key in nested:
            if key not in _SECTIONS and key != "seed":
                raise ConfigError(
                    f"{key} is not a known config section; known: "
                    + ", ".join([*_SECTIONS, "seed"])
                )
        kwargs: dict[str, Any] = {
            name: sec.from_dict(nested.get(name, {})) for name, sec in _SECTIONS.items()
        }
        if "seed" in nested:
            kwargs["seed"] = nested["seed"]
        return cls(**kwargs)

    def replace(self: C, **dotted: Any) -> C:
        """A copy with dotted fields replaced: ``cfg.replace(**{"objective.temperature": 0.3})``."""
        merged = flatten_dict(self.to_dict())
        for key in dotted:
            if key not in merged:
                raise ConfigError(f"{key} is not a known field; see clipsim.config.ALL_FIELDS")
        merged.update(dotted)
        return type(self).from_dict(merged)

    # ------------------------------------------------------------- JSON/TOML
    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config is not valid JSON: {err}") from None
        return cls.from_dict(values)

    def to_toml(self) -> str:
        """TOML text: one table per section; None fields are omitted (they are the defaults)."""
        values = {name: {k: v for k, v in section.items() if v is not None}
                  if isinstance(section, dict) else section
                  for name, section in self.to_dict().items()}
        return tomli_w.dumps(values)

    @classmethod
    def from_toml(cls: type[C], path_or_text: str | Path) -> C:
        """Read a TOML file (a path) or TOML text."""
        text = _read_text_or_path(path_or_text)
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config is not valid TOML: {err}") from None
        return cls.from_dict(values)

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a ``.toml`` or ``.json`` config file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        if path.suffix == ".json":
            return cls.from_json(path.read_text())
        return cls.from_toml(path)

    def hash(self) -> str:
        """Stable 12-hex-digit hash of the full config (see ``config_hash``)."""
        return config_hash(self)


def _read_text_or_path(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path):
        if not path_or_text.is_file():
            raise ConfigError(f"config file {str(path_or_text)!r} does not exist")
        return path_or_text.read_text()
    text = str(path_or_text)
    if "\n" not in text and (text.endswith(".toml") or Path(text).is_file()):
        if not Path(text).is_file():
            raise ConfigError(f"config file {text!r} does not exist")
        return Path(text).read_text()
    return text


def nest_dotted(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b": 1, "a": {"c": 2}}`` into ``{"a": {"b": 1, "c": 2}}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key} conflicts with a scalar value at {part}")
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {})
            node[parts[-1]].update(nest_dotted(value))
        else:
            node[parts[-1]] = value
    return out


def flatten_dict(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn a nested dict into dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_dict(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _all_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    dynamic, static_ = ["seed"], []
    for name, sec in _SECTIONS.items():
        for f in dataclasses.fields(sec):  # type: ignore[arg-type]
            (static_ if f.metadata.get("static", False) else dynamic).append(f"{name}.{f.name}")
    return tuple(dynamic), tuple(static_)


DYNAMIC_FIELDS, STATIC_FIELDS = _all_fields()
"""Dotted names of the dynamic (vmappable) and static (shape/code-path) fields."""
ALL_FIELDS: tuple[str, ...] = tuple(sorted(DYNAMIC_FIELDS + STATIC_FIELDS))


def static_signature(cfg: RunConfig) -> Any:
    """The pytree structure of ``cfg``: equal for configs that share a compiled program.

    Args:
        cfg: a run config.

    Returns:
        A ``jax.tree_util.PyTreeDef``; two configs compile to the same program
        exactly when their signatures are equal (same static fields).
    """
    return jax.tree_util.tree_structure(cfg)


def config_hash(cfg: RunConfig) -> str:
    """Stable short hash (12 hex digits) of a concrete config's canonical JSON.

    Args:
        cfg: a run config with concrete (not traced or stacked) values.

    Returns:
        The first 12 hex digits of the SHA-256 of the sorted, compact JSON of
        ``cfg.to_dict()``; equal configs give equal hashes across sessions.
    """
    canonical = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


for _cls in (DataConfig, ModelConfig, ObjectiveConfig, TrainConfig, EvalConfig, RunConfig):
    jax.tree_util.register_dataclass(_cls)
