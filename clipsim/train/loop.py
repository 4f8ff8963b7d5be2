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

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clipsim import objectives
from clipsim.config import ModelConfig, RunConfig, precision
from clipsim.data import (
    Batch,
    World,
    draw_pairs,
    make_world,
    sample_caption_pairs,
    sample_pairs,
)
from clipsim.metrics import unique_weight_share
from clipsim.models import encode, init_encoders
from clipsim.train.optim import make_optimizer

__all__ = [
    "STREAM_INIT",
    "STREAM_BATCHES",
    "STREAM_TRAIN_SET",
    "STREAM_EVAL",
    "NonFiniteLossError",
    "DegenerateRunWarning",
    "degenerate_reason",
    "TrainResult",
    "TrainOutput",
    "embed",
    "embedding_functions",
    "objective_loss",
    "init_params",
    "fit",
    "FitState",
    "Trainer",
    "run_trainer",
    "SEGMENT_WORK",
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


class DegenerateRunWarning(RuntimeWarning):
    """A run finished but learned nothing measurable (constant loss, non-finite parameters)."""


def degenerate_reason(history: dict[str, np.ndarray], params: Params | None = None) -> str | None:
    """Why a finished run is degenerate, or None.

    A run is degenerate when its parameters are not all finite, or when its
    training loss is exactly the same at every logged block (the model never
    moved: e.g. embeddings that overflow and normalize to zero, which scores
    every pair alike and gives CLIP's loss log B forever).

    Args:
        history: the run's history (``loss`` of shape (num_logs,)).
        params: the trained parameters, if available.

    Returns:
        A one-line reason, or None for a healthy run.
    """
    if params is not None and not all(bool(np.all(np.isfinite(np.asarray(a))))
                                      for a in jax.tree.leaves(params)):
        return "trained parameters are not all finite"
    loss = np.asarray(history.get("loss", ()))
    if loss.size >= 2 and np.all(loss == loss[0]):
        return (f"the training loss stayed at exactly {float(loss[0]):.6g} in every logged "
                "block: the embeddings are constant (overflow or zero scale?)")
    return None


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TrainOutput:
    """What the compiled program returns (for one run, or stacked over runs).

    Attributes:
        params: ``{"encoders": {"image": ..., "text": ...}, "objective": {...}}``.
        history: dict of (num_logs,) arrays: ``step``, ``loss`` (mean over the
            logging block) and the objective's diagnostics (at the block's last
            step), plus
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


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FitState:
    """The carry of the training loop: parameters, optimizer state, first bad step."""

    params: Params
    opt_state: Any
    first_bad_step: Array


@dataclass(frozen=True)
class Trainer:
    """Everything ``fit`` needs besides the step count: the loop's ingredients.

    Attributes:
        loss_fn: ``loss_fn(params, batch) -> (loss, aux)``; ``loss`` a scalar, ``aux``
            a dict of scalar diagnostics (logged at each block's last step).
        params: initial parameters (a pytree).
        optimizer: an optax transformation.
        batch_fn: ``batch_fn(step) -> batch`` for an int32 step index (fresh draws
            from a folded key, or an index into a fixed training set).
        log_every: steps per logging block.
        post_update: applied to the parameters after each update (e.g. a clamp).
        diagnostics: ``diagnostics(params) -> dict`` of scalars recorded at the end of
            every logging block (e.g. weight shares).
    """

    loss_fn: LossFn
    params: Params
    optimizer: optax.GradientTransformation
    batch_fn: Callable[[Array], Any]
    log_every: int
    post_update: Callable[[Params], Params] | None = None
    diagnostics: Callable[[Params], dict[str, Array]] | None = None

    def init(self) -> FitState:
        """The loop's state before the first step."""
        return FitState(self.params, self.optimizer.init(self.params),
                        jnp.asarray(-1, jnp.int32))

    def blocks(self, state: FitState, first_block: Any,
               num_blocks: int) -> tuple[FitState, dict[str, Array]]:
        """Run ``num_blocks`` logging blocks from block ``first_block``.

        Steps are numbered globally (block b runs steps ``b * log_every`` to
        ``(b + 1) * log_every - 1``), so running the blocks in several calls gives
        the same steps, batches and updates as one call.

        Args:
            state: the loop's state after ``first_block`` blocks.
            first_block: index of the first block to run (may be traced).
            num_blocks: how many blocks (static).

        Returns:
            ``(state, history)`` with (num_blocks,) history arrays.
        """
        grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
        log_every = self.log_every

        def step_fn(carry: FitState, step, with_aux: bool):
            (loss, aux), grads = grad_fn(carry.params, self.batch_fn(step))
            updates, new_opt_state = self.optimizer.update(grads, carry.opt_state, carry.params)
            new_params = optax.apply_updates(carry.params, updates)
            if self.post_update is not None:
                new_params = self.post_update(new_params)
            finite = jnp.isfinite(loss)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
            bad = carry.first_bad_step
            bad = jnp.where((bad < 0) & ~finite, step.astype(bad.dtype), bad)
            new = FitState(keep(new_params, carry.params), keep(new_opt_state, carry.opt_state),
                           bad)
            return new, ((loss, aux) if with_aux else loss)

        def block_fn(carry: FitState, block):
            # The diagnostics are read on the block's last step only: on the other
            # steps the aux outputs are unused, so XLA drops their B x B passes.
            block_steps = block * log_every + jnp.arange(log_every - 1)
            carry, losses = jax.lax.scan(lambda c, t: step_fn(c, t, False), carry, block_steps)
            carry, (last, aux) = step_fn(carry, (block + 1) * log_every - 1, True)
            record = dict(aux)
            record["loss"] = (jnp.sum(losses) + last) / log_every
            record["step"] = (block + 1) * log_every
            if self.diagnostics is not None:
                record.update(self.diagnostics(carry.params))
            return carry, record

        return jax.lax.scan(block_fn, state, first_block + jnp.arange(num_blocks))


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
            a dict of scalar diagnostics (logged at each block's last step).
        params: initial parameters (a pytree).
        optimizer: an optax transformation.
        batch_fn: ``batch_fn(step) -> batch`` for an int32 step index.
        steps: number of optimizer steps, a multiple of ``log_every``.
        log_every: steps per logging block.
        post_update: applied to the parameters after each update (e.g. a clamp).
        diagnostics: ``diagnostics(params) -> dict`` of scalars recorded at the end of
            every logging block.

    Returns:
        ``TrainOutput``: final params, history of ``steps // log_every`` entries
        (``step``, ``loss`` as the block mean, each aux key at the block's last step,
        then the diagnostics),
        and the first non-finite step (-1 if none).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> loss = lambda p, b: (jnp.sum((p - b) ** 2), {})
        >>> out = fit(loss, jnp.zeros(2), optax.sgd(0.1), lambda step: 1.0,
        ...           steps=100, log_every=50)
        >>> [round(float(v), 3) for v in out.params]
        [1.0, 1.0]
    """
    trainer = Trainer(loss_fn, params, optimizer, batch_fn, log_every, post_update, diagnostics)
    return _finish(*trainer.blocks(trainer.init(), 0, _num_blocks(steps, log_every)))


def _num_blocks(steps: int, log_every: int) -> int:
    if steps % log_every:
        raise ValueError(f"fit: steps = {steps} is not a multiple of log_every = {log_every}")
    return steps // log_every


def _finish(state: FitState, history: dict[str, Array]) -> TrainOutput:
    return TrainOutput(params=state.params, history=history, first_bad_step=state.first_bad_step)


def batch_source(cfg: RunConfig, world: World, key: Array) -> Callable[[Array], Batch]:
    """The run's training batches as a function of the step.

    Population regime (``train.num_train_batches`` None): fresh pairs from
    ``fold_in(key(STREAM_BATCHES), step)``. Finite regime: a fixed set of n batches
    drawn once from the ``STREAM_TRAIN_SET`` stream, cycled (step mod n). With
    ``data.captions_per_image`` = M > 1 (finite regime only) the training set is the
    list of nB/M images with M captions each, and every step draws B pairs from it
    uniformly without replacement (``fold_in(key(STREAM_BATCHES), step)``), so two
    captions of one image can meet in a batch.

    Args:
        cfg: the run config.
        world: the run's dataset (``world_for(cfg)``).
        key: the run key.

    Returns:
        ``batch_fn(step) -> Batch`` of ``train.batch_size`` pairs.
    """
    batch_size = cfg.train.batch_size
    if cfg.train.num_train_batches is None and cfg.data.captions_per_image > 1:
        raise ValueError("data.captions_per_image > 1 needs a finite training set: set "
                         "train.num_train_batches")
    if cfg.train.num_train_batches is None:
        batch_key = jax.random.fold_in(key, STREAM_BATCHES)
        return lambda step: sample_pairs(cfg.data, world, key=jax.random.fold_in(batch_key, step),
                                         n=batch_size)
    if cfg.data.captions_per_image > 1:  # batches drawn from the list of (image, caption) pairs
        pool = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), training_set(cfg, world, key))
        draw_key = jax.random.fold_in(key, STREAM_BATCHES)
        return lambda step: draw_pairs(pool, key=jax.random.fold_in(draw_key, step),
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
    m = cfg.data.captions_per_image
    if n * b % m:
        raise ValueError(f"data.captions_per_image = {m} must divide the training set's "
                         f"num_train_batches * batch_size = {n * b} pairs")
    set_key = jax.random.fold_in(key, STREAM_TRAIN_SET)
    pairs = (sample_pairs(cfg.data, world, key=set_key, n=n * b) if m == 1 else
             sample_caption_pairs(cfg.data, world, key=set_key, num_images=n * b // m))
    return jax.tree.map(lambda a: a.reshape(n, b, *a.shape[1:]), pairs)


def run_trainer(cfg: RunConfig, key: Array) -> Trainer:
    """The run's ``Trainer``: its objective on the two encoders, optimizer, batches, clamp.

    Args:
        cfg: the run config.
        key: the run's PRNG key.

    Returns:
        A ``Trainer`` whose ``blocks`` train the run (``train_program`` runs them all).
    """
    world = world_for(cfg)
    return Trainer(
        loss_fn=lambda params, batch: objective_loss(params, batch, cfg),
        params=init_params(cfg, key=jax.random.fold_in(key, STREAM_INIT)),
        optimizer=make_optimizer(cfg.train),
        batch_fn=batch_source(cfg, world, key),
        log_every=cfg.train.log_every,
        post_update=lambda params: _clamp_temperature(params, cfg),
        diagnostics=lambda params: weight_shares(params, world, cfg),
    )


def train_program(cfg: RunConfig, key: Array) -> TrainOutput:
    """Train one run; pure, ``jit``- and ``vmap``-able over dynamic config fields.

    ``fit`` with the configured objective on the two encoders, the configured
    optimizer, the run's batch source and CLIP's temperature clamp (``run_trainer``).

    Args:
        cfg: the run config (a pytree; static fields fix the program).
        key: the run's PRNG key.

    Returns:
        ``TrainOutput`` with final params, a history of ``train.num_logs`` entries
        (with ``unique_share_image``/``_text`` for linear encoders) and the first
        non-finite step (-1 if none; the update of a non-finite step is skipped).
    """
    trainer = run_trainer(cfg, key)
    return _finish(*trainer.blocks(trainer.init(), 0,
                                   _num_blocks(cfg.train.steps, cfg.train.log_every)))


SEGMENT_WORK: int = 2**20
"""Pair-steps (steps x batch size) ``train`` runs per compiled call: a Ctrl-C is
handled between calls, so this bounds how long an interrupt waits (seconds)."""


@partial(jax.jit, static_argnames="num_blocks")
def _train_init(cfg: RunConfig, key: Array, num_blocks: int) -> tuple[FitState, dict]:
    trainer = run_trainer(cfg, key)
    return trainer.blocks(trainer.init(), 0, num_blocks)


@partial(jax.jit, static_argnames="num_blocks")
def _train_more(cfg: RunConfig, key: Array, state: FitState, first_block: Array,
                num_blocks: int) -> tuple[FitState, dict]:
    return run_trainer(cfg, key).blocks(state, first_block, num_blocks)





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


def _segments(cfg: RunConfig) -> list[int]:
    """Blocks per compiled call: equal segments of at most ``SEGMENT_WORK`` pair-steps."""
    total = _num_blocks(cfg.train.steps, cfg.train.log_every)
    per_block = cfg.train.log_every * cfg.train.batch_size
    size = max(1, min(total, SEGMENT_WORK // per_block))
    return [size] * (total // size) + ([total % size] if total % size else [])


def train(cfg: RunConfig) -> TrainResult:
    """Train the encoders of ``cfg``; the run key is ``jax.random.key(cfg.seed)``.

    It computes in ``train.dtype`` whatever the process-wide x64 setting
    (``clipsim.config.precision``). The run is trained in segments of at most
    ``SEGMENT_WORK`` pair-steps (same steps, batches and updates as
    ``train_program`` in one piece), so Ctrl-C stops it within seconds with
    ``KeyboardInterrupt`` and nothing half-done is returned.

    Args:
        cfg: the run config. The result is a function of the config alone (its
            ``seed`` included): there is no other key to pass.

    Returns:
        A ``TrainResult`` (params, NumPy history, the config, the run key).

    Raises:
        NonFiniteLossError: the loss became NaN or inf (message names step and config).

    Example:
        >>> result = train(RunConfig())            # doctest: +SKIP
        >>> result.history["loss"][-1]             # doctest: +SKIP
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"train: cfg must be a RunConfig, got {type(cfg).__name__}")
    key = jax.random.key(cfg.seed)
    segments = _segments(cfg)
    with precision(cfg.train.dtype):
        state, first = _train_init(cfg, key, segments[0])
        pieces, done = [first], segments[0]
        for size in segments[1:]:
            # Wait for each segment: with async dispatch the loop would queue them all,
            # and a Ctrl-C would only be seen after the last one.
            jax.block_until_ready(state)
            state, piece = _train_more(cfg, key, state, jnp.asarray(done, jnp.int32), size)
            pieces.append(piece)
            done += size
    check_finite(int(state.first_bad_step), cfg)
    history = {k: np.concatenate([np.atleast_1d(np.asarray(p[k])) for p in pieces])
               for k in pieces[0]}
    reason = degenerate_reason(history, state.params)
    if reason is not None:
        warnings.warn(f"run {cfg.hash()} (seed {cfg.seed}) is degenerate: {reason}",
                      DegenerateRunWarning, stacklevel=2)
    return TrainResult(params=state.params, history=history, config=cfg, key=key)
