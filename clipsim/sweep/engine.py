"""The batched sweep program: group by static signature, chunk, ``jit(vmap(...))``.

Points that share a static signature (``clipsim.config.static_signature``) differ
only in dynamic fields (seed, temperature, lambda, learning rate, noise, ...), so
they are stacked leaf-wise and run as one compiled program

    jax.jit(jax.vmap(run_point))(stacked_configs, keys)

where ``run_point`` trains (``train_program``) and evaluates
(``evaluate_program`` on the ``STREAM_EVAL`` key) one run. Each group is cut into
chunks of equal size (the last one padded by repeating its last point, padded
outputs dropped), so a group compiles once however many chunks it has. Chunk
size comes from ``max_batch`` or from an estimate of one run's memory against a
budget. The compiled programs are cached per static signature.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim.config import RunConfig, static_signature
from clipsim.evaluation import evaluate_program
from clipsim.sweep.table import chunk_frame
from clipsim.train.loop import STREAM_EVAL, train_program

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "ChunkTask",
    "BatchOutput",
    "run_point",
    "stack_configs",
    "run_batch",
    "program_traces",
    "clear_programs",
    "output_names",
    "estimate_run_bytes",
    "group_points",
    "plan_chunks",
    "compute_chunk",
]

Array = jax.Array

DEFAULT_MEMORY_BUDGET: int = 2 * 2**30
"""Bytes one chunk may use by default (2 GiB)."""


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: points of one static group, run as one batch.

    Attributes:
        chunk_id: stable id (group index and a hash of the points' config hashes);
            names the part file ``part-<chunk_id>.parquet``.
        sweep: the sweep name.
        group: index of the static group within the sweep.
        points: indices of the points in ``SweepSpec.points()``.
        configs: the points' configs as nested dicts (``RunConfig.to_dict``).
        pad_to: the group's chunk size; the batch is padded to it.
    """

    chunk_id: str
    sweep: str
    group: int
    points: tuple[int, ...]
    configs: tuple[dict, ...]
    pad_to: int

    def run_configs(self) -> list[RunConfig]:
        """The chunk's configs as ``RunConfig`` s.

        Returns:
            One config per entry of ``points``.
        """
        return [RunConfig.from_dict(c) for c in self.configs]


@dataclass(frozen=True)
class BatchOutput:
    """NumPy outputs of a batch of n runs.

    Attributes:
        history: name -> (n, num_logs) training history (``step`` included).
        metrics: name -> (n,) evaluation metrics.
        first_bad: (n,) first non-finite training step, -1 if none.
    """

    history: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    first_bad: np.ndarray


def run_point(cfg: RunConfig, key: Array) -> tuple[dict[str, Array], dict[str, Array], Array]:
    """Train and evaluate one run; pure and ``vmap``-able.

    Args:
        cfg: the run config.
        key: the run key, ``jax.random.key(cfg.seed)`` in a sweep.

    Returns:
        ``(history, metrics, first_bad_step)``: the same numbers as ``clipsim.train(cfg)``
        followed by ``clipsim.evaluate(result)`` (without its host-only angles).
    """
    out = train_program(cfg, key)
    metrics = evaluate_program(cfg, out.params, jax.random.fold_in(key, STREAM_EVAL))
    return out.history, metrics, out.first_bad_step


class _Program:
    """``jit(vmap(run_point))`` for one static signature, counting its traces."""

    def __init__(self) -> None:
        self.traces = 0
        self.fn = jax.jit(jax.vmap(self.sweep_chunk))

    def sweep_chunk(self, cfg: RunConfig, key: Array):
        self.traces += 1  # runs at trace time only: one per compilation
        return run_point(cfg, key)


_PROGRAMS: dict[Any, _Program] = {}


def _program(cfg: RunConfig) -> _Program:
    sig = static_signature(cfg)
    if sig not in _PROGRAMS:
        _PROGRAMS[sig] = _Program()
    return _PROGRAMS[sig]


