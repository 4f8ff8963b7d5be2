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
``ConfigError`` naming the dotted field, the bad value and the allowed range
(misspelled names get a "did you mean" suggestion). When JAX rebuilds a config
from traced or stacked leaves, leaf checks are skipped (the values were checked
when the concrete configs were built). Integer fields and seeds accept Python and
NumPy integers (stored as ``int``) in ``[low, 2**31 - 1]``, never floats or bools.

Cross-section rules checked by ``RunConfig``: ``eval.top_r`` entries are at most
the number of zero-shot classes C (a larger rank is always a hit);
``eval.test_class_probs`` has C entries; a ``linear`` encoder's ``embed_dim`` is at
most ``min(image_dim, text_dim)`` (a linear map cannot span more dimensions than
its input has; the extra ones would stay unused). A ``mlp2`` encoder may embed in
more dimensions than its input: its ReLU features do span them.

Names that other modules register live here, at the bottom layer, as
``Registry`` objects: ``LATENT_FAMILIES`` (filled by ``clipsim.data``) and
``OBJECTIVES`` (filled by ``clipsim.objectives``); ``DataConfig.family`` and
``ObjectiveConfig.name`` are checked against them, and a family's own description
(``num_classes``, ``class_prior``) drives the family-dependent checks, so this
module names no family and imports nothing above it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import numbers
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import jax

__all__ = [
    "ConfigError",
    "Registry",
    "LATENT_FAMILIES",
    "OBJECTIVES",
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
    "DYNAMIC_FIELDS",
    "STATIC_FIELDS",
    "FIELD_TYPES",
    "static_signature",
    "config_hash",
    "read_toml",
    "precision",
]

INT_MAX = 2**31 - 1
"""Largest value of an integer field or seed (JAX counts and seeds in int32)."""

MAX_STEPS = 10**9
"""Largest ``train.steps`` (step counters are int32; 1e9 steps is days of compute)."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the dotted field."""


def static(default: Any) -> Any:
    """A static (shape- or code-path-changing) dataclass field."""
    return field(default=default, metadata={"static": True})


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _fail(section: str, name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{section}.{name} = {value!r} is invalid: {allowed}")


def did_you_mean(name: Any, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_integer(value: Any) -> bool:
    """A concrete Python or NumPy integer (bools excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_int(obj: Any, name: str) -> None:
    """Store a NumPy integer field of a frozen dataclass as a Python ``int``."""
    value = getattr(obj, name)
    if _is_integer(value) and type(value) is not int:
        object.__setattr__(obj, name, int(value))


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
    if not isinstance(value, str) or value not in choices:
        _fail(section, name, value, f"must be one of {', '.join(repr(c) for c in choices)}"
              + did_you_mean(value, choices))


def _check_int(section: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    high = INT_MAX if high is None else high
    if not _is_integer(value):
        _fail(section, name, value, f"must be an integer in [{low}, {high}]")
    if not low <= value <= high:
        _fail(section, name, value, f"must be an integer in [{low}, {high}]")


def _check_seed(section: str, name: str, value: Any) -> None:
    """A seed: a concrete integer in [0, 2**31 - 1]; traced/stacked leaves are skipped."""
    if _is_integer(value):
        if not 0 <= value <= INT_MAX:
            _fail(section, name, value, f"must be an integer in [0, {INT_MAX}]")
    elif isinstance(value, (bool, numbers.Number, str, list, tuple, dict)) or value is None:
        _fail(section, name, value, f"must be an integer in [0, {INT_MAX}] (not a float)"
              if isinstance(value, numbers.Real) and not isinstance(value, bool)
              else f"must be an integer in [0, {INT_MAX}]")


def _check_probs(section: str, name: str, value: Any, n: int | None) -> None:
    """Probabilities: a list of n finite numbers >= 0 summing to 1 (within 1e-6)."""
    if not isinstance(value, (tuple, list)):
        _fail(section, name, value, "must be a list of probabilities (one per class) "
              "summing to 1")
    for p in value:
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            _fail(section, name, value, "must be a list of numbers")
        if not math.isfinite(p) or p < 0:
            _fail(section, name, value, "entries must be finite and >= 0")
    if n is not None and len(value) != n:
        _fail(section, name, value, f"must have {n} entries (one per class), got {len(value)}")
    if abs(math.fsum(value) - 1.0) > 1e-6:
        _fail(section, name, value, f"must sum to 1 (sums to {math.fsum(value):.6g})")


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
                    f"{cls.section}.{key} is not a known field{did_you_mean(key, known)}; "
                    f"known fields: " + ", ".join(sorted(known))
                )
        static_names = set(cls.static_field_names())
        for key, value in values.items():
            if value is None and key not in static_names:
                raise ConfigError(f"{cls.section}.{key} = None is invalid: expected a number")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kwargs)


T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry, the one source of truth for a kind of pluggable thing.

    A read-only mapping; ``register`` adds (a second registration of a name raises
    unless ``replace=True``), ``unregister`` removes, ``lookup`` raises a one-line
    error listing the known names. The config field that names an entry is checked
    against the registry at construction (``check``).

    Args:
        kind: what the entries are, for messages (``"latent family"``).
        field: the dotted config field that names an entry (``"data.family"``).
    """

    def __init__(self, kind: str, field: str) -> None:
        self.kind = kind
        self.field = field
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``.

        Args:
            name: a non-empty string.
            entry: the object to register.
            replace: allow replacing an entry already registered under ``name``.

        Returns:
            ``entry``.

        Raises:
            ValueError: the name is empty, or already registered and ``replace`` is False.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string; got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True "
                             "to replace it")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove ``name`` (no error when absent); returns the removed entry or None."""
        return self._entries.pop(name, None)

    def lookup(self, name: str) -> T:
        """The entry called ``name``; ``ValueError`` naming the known ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}; "
                             f"known: {', '.join(repr(n) for n in self._entries)}") from None

    def check(self, value: Any) -> None:
        """Raise ``ConfigError`` naming ``self.field`` unless ``value`` is registered."""
        if not isinstance(value, str) or value not in self._entries:
            section, name = self.field.split(".")
            _fail(section, name, value, "must be one of "
                  + ", ".join(repr(n) for n in self._entries) + did_you_mean(value, self._entries))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


