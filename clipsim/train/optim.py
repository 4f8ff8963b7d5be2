"""Optimizers from ``TrainConfig``, built with optax.

The learning rate, weight decay and momentum may be traced (dynamic fields), so
the optimizer is built inside the compiled training program.
"""

from __future__ import annotations

import optax

from clipsim.config import TrainConfig

__all__ = ["learning_rate_schedule", "make_optimizer"]


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warmup from 0 over ``warmup_steps``, then constant or cosine decay to 0.

    The shape is built from the static fields; the (possibly traced) peak
    ``learning_rate`` multiplies it, so the schedule never branches on a tracer.

    Args:
        cfg: the train config (``schedule``, ``warmup_steps``, ``steps``, ``learning_rate``).

    Returns:
        A function ``step -> learning rate``.
    """
    if cfg.schedule == "cosine":
        shape = optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=1.0, warmup_steps=cfg.warmup_steps,
            decay_steps=cfg.steps, end_value=0.0,
        )
    elif cfg.warmup_steps == 0:
        shape = optax.constant_schedule(1.0)
    else:
        shape = optax.join_schedules(
            [optax.linear_schedule(0.0, 1.0, cfg.warmup_steps), optax.constant_schedule(1.0)],
            [cfg.warmup_steps],
        )
    peak = cfg.learning_rate
    return lambda step: peak * shape(step)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """``adam`` (no decay), ``adamw`` (decoupled decay) or ``sgd`` (momentum, decay).

    Args:
        cfg: the train config (``optimizer``, ``weight_decay``, ``momentum`` and the
            learning-rate schedule fields).

    Returns:
        An ``optax.GradientTransformation``.
    """
    lr = learning_rate_schedule(cfg)
    if cfg.optimizer == "adam":
        return optax.adam(lr)
    if cfg.optimizer == "adamw":
        return optax.adamw(lr, weight_decay=cfg.weight_decay)
    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay),
        optax.sgd(lr, momentum=cfg.momentum),
    )