def program_traces(cfg: RunConfig) -> int:
    """How many times the batched program of ``cfg``'s static group was traced (compiled).

    Args:
        cfg: any config of the group.

    Returns:
        The trace count (0 if the group never ran in this process); one per distinct
        chunk size, so one per group when chunks are padded to a common size.
    """
    prog = _PROGRAMS.get(static_signature(cfg))
    return 0 if prog is None else prog.traces


def clear_programs() -> None:
    """Forget every cached batched program (the next run of each group recompiles)."""
    _PROGRAMS.clear()


def _float_fields() -> frozenset[str]:
    cfg = RunConfig()
    return frozenset(
        f"{section}.{f.name}"
        for section in ("data", "model", "objective", "train", "eval")
        for f in dataclasses.fields(getattr(cfg, section))
        if f.type == "float")


_FLOAT_FIELDS = _float_fields()


def stack_configs(configs: Sequence[RunConfig]) -> RunConfig:
    """Stack configs of one static signature leaf-wise: dynamic fields become (n,) arrays.

    Float fields are stacked in the runs' ``train.dtype`` (an integer written for a
    float field, e.g. ``temperature = 1``, is stacked as a float too); integer fields
    (seeds) keep JAX's default integer type.

    Args:
        configs: n >= 1 configs sharing a static signature.

    Returns:
        One ``RunConfig`` pytree whose leaves are (n,) arrays.
    """
    ftype = jnp.dtype(configs[0].train.dtype)

    def stack(path, *xs):
        name = ".".join(k.name for k in path)
        dtype = ftype if name in _FLOAT_FIELDS else None
        return jnp.stack([jnp.asarray(x, dtype) for x in xs])

    return jax.tree_util.tree_map_with_path(stack, *configs)


def run_batch(configs: Sequence[RunConfig], *, pad_to: int | None = None) -> BatchOutput:
    """Run n configs of one static signature as one compiled batch.

    Args:
        configs: n >= 1 configs sharing a static signature.
        pad_to: batch size to compile for (>= n); the last config is repeated to
            fill it and the padded outputs are dropped. Default n.

    Returns:
        ``BatchOutput`` for the n configs, in order.
    """
    configs = list(configs)
    n = len(configs)
    if n == 0:
        raise ValueError("run_batch: no configs")
    sig = static_signature(configs[0])
    for cfg in configs[1:]:
        if static_signature(cfg) != sig:
            raise ValueError("run_batch: configs differ in static fields; group them first")
    size = n if pad_to is None else pad_to
    if size < n:
        raise ValueError(f"run_batch: pad_to = {pad_to} is smaller than the batch ({n})")
    padded = configs + [configs[-1]] * (size - n)
    keys = jnp.stack([jax.random.key(int(c.seed)) for c in padded])
    history, metrics, first_bad = jax.device_get(_program(configs[0]).fn(stack_configs(padded),
                                                                         keys))
    cut = lambda tree: {k: np.asarray(v)[:n] for k, v in tree.items()}  # noqa: E731
    return BatchOutput(history=cut(history), metrics=cut(metrics),
                       first_bad=np.asarray(first_bad)[:n])


