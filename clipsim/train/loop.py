"""The training program: ``lax.scan`` over steps inside one ``jit``.

``train_program(cfg, key)`` is a pure function of a config pytree and a key. Its
static config fields fix the compiled program; its dynamic fields (seed-derived
key, temperature, lambda, learning rate, noise scales, ...) are traced, so

    jax.jit(jax.vmap(train_program))(stacked_configs, keys)

trains many runs that share a static signature as one program (the sweep
engine does exactly this). ``train`` is the host-side wrapper for one run: it
validates, runs the compiled program, raises on a non-finite loss and returns a
``TrainResult`` that carries its config.

Key streams: the run key is split by ``fold_in`` into independent streams for
initialization, training batches, the fixed training set and evaluation, so
adding an evaluation never changes a training run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clipsim import objectives
from clipsim.config import ModelConfig, RunConfig
from clipsim.data import Batch, World, make_world, sample_pairs
from clipsim.metrics import unique_weight_share
from clipsim.models import encode, init_encoders
from clipsim.train.optim import make_optimizer

__all__ = [
    "STREAM_INIT",
    "STREAM_BATCHES",
    "STREAM_TRAIN_SET",
    "STREAM_EVAL",
    "NonFiniteLossError",
    "TrainResult",
    "TrainOutput",
    "embed",
    "embedding_functions",
    "objective_loss",
    "init_params",
    "fit",
    "batch_source",
    "training_set",
    "weight_shares",
    "train_program",
    "train",
    "world_for",
]

Array = jax.Array
Params = dict[str, Any]
Encoder = Callable[[Array], Array]
LossFn = Callable[[Any, Any], tuple[Array, dict[str, Array]]]

STREAM_INIT, STREAM_BATCHES, STREAM_TRAIN_SET, STREAM_EVAL = 0, 1, 2, 3


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the message names the step and config."""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TrainOutput:
    """What the compiled program returns (for one run, or stacked over runs).

    Attributes:
        params: ``{"encoders": {"image": ..., "text": ...}, "objective": {...}}``.
        history: dict of (num_logs,) arrays: ``step``, ``loss`` (mean over the
            logging block) and the objective's diagnostics (block means), plus
            ``unique_share_image``/``unique_share_text`` for linear encoders.
        first_bad_step: first step whose loss was non-finite, -1 if none.
    """

    params: Params
    history: dict[str, Array]
    first_bad_step: Array


@dataclass(frozen=True)
class TrainResult:
    """A trained run: final parameters, history (NumPy) and the config that made it."""

    params: Params
    history: dict[str, np.ndarray]
    config: RunConfig
    key: Array = field(repr=False)

    @property
    def final_loss(self) -> float:
        """Training loss averaged over the last logging block."""
        return float(self.history["loss"][-1])


def _dtype(cfg: RunConfig) -> Any:
    return jnp.dtype(cfg.train.dtype)


def world_for(cfg: RunConfig) -> World:
    """The run's dataset (mixing matrices, class centres) in the run's dtype.

    Args:
        cfg: the run config (``data`` and ``train.dtype`` are used).

    Returns:
        ``make_world(cfg.data, key=jax.random.key(cfg.data.seed))`` cast to ``train.dtype``.
    """
    world = make_world(cfg.data, key=jax.random.key(cfg.data.seed))
    return jax.tree.map(lambda a: a.astype(_dtype(cfg)), world)


def embedding_functions(params: Params, cfg: RunConfig) -> tuple[Encoder, Encoder]:
    """The run's encoders as functions: f (n, dx) -> (n, d) and g (n, dy) -> (n, d).

    Args:
        params: run parameters (``{"encoders": ..., "objective": ...}``).
        cfg: the run config (its ``model`` section is used).

    Returns:
        ``(f, g)``: the image and the text encoder.
    """
    enc = params["encoders"]
    return (lambda x: encode(enc["image"], x, cfg=cfg.model),
            lambda y: encode(enc["text"], y, cfg=cfg.model))