LATENT_FAMILIES: Registry[Any] = Registry("latent family", "data.family")
"""Latent families by name (``clipsim.data.LatentFamily`` objects), filled by ``clipsim.data``.

``DataConfig`` asks the family for ``num_classes(cfg)`` and ``class_prior``."""

OBJECTIVES: Registry[Any] = Registry("objective", "objective.name")
"""Objectives by name (``clipsim.objectives.Objective``), filled by ``clipsim.objectives``."""


@dataclass(frozen=True)
class DataConfig(_Section):
    """The paired-data generator (docs/theory.md, section 1).

    Static: ``family`` (a registered latent family), ``num_concepts`` (k; K for
    ``onehot``), ``num_classes`` (zero-shot classes of the ``gaussian`` family; which
    field holds the class count C is the family's ``classes_from``), ``image_dim`` (dx),
    ``text_dim`` (dy), ``image_unique_dim`` (kx), ``text_unique_dim`` (ky),
    ``mixing``, ``class_probs`` (pi; None for uniform), ``sparse_active`` (s: exactly
    s concepts on; None for independent Bernoulli(``sparse_prob``) coordinates),
    ``captions_per_image`` (M >= 1: each image of a finite training set carries M
    captions drawn independently given its latent, and training batches are drawn
    from the list of (image, caption) pairs; M > 1 needs ``train.num_train_batches``).

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
    captions_per_image: int = static(1)
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
        for name in ("num_concepts", "num_classes", "image_dim", "text_dim", "image_unique_dim",
                     "text_unique_dim", "sparse_active", "captions_per_image", "seed"):
            _as_int(self, name)
        if isinstance(self.class_probs, list):
            object.__setattr__(self, "class_probs", tuple(self.class_probs))
        LATENT_FAMILIES.check(self.family)
        family = LATENT_FAMILIES[self.family]
        _check_choice(s, "mixing", self.mixing, ("linear", "nonlinear"))
        _check_int(s, "num_concepts", self.num_concepts, 1)
        _check_int(s, "num_classes", self.num_classes, 2)
        _check_int(s, "image_unique_dim", self.image_unique_dim, 0)
        _check_int(s, "text_unique_dim", self.text_unique_dim, 0)
        _check_int(s, "image_dim", self.image_dim, 1)
        _check_int(s, "text_dim", self.text_dim, 1)
        if family.num_classes(self) < 2:
            count = family.classes_from
            _fail(s, count, getattr(self, count),
                  f"must be >= 2 for family {self.family!r} (it sets the number of classes)")
        need_x = self.num_concepts + self.image_unique_dim
        if self.image_dim < need_x:
            _fail(s, "image_dim", self.image_dim,
                  f"must be >= num_concepts + image_unique_dim = {need_x} (orthonormal mixing)")
        need_y = self.num_concepts + self.text_unique_dim
        if self.text_dim < need_y:
            _fail(s, "text_dim", self.text_dim,
                  f"must be >= num_concepts + text_unique_dim = {need_y} (orthonormal mixing)")
        if self.class_probs is not None:
            if not family.class_prior:
                _fail(s, "class_probs", self.class_probs, f"does not apply to family "
                      f"{self.family!r} (its latents are not drawn from a class prior)")
            _check_probs(s, "class_probs", self.class_probs, family.num_classes(self))
        if self.sparse_active is not None:
            _check_int(s, "sparse_active", self.sparse_active, 1, self.num_concepts)
        _check_seed(s, "seed", self.seed)
        _check_range(s, "image_unique_scale", self.image_unique_scale, low=0.0)
        _check_range(s, "text_unique_scale", self.text_unique_scale, low=0.0)
        _check_range(s, "omit_prob", self.omit_prob, low=0.0, high=1.0)
        _check_range(s, "noise_scale", self.noise_scale, low=0.0)
        _check_range(s, "sparse_prob", self.sparse_prob, low=0.0, high=1.0, low_open=True)
        _check_range(s, "within_class_std", self.within_class_std, low=0.0)
        _check_range(s, "leaky_slope", self.leaky_slope, low=0.0, high=1.0, low_open=True)
        _check_int(s, "captions_per_image", self.captions_per_image, 1)

    @property
    def latent_dim(self) -> int:
        """k, the dimension of the shared latent z."""
        return self.num_concepts

    @property
    def num_zero_shot_classes(self) -> int:
        """C, as the family says (``onehot``: K; ``sparse``: the k single concepts;
        ``gaussian``: ``num_classes``)."""
        return LATENT_FAMILIES.lookup(self.family).num_classes(self)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The two encoders f (image side) and g (text side) (docs/theory.md, section 2).

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
        _as_int(self, "embed_dim")
        _as_int(self, "hidden_dim")
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
    """The contrastive objective (docs/theory.md, section 3).

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
        OBJECTIVES.check(self.name)
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
    of n batches, cycled), ``dtype`` (``float32`` or ``float64``; a run computes
    inside ``precision(dtype)``, so float32 results do not depend on whether 64-bit
    JAX is on, and float64 needs no global switch).

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
        for name in ("steps", "batch_size", "warmup_steps", "log_every", "num_train_batches"):
            _as_int(self, name)
        _check_int(s, "steps", self.steps, 1, MAX_STEPS)
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
        _as_int(self, "num_samples")
        _as_int(self, "num_prompts")
        if isinstance(self.top_r, list):
            object.__setattr__(self, "top_r", tuple(self.top_r))
        if isinstance(self.test_class_probs, list):
            object.__setattr__(self, "test_class_probs", tuple(self.test_class_probs))
        _check_int(s, "num_samples", self.num_samples, 10)
        _check_int(s, "num_prompts", self.num_prompts, 1)
        if not isinstance(self.top_r, tuple) or not self.top_r:
            _fail(s, "top_r", self.top_r, "must be a non-empty list of integers >= 1")
        for r in self.top_r:
            _check_int(s, "top_r", r, 1)
        _check_range(s, "ridge", self.ridge, low=0.0, low_open=True)
        if len(set(self.top_r)) != len(self.top_r):
            _fail(s, "top_r", self.top_r, "must not repeat a rank")
        if self.test_class_probs is not None:
            _check_probs(s, "test_class_probs", self.test_class_probs, None)
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
        _as_int(self, "seed")
        _check_seed("run", "seed", self.seed)
        n_cls = self.data.num_zero_shot_classes
        tp = self.eval.test_class_probs
        if tp is not None and len(tp) != n_cls:
            _fail("eval", "test_class_probs", tp,
                  f"must have {n_cls} entries (one per zero-shot class), got {len(tp)}")
        if max(self.eval.top_r) > n_cls:
            _fail("eval", "top_r", list(self.eval.top_r),
                  f"ranks must be <= the number of zero-shot classes C = {n_cls} "
                  f"(data.family = {self.data.family!r})")
        in_dim = min(self.data.image_dim, self.data.text_dim)
        if self.model.kind == "linear" and self.model.embed_dim > in_dim:
            _fail("model", "embed_dim", self.model.embed_dim,
                  f"must be <= min(data.image_dim, data.text_dim) = {in_dim} for a linear "
                  "encoder (it cannot span more dimensions than its input has)")

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
        if not isinstance(values, Mapping):
            raise ConfigError(f"a config must be a table of sections, got {values!r}")
        nested = nest_dotted(values)
        for key in nested:
            if key not in _SECTIONS and key != "seed":
                raise ConfigError(
                    f"{key} is not a known config section{did_you_mean(key, [*_SECTIONS, 'seed'])}"
                    "; known: " + ", ".join([*_SECTIONS, "seed"])
                )
            if key in _SECTIONS and not isinstance(nested[key], Mapping):
                raise ConfigError(_section_not_field(key, nested[key]))
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
            if key in _SECTIONS:
                raise ConfigError(_section_not_field(key, dotted[key]))
            if key not in merged:
                raise ConfigError(f"{key} is not a known field{did_you_mean(key, merged)}; "
                                  "see clipsim.config.ALL_FIELDS")
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
        import tomli_w  # only for writing TOML: importing clipsim must not need it

        return tomli_w.dumps(values)

    @classmethod
    def from_toml(cls: type[C], path_or_text: str | Path) -> C:
        """Read a TOML file (a path) or TOML text (see ``read_toml`` for which is which).

        Raises:
            ConfigError: a missing file, a directory, invalid or empty TOML, or an
                invalid config.
        """
        values, _ = read_toml(path_or_text, what="config")
        return cls.from_dict(values)

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a ``.toml`` or ``.json`` config file.

        Raises:
            ConfigError: the path is missing or a directory, the file is empty or not
                valid TOML/JSON, or the config is invalid.
        """
        path = _existing_file(Path(path), "config")
        if path.suffix == ".json":
            try:
                values = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                empty = isinstance(err, json.JSONDecodeError) and not err.doc.strip()
                raise ConfigError(f"config file {str(path)!r} is " + (
                    "empty" if empty else f"not valid JSON: {err}")) from None
            return cls.from_dict(values)
        return cls.from_toml(path)

    def hash(self) -> str:
        """Stable 12-hex-digit hash of the full config (see ``config_hash``)."""
        return config_hash(self)


def _section_not_field(section: str, value: Any) -> str:
    example = f"{section}.{_SECTIONS[section].field_names()[0]}"
    return (f"{section} = {value!r} is invalid: {section} is a config section, not a field; "
            f"set one of its fields, e.g. {example}")


def _existing_file(path: Path, what: str, error: type[ConfigError] = ConfigError) -> Path:
    if path.is_dir():
        raise error(f"{what} path {str(path)!r} is a directory, not a {what} file")
    if not path.is_file():
        hint = ""
        if not path.suffix and path.with_suffix(".toml").is_file():
            hint = f" (did you mean {str(path.with_suffix('.toml'))!r}?)"
        raise error(f"{what} file {str(path)!r} does not exist{hint}")
    return path


def read_toml(source: str | Path, *, what: str = "config",
              error: type[ConfigError] = ConfigError) -> tuple[dict[str, Any], Path | None]:
    """Parse TOML from a file or from text: the one rule for telling them apart.

    A ``Path`` is a file. A string is TOML text when it holds a newline, or an ``=``
    and is not an existing file; otherwise it is a path (so ``"runs/spec"``, with or
    without ``.toml``, is a path, and a missing one is an error naming it).

    Args:
        source: a path or TOML text.
        what: what is being read, for messages (``"config"``, ``"sweep"``).
        error: the exception class raised (a ``ConfigError`` subclass).

    Returns:
        ``(values, path)``: the parsed table and the file's path (None for text).

    Raises:
        error: a missing file or a directory, invalid TOML, or an empty document
            (one that sets nothing).
    """
    path: Path | None = None
    if isinstance(source, Path):
        path = source
    elif not isinstance(source, str):
        raise error(f"expected a {what} path or TOML text, got {type(source).__name__}")
    elif "\n" not in source and (Path(source).is_file() or "=" not in source):
        path = Path(source)
    if path is not None:
        where = f"{what} file {str(path)!r}"
        try:
            text = _existing_file(path, what, error).read_text()
        except (UnicodeDecodeError, PermissionError) as err:
            raise error(f"{where} cannot be read as text: {err}") from None
    else:
        text, where = str(source), f"{what} text"
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{where} is not valid TOML: {err}") from None
    if not values:
        raise error(f"{where} is empty: it sets nothing")
    return values, path


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


def _field_types() -> dict[str, Any]:
    types: dict[str, Any] = {"seed": int}
    for name, sec in _SECTIONS.items():
        hints = typing.get_type_hints(sec)
        for f in dataclasses.fields(sec):  # type: ignore[arg-type]
            types[f"{name}.{f.name}"] = hints[f.name]
    return types


FIELD_TYPES: dict[str, Any] = _field_types()
"""Dotted field -> its annotated type as a real type (``float``, ``int | None``,
``tuple[float, ...] | None``), resolved with ``typing.get_type_hints``."""


def precision(dtype: str) -> contextlib.AbstractContextManager[Any]:
    """A scope in which JAX computes in ``dtype`` (``"float32"`` or ``"float64"``).

    Inside, 64-bit JAX is on exactly for ``"float64"`` (``jax.enable_x64(...)`` as a
    context manager), whatever the process-wide setting (``JAX_ENABLE_X64``,
    ``jax.config``): a float32 run traced here gives bitwise the same numbers
    with x64 on or off outside, and a float64 run needs no global switch.
    Train, evaluate and sweep a run inside the scope of its ``train.dtype``: a
    float64 run's arrays keep their dtype after the scope, but JAX operations on
    them outside a float64 scope (with x64 off) would compute in float32.

    Args:
        dtype: a ``train.dtype`` value.

    Returns:
        A context manager (thread-local, nestable).

    Raises:
        ConfigError: ``dtype`` is neither ``"float32"`` nor ``"float64"``.

    Example:
        >>> with precision(cfg.train.dtype):             # doctest: +SKIP
        ...     out = train_program(cfg, key)
    """
    _check_choice("train", "dtype", dtype, ("float32", "float64"))
    return _enable_x64(dtype == "float64")


def _x64_scope() -> Callable[[bool], contextlib.AbstractContextManager[Any]]:
    """JAX's thread-local x64 context manager: ``jax.enable_x64`` in current releases,
    ``jax.experimental.enable_x64`` in older ones (the declared minimum is 0.4.36)."""
    scope = getattr(jax, "enable_x64", None)
    if scope is None:
        from jax.experimental import enable_x64 as scope
    return scope


_enable_x64 = _x64_scope()


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

    Only the fields that differ from their defaults enter the hash, so adding a
    new config field (with a default that keeps the old behaviour) leaves every
    existing hash, hence every stored run, valid. The flip side: changing a
    field's default changes what an old hash means, so a default is never
    changed without a new field name.

    Returns:
        The first 12 hex digits of the SHA-256 of the sorted, compact JSON of the
        dotted fields of ``cfg.to_dict()`` that differ from ``RunConfig()``'s;
        equal configs give equal hashes across sessions.
    """
    flat = flatten_dict(cfg.to_dict())
    defaults = _default_flat()
    changed = {k: v for k, v in flat.items() if k not in defaults or defaults[k] != v}
    canonical = json.dumps(changed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@functools.cache
def _default_flat() -> dict[str, Any]:
    return flatten_dict(RunConfig().to_dict())


for _cls in (DataConfig, ModelConfig, ObjectiveConfig, TrainConfig, EvalConfig, RunConfig):
    jax.tree_util.register_dataclass(_cls)