def output_names(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """Names of the history keys (``step`` excluded) and evaluation metrics of ``cfg``.

    Uses ``jax.eval_shape`` (traces, does not compile or run).

    Args:
        cfg: a run config.

    Returns:
        ``(history_names, metric_names)``.
    """
    history, metrics, _ = jax.eval_shape(run_point, cfg, jax.random.key(0))
    return [k for k in history if k != "step"], list(metrics)


def estimate_run_bytes(cfg: RunConfig) -> int:
    """A rough upper estimate of the device memory one run of ``cfg`` needs, in bytes.

    Counts parameters with gradients and optimizer state (4x params), the data's
    mixing matrices, one training batch with its B x B score matrices (forward and
    backward), a fixed training set if any, and the evaluation samples with their
    num_samples x num_samples score matrices; doubled for intermediates.

    Args:
        cfg: a run config (only static fields matter).

    Returns:
        The estimate in bytes, an int.
    """
    d, m, t, e = cfg.data, cfg.model, cfg.train, cfg.eval
    item = 8 if t.dtype == "float64" else 4
    dx, dy, k, kx, ky, emb = (d.image_dim, d.text_dim, d.num_concepts, d.image_unique_dim,
                              d.text_unique_dim, m.embed_dim)
    if m.kind == "linear":
        params, width = emb * (dx + dy), emb
    else:
        params, width = m.hidden_dim * (dx + dy) + 2 * emb * m.hidden_dim, m.hidden_dim + emb
    world = dx * dx + dy * dy + (dx + dy) * k + dx * kx + dy * ky + d.num_zero_shot_classes * k
    sample = dx + dy + 2 * k + kx + ky + 1
    bsz, n = t.batch_size, e.num_samples
    batch = bsz * (sample + 4 * width) + 6 * bsz * bsz
    train_set = (t.num_train_batches or 0) * bsz * sample
    evaluation = 3 * n * (sample + 2 * width) + 4 * n * n
    return 2 * item * (4 * params + world + batch + train_set + evaluation)


def group_points(points: Sequence[RunConfig]) -> list[list[int]]:
    """Group points by static signature (one compiled program per group).

    Args:
        points: run configs.

    Returns:
        Lists of indices into ``points``, groups in first-seen order.
    """
    groups: dict[Any, list[int]] = {}
    for i, cfg in enumerate(points):
        groups.setdefault(static_signature(cfg), []).append(i)
    return list(groups.values())


def _chunk_id(group: int, hashes: Sequence[str]) -> str:
    digest = hashlib.sha256(",".join(hashes).encode()).hexdigest()[:10]
    return f"g{group:03d}-{digest}"


def plan_chunks(sweep: str, points: Sequence[RunConfig], pending: Sequence[int], *,
                max_batch: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                parallelism: int = 1) -> list[ChunkTask]:
    """Cut the pending points into equal-size chunks per static group.

    Args:
        sweep: the sweep name.
        points: all points of the sweep.
        pending: indices of the points still to run.
        max_batch: at most this many runs per chunk; default from the memory estimate.
        memory_budget: bytes per chunk used with ``estimate_run_bytes`` when
            ``max_batch`` is None.
        parallelism: workers available; without ``max_batch`` a group is split into
            at least this many chunks (when it has enough points).

    Returns:
        Chunk tasks, groups in order; within a group all chunks share ``pad_to``.
    """
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch = {max_batch} is invalid: must be >= 1")
    todo_set = set(pending)
    tasks = []
    for g, members in enumerate(group_points(points)):
        todo = [i for i in members if i in todo_set]
        if not todo:
            continue
        if max_batch is not None:
            cap = max_batch
        else:
            cap = max(1, memory_budget // estimate_run_bytes(points[todo[0]]))
            cap = min(cap, max(1, math.ceil(len(todo) / max(1, parallelism))))
        n_chunks = math.ceil(len(todo) / cap)
        size = math.ceil(len(todo) / n_chunks)
        for c in range(n_chunks):
            idx = tuple(todo[c * size:(c + 1) * size])
            tasks.append(ChunkTask(
                chunk_id=_chunk_id(g, [points[i].hash() for i in idx]), sweep=sweep, group=g,
                points=idx, configs=tuple(points[i].to_dict() for i in idx), pad_to=size))
    return tasks


def compute_chunk(task: ChunkTask) -> pd.DataFrame:
    """Run a chunk and return its rows; no files touched (so any backend can call it).

    Args:
        task: the chunk.

    Returns:
        The chunk's rows (``clipsim.sweep.table.chunk_frame``).
    """
    configs = task.run_configs()
    out = run_batch(configs, pad_to=task.pad_to)
    return chunk_frame(task.sweep, task.points, configs, out.history, out.metrics,
                       out.first_bad)