def embed(params: Params, x: Array, y: Array, *, cfg: ModelConfig) -> tuple[Array, Array]:
    """Embeddings (f(x), g(y)), each (n, d), from ``params["encoders"]``.

    Args:
        params: run parameters (``{"encoders": ..., "objective": ...}``).
        x: images, (n, dx).
        y: texts, (n, dy).
        cfg: the model config.

    Returns:
        ``(f(x), g(y))``, each (n, d).
    """
    enc = params["encoders"]
    return encode(enc["image"], x, cfg=cfg), encode(enc["text"], y, cfg=cfg)


def objective_loss(params: Params, batch: Batch, cfg: RunConfig) -> tuple[Array, dict]:
    """The configured objective on one batch: ``(loss, aux)``.

    Args:
        params: run parameters (``{"encoders": ..., "objective": ...}``).
        batch: a ``Batch`` of B pairs.
        cfg: the run config.

    Returns:
        ``(loss, aux)`` of the registered objective ``cfg.objective.name`` (its
        reduction: see that objective).
    """
    za, zb = embed(params, batch.x, batch.y, cfg=cfg.model)
    obj = objectives.get(cfg.objective.name)
    return obj.loss_fn(za, zb, params["objective"], cfg=cfg.objective)


def init_params(cfg: RunConfig, *, key: Array) -> Params:
    """Initial encoder and objective parameters.

    Args:
        cfg: the run config.
        key: PRNG key (the run's ``STREAM_INIT`` stream in ``train_program``).

    Returns:
        ``{"encoders": {"image": ..., "text": ...}, "objective": obj.init_params(...)}``
        in ``train.dtype``.
    """
    obj = objectives.get(cfg.objective.name)
    return {
        "encoders": init_encoders(
            cfg.model, key=key, image_dim=cfg.data.image_dim, text_dim=cfg.data.text_dim,
            dtype=_dtype(cfg),
        ),
        "objective": jax.tree.map(
            lambda a: jnp.asarray(a, _dtype(cfg)), obj.init_params(cfg.objective)
        ),
    }


def weight_shares(params: Params, world: World, cfg: RunConfig) -> dict[str, Array]:
    """Share of a linear encoder's weight energy on the unique block, per modality.

    Args:
        params: run parameters.
        world: the run's dataset.
        cfg: the run config.

    Returns:
        ``unique_share_image`` / ``unique_share_text`` (``unique_weight_share``) for
        linear encoders with unique features on that side; empty otherwise.
    """
    if cfg.model.kind != "linear":
        return {}
    enc = params["encoders"]
    out = {}
    if cfg.data.image_unique_dim > 0:
        out["unique_share_image"] = unique_weight_share(
            enc["image"]["w"], world.shared_x, world.unique_x)
    if cfg.data.text_unique_dim > 0:
        out["unique_share_text"] = unique_weight_share(
            enc["text"]["w"], world.shared_y, world.unique_y)
    return out


def _clamp_temperature(params: Params, cfg: RunConfig) -> Params:
    """CLIP's clamp on a learned temperature: keep log(1/tau) <= log(1/min_temperature).

    Clamping the parameter itself (not only its use in the loss) lets a
    temperature that hit the floor move back up when the gradient turns.
    """
    obj = params["objective"]
    if "log_inv_temperature" not in obj:
        return params
    cap = -jnp.log(jnp.asarray(cfg.objective.min_temperature, obj["log_inv_temperature"].dtype))
    obj = {**obj, "log_inv_temperature": jnp.minimum(obj["log_inv_temperature"], cap)}
    return {**params, "objective": obj}


