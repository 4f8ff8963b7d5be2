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
    "objective_loss",
    "init_params",
    "train_program",
    "train",
    "world_for",
]

Array = jax.Array
Params = dict[str, Any]

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


def _weight_shares(params: Params, world: World, cfg: RunConfig) -> dict[str, Array]:
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


def train_program(cfg: RunConfig, key: Array) -> TrainOutput:
    """Train one run; pure, ``jit``- and ``vmap``-able over dynamic config fields.

    Args:
        cfg: the run config (a pytree; static fields fix the program).
        key: the run's PRNG key.

    Returns:
        ``TrainOutput`` with final params, a history of ``train.num_logs`` entries
        and the first non-finite step (-1 if none; the update of a non-finite step
        is skipped).
    """
    tc = cfg.train
    world = world_for(cfg)
    params = init_params(cfg, key=jax.random.fold_in(key, STREAM_INIT))
    optimizer = make_optimizer(tc)
    opt_state = optimizer.init(params)
    batch_key = jax.random.fold_in(key, STREAM_BATCHES)
    batch_size = tc.batch_size

    if tc.num_train_batches is None:
        def get_batch(step: Array) -> Batch:
            return sample_pairs(cfg.data, world, key=jax.random.fold_in(batch_key, step),
                                n=batch_size)
    else:
        n_batches = tc.num_train_batches
        train_set = sample_pairs(cfg.data, world, key=jax.random.fold_in(key, STREAM_TRAIN_SET),
                                 n=n_batches * batch_size)
        train_set = jax.tree.map(lambda a: a.reshape(n_batches, batch_size, *a.shape[1:]),
                                 train_set)

        def get_batch(step: Array) -> Batch:
            return jax.tree.map(lambda a: a[step % n_batches], train_set)

    grad_fn = jax.value_and_grad(objective_loss, has_aux=True)

    def step_fn(carry, step):
        params, opt_state, first_bad = carry
        (loss, aux), grads = grad_fn(params, get_batch(step), cfg)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = _clamp_temperature(optax.apply_updates(params, updates), cfg)
        finite = jnp.isfinite(loss)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        params = keep(new_params, params)
        opt_state = keep(new_opt_state, opt_state)
        first_bad = jnp.where((first_bad < 0) & ~finite, step.astype(first_bad.dtype), first_bad)
        return (params, opt_state, first_bad), {"loss": loss, **aux}

    def block_fn(carry, block):
        steps = block * tc.log_every + jnp.arange(tc.log_every)
        carry, logs = jax.lax.scan(step_fn, carry, steps)
        record = jax.tree.map(lambda a: jnp.mean(a, axis=0), logs)
        record["step"] = (block + 1) * tc.log_every
        record.update(_weight_shares(carry[0], world, cfg))
        return carry, record

    init_carry = (params, opt_state, jnp.asarray(-1, jnp.int32))
    (params, _, first_bad), history = jax.lax.scan(
        block_fn, init_carry, jnp.arange(tc.num_logs))
    return TrainOutput(params=params, history=history, first_bad_step=first_bad)


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
