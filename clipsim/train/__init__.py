"""Training: optax optimizers and the scanned, jitted, vmappable training program."""

from clipsim.train.loop import (
    STREAM_BATCHES,
    STREAM_EVAL,
    STREAM_INIT,
    STREAM_TRAIN_SET,
    NonFiniteLossError,
    TrainOutput,
    TrainResult,
    check_finite,
    embed,
    init_params,
    objective_loss,
    train,
    train_program,
    world_for,
)
from clipsim.train.optim import learning_rate_schedule, make_optimizer

__all__ = [
    "STREAM_BATCHES",
    "STREAM_EVAL",
    "STREAM_INIT",
    "STREAM_TRAIN_SET",
    "NonFiniteLossError",
    "TrainOutput",
    "TrainResult",
    "check_finite",
    "embed",
    "init_params",
    "objective_loss",
    "train",
    "train_program",
    "world_for",
    "learning_rate_schedule",
    "make_optimizer",
]