def fit(loss_fn: LossFn, params: Params, optimizer: optax.GradientTransformation,
        batch_fn: Callable[[Array], Any], *, steps: int, log_every: int,
        post_update: Callable[[Params], Params] | None = None,
        diagnostics: Callable[[Params], dict[str, Array]] | None = None) -> TrainOutput:
    """The one training loop: ``steps`` optimizer steps as a scan of scans, inside ``jit``.

    Every trainer of the library (``train_program``, the multi-view trainer, a
    user's custom objective) is this loop with its own loss, parameters and batch
    source. Pure and ``vmap``-able; the step count and log cadence are static.

    A step whose loss is non-finite leaves parameters and optimizer state
    unchanged (its update is skipped) and is reported as ``first_bad_step``.

    Args:
        loss_fn: ``loss_fn(params, batch) -> (loss, aux)``; ``loss`` a scalar, ``aux``
            a dict of scalar diagnostics (logged as block means).
        params: initial parameters (a pytree).
        optimizer: an optax transformation.
        batch_fn: ``batch_fn(step) -> batch`` for an int32 step index (fresh draws
            from a folded key, or an index into a fixed training set).
        steps: number of optimizer steps, a multiple of ``log_every``.
        log_every: steps per logging block.
        post_update: applied to the parameters after each update (e.g. a clamp).
        diagnostics: ``diagnostics(params) -> dict`` of scalars recorded at the end of
            every logging block (e.g. weight shares).

    Returns:
        ``TrainOutput``: final params, history of ``steps // log_every`` entries
        (``step``, ``loss`` and each aux key as block means, then the diagnostics),
        and the first non-finite step (-1 if none).
    """
    if steps % log_every:
        raise ValueError(f"fit: steps = {steps} is not a multiple of log_every = {log_every}")
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step_fn(carry, step):
        params, opt_state, first_bad = carry
        (loss, aux), grads = grad_fn(params, batch_fn(step))
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if post_update is not None:
            new_params = post_update(new_params)
        finite = jnp.isfinite(loss)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        params = keep(new_params, params)
        opt_state = keep(new_opt_state, opt_state)
        first_bad = jnp.where((first_bad < 0) & ~finite, step.astype(first_bad.dtype), first_bad)
        return (params, opt_state, first_bad), {"loss": loss, **aux}

    def block_fn(carry, block):
        block_steps = block * log_every + jnp.arange(log_every)
        carry, logs = jax.lax.scan(step_fn, carry, block_steps)
        record = jax.tree.map(lambda a: jnp.mean(a, axis=0), logs)
        record["step"] = (block + 1) * log_every
        if diagnostics is not None:
            record.update(diagnostics(carry[0]))
        return carry, record

    init_carry = (params, optimizer.init(params), jnp.asarray(-1, jnp.int32))
    (params, _, first_bad), history = jax.lax.scan(
        block_fn, init_carry, jnp.arange(steps // log_every))
    return TrainOutput(params=params, history=history, first_bad_step=first_bad)


def batch_source(cfg: RunConfig, world: World, key: Array) -> Callable[[Array], Batch]:
    """The run's training batches as a function of the step.

    Population regime (``train.num_train_batches`` None): fresh pairs from
    ``fold_in(key(STREAM_BATCHES), step)``. Finite regime: a fixed set of n batches
    drawn once from the ``STREAM_TRAIN_SET`` stream, cycled (step mod n).

    Args:
        cfg: the run config.
        world: the run's dataset (``world_for(cfg)``).
        key: the run key.

    Returns:
        ``batch_fn(step) -> Batch`` of ``train.batch_size`` pairs.
    """
    batch_size = cfg.train.batch_size
    if cfg.train.num_train_batches is None:
        batch_key = jax.random.fold_in(key, STREAM_BATCHES)
        return lambda step: sample_pairs(cfg.data, world, key=jax.random.fold_in(batch_key, step),
                                         n=batch_size)
    train_set = training_set(cfg, world, key)
    return lambda step: jax.tree.map(lambda a: a[step % cfg.train.num_train_batches], train_set)


def training_set(cfg: RunConfig, world: World, key: Array) -> Batch:
    """The fixed training set of the finite regime, as (n, B, ...) batches.

    Args:
        cfg: the run config (``train.num_train_batches`` = n must be set).
        world: the run's dataset.
        key: the run key (its ``STREAM_TRAIN_SET`` stream is used).

    Returns:
        A ``Batch`` whose leaves have leading axes (n, B).
    """
    n, b = cfg.train.num_train_batches, cfg.train.batch_size
    if n is None:
        raise ValueError("training_set: train.num_train_batches is None (population regime)")
    pairs = sample_pairs(cfg.data, world, key=jax.random.fold_in(key, STREAM_TRAIN_SET), n=n * b)
    return jax.tree.map(lambda a: a.reshape(n, b, *a.shape[1:]), pairs)


def train_program(cfg: RunConfig, key: Array) -> TrainOutput:
    """Train one run; pure, ``jit``- and ``vmap``-able over dynamic config fields.

    ``fit`` with the configured objective on the two encoders, the configured
    optimizer, the run's batch source and CLIP's temperature clamp.

    Args:
        cfg: the run config (a pytree; static fields fix the program).
        key: the run's PRNG key.

    Returns:
        ``TrainOutput`` with final params, a history of ``train.num_logs`` entries
        (with ``unique_share_image``/``_text`` for linear encoders) and the first
        non-finite step (-1 if none; the update of a non-finite step is skipped).
    """
    world = world_for(cfg)
    return fit(
        lambda params, batch: objective_loss(params, batch, cfg),
        init_params(cfg, key=jax.random.fold_in(key, STREAM_INIT)),
        make_optimizer(cfg.train),
        batch_source(cfg, world, key),
        steps=cfg.train.steps, log_every=cfg.train.log_every,
        post_update=lambda params: _clamp_temperature(params, cfg),
        diagnostics=lambda params: weight_shares(params, world, cfg),
    )


_train_jit = jax.jit(train_program)


def check_finite(first_bad_step: int, cfg: RunConfig) -> None:
    """Raise ``NonFiniteLossError`` naming the step and config if a step went bad.

    Args:
        first_bad_step: ``TrainOutput.first_bad_step`` of one run (-1: none).
        cfg: the run's config (named in the message).

    Raises:
        NonFiniteLossError: ``first_bad_step >= 0``.
    """
    if first_bad_step >= 0:
        raise NonFiniteLossError(
            f"non-finite training loss at step {first_bad_step} "
            f"(config {cfg.hash()}: objective={cfg.objective.name}, "
            f"temperature={cfg.objective.temperature}, "
            f"learning_rate={cfg.train.learning_rate}, seed={cfg.seed})"
        )


def _check_dtype(cfg: RunConfig) -> None:
    if cfg.train.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "train.dtype = 'float64' needs 64-bit JAX: call "
            "jax.config.update('jax_enable_x64', True) first"
        )


def train(cfg: RunConfig, *, key: Array | None = None) -> TrainResult:
    """Train the encoders of ``cfg``.

    Args:
        cfg: the run config.
        key: PRNG key; defaults to ``jax.random.key(cfg.seed)``.

    Returns:
        A ``TrainResult`` (params, NumPy history, the config, the key).

    Raises:
        NonFiniteLossError: the loss became NaN or inf (message names step and config).

    Example:
        >>> result = train(RunConfig())            # doctest: +SKIP
        >>> result.history["loss"][-1]             # doctest: +SKIP
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"train: cfg must be a RunConfig, got {type(cfg).__name__}")
    _check_dtype(cfg)
    if key is None:
        key = jax.random.key(cfg.seed)
    out = _train_jit(cfg, key)
    check_finite(int(out.first_bad_step), cfg)
    history = {k: np.asarray(v) for k, v in out.history.items()}
    return TrainResult(params=out.params, history=history, config=cfg, key=key)
