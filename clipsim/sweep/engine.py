"""The sweep engine: group by static signature, chunk, run a *program* as ``jit(vmap(...))``.

A ``Program`` is a pure function ``fn(cfg, key) -> RunOutput`` (a history of
logged steps, a dict of metrics, the first non-finite step) with a name. The
default program, ``train_evaluate``, trains (``train_program``) and evaluates
(``evaluate_program`` on the ``STREAM_EVAL`` key) one run; an experiment that
needs other numbers passes its own program, and still gets grouping, chunking,
padding, the compile cache, every backend and the resumable store.

Points that share a static signature (``clipsim.config.static_signature``) differ
only in dynamic fields (seed, temperature, lambda, learning rate, noise, ...), so
they are stacked leaf-wise and run as one compiled program

    jax.jit(jax.vmap(program.fn, in_axes=...))(configs, keys)

Config leaves and keys equal across a chunk are passed once (``in_axes=None``)
rather than stacked: whatever depends only on them (the dataset's mixing
matrices; with one seed per chunk, the initial parameters and every training
batch) is computed once for the chunk instead of once per run. The planner
therefore puts the runs of one seed together when it can.

Each group is cut into chunks of equal size (the last one padded by repeating
its last point, padded outputs dropped), so a group compiles once however many
chunks it has. Chunk size is bounded by memory (an estimate of one run against
a budget) and by work (so a killed sweep loses at most one bounded chunk).
The compiled programs are cached per (program, static signature, shared leaves).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim.config import FIELD_TYPES, RunConfig, precision, static_signature
from clipsim.evaluation import evaluate_program
from clipsim.metrics._blocked import BLOCKED_MIN_ROWS, block_rows  # the metrics' own switch
from clipsim.objectives._clip_blocked import BLOCK_ROWS, BLOCKED_MIN_BATCH  # and the loss's
from clipsim.sweep.store import SweepError
from clipsim.sweep.table import chunk_frame
from clipsim.train.loop import STREAM_EVAL, train_program

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_CHUNK_WORK",
    "PROGRAMS",
    "TRAIN_EVALUATE",
    "RunOutput",
    "Program",
    "ChunkTask",
    "BatchOutput",
    "register_program",
    "get_program",
    "train_evaluate",
    "run_point",
    "stack_configs",
    "shared_leaves",
    "run_batch",
    "program_traces",
    "clear_programs",
    "output_names",
    "estimate_run_bytes",
    "estimate_run_parts",
    "RUNTIME_BYTES",
    "estimate_run_work",
    "group_points",
    "plan_chunks",
    "plan_layout",
    "ChunkLayout",
    "MemoryBudgetError",
    "check_memory_budget",
    "compute_chunk",
]

Array = jax.Array

DEFAULT_MEMORY_BUDGET: int = 2 * 2**30
"""Bytes one chunk may use by default (2 GiB)."""

DEFAULT_CHUNK_WORK: int = 2**23
"""Work (``estimate_run_work`` units: pair-steps) one chunk may hold by default.

A killed sweep loses at most the chunk in flight; at this size that is a few
tens of seconds of a 2-core CPU (about 16 runs of 2,000 steps at B = 256)."""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class RunOutput:
    """What a program returns for one run (or, stacked, for a batch of runs).

    Attributes:
        history: name -> (num_logs,) logged values; must hold ``step``.
        metrics: name -> a scalar, or a 1-D array of fixed length m (stored as the
            columns ``name[0]`` ... ``name[m-1]``).
        first_bad_step: first step whose training loss was non-finite, -1 if none.
    """

    history: dict[str, Array]
    metrics: dict[str, Array]
    first_bad_step: Array


@dataclass(frozen=True)
class Program:
    """A named pure function ``fn(cfg, key) -> RunOutput`` that the engine runs per point.

    Attributes:
        name: identifies the program in sweep specs and results folders (a folder
            written by one program is never resumed by another).
        fn: pure, ``jit``- and ``vmap``-able over the dynamic config fields; the key
            is the run key ``jax.random.key(cfg.seed)``.
        version: bump it when ``fn`` changes its numbers, so old folders are refused.
    """

    name: str
    fn: Callable[[RunConfig, Array], RunOutput]
    version: str = "1"

    @property
    def key(self) -> str:
        """``name`` with its version, as stored in a sweep spec (``name@version``)."""
        return self.name if self.version == "1" else f"{self.name}@{self.version}"


def train_evaluate(cfg: RunConfig, key: Array) -> RunOutput:
    """Train and evaluate one run; the default program.

    Args:
        cfg: the run config.
        key: the run key, ``jax.random.key(cfg.seed)`` in a sweep.

    Returns:
        The training history, ``evaluate_program`` metrics (without the host-only
        principal angles) and the first non-finite step: the same numbers as
        ``clipsim.train(cfg)`` followed by ``clipsim.evaluate(result)``.
    """
    out = train_program(cfg, key)
    metrics = evaluate_program(cfg, out.params, jax.random.fold_in(key, STREAM_EVAL))
    return RunOutput(history=out.history, metrics=metrics, first_bad_step=out.first_bad_step)


TRAIN_EVALUATE = Program("train_evaluate", train_evaluate)
PROGRAMS: dict[str, Program] = {TRAIN_EVALUATE.key: TRAIN_EVALUATE}
"""Programs a sweep spec can name (``program = "..."``); experiments add their own."""


def register_program(program: Program, *, replace: bool = False) -> Program:
    """Add ``program`` to ``PROGRAMS`` under ``program.key``.

    Args:
        program: the program.
        replace: allow replacing a registered program of the same key.

    Returns:
        ``program``.

    Raises:
        ValueError: the key is taken by another function and ``replace`` is False.
    """
    old = PROGRAMS.get(program.key)
    if old is not None and old.fn is not program.fn and not replace:
        raise ValueError(f"program {program.key!r} is already registered; pass replace=True "
                         "or bump its version")
    PROGRAMS[program.key] = program
    return program


def get_program(name: str) -> Program:
    """The registered program called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in PROGRAMS:
        raise KeyError(f"unknown program {name!r}; known: {', '.join(sorted(PROGRAMS))}")
    return PROGRAMS[name]


def run_point(cfg: RunConfig, key: Array) -> tuple[dict[str, Array], dict[str, Array], Array]:
    """``train_evaluate`` as a tuple ``(history, metrics, first_bad_step)``."""
    out = train_evaluate(cfg, key)
    return out.history, out.metrics, out.first_bad_step


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
        program: the program to run on every point.
        shared: per config leaf, whether it is equal across the whole group (passed
            unbatched); None to decide from the chunk's own configs.
        shared_key: whether every run of the chunk has the same seed (one key).
    """

    chunk_id: str
    sweep: str
    group: int
    points: tuple[int, ...]
    configs: tuple[dict, ...]
    pad_to: int
    program: Program = TRAIN_EVALUATE
    shared: tuple[bool, ...] | None = None
    shared_key: bool | None = None

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
        metrics: name -> (n,) metrics (vector metrics flattened to ``name[i]``).
        first_bad: (n,) first non-finite training step, -1 if none.
    """

    history: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    first_bad: np.ndarray


class _Compiled:
    """``jit(vmap(program.fn))`` for one (program, static signature, shared leaves)."""

    def __init__(self, program: Program, treedef: Any, axes: tuple[int | None, ...],
                 key_axis: int | None, size: int) -> None:
        self.traces = 0

        def sweep_chunk(leaves: list, keys: Array) -> RunOutput:
            self.traces += 1  # runs at trace time only: one per compilation
            return program.fn(treedef.unflatten(leaves), keys)

        self.fn = jax.jit(jax.vmap(sweep_chunk, in_axes=(list(axes), key_axis), axis_size=size))


_PROGRAMS: dict[Any, _Compiled] = {}


def program_traces(cfg: RunConfig, program: Program = TRAIN_EVALUATE) -> int:
    """How many times the batched programs of ``cfg``'s static group were traced (compiled).

    Args:
        cfg: any config of the group.
        program: the program (default ``train_evaluate``).

    Returns:
        The trace count over every chunk size and shared-leaf pattern (0 if the group
        never ran in this process); one per group when its chunks share a size and
        a pattern.
    """
    sig = static_signature(cfg)
    return sum(c.traces for k, c in _PROGRAMS.items() if k[0] == program.key and k[1] == sig)


def clear_programs() -> None:
    """Forget every cached batched program (the next run of each group recompiles)."""
    _PROGRAMS.clear()


_FLOAT_FIELDS = frozenset(name for name, t in FIELD_TYPES.items() if t is float)


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


def _flatten_metrics(metrics: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """(n,) metrics stay; (n, m) become ``name[0]`` ... ``name[m-1]``."""
    out: dict[str, np.ndarray] = {}
    for name, values in metrics.items():
        values = np.asarray(values)[:n]
        if values.ndim == 1:
            out[name] = values
        elif values.ndim == 2:
            out.update({f"{name}[{i}]": values[:, i] for i in range(values.shape[1])})
        else:
            raise ValueError(f"metric {name!r} has shape {values.shape[1:]} per run; a program "
                             "may return scalars or 1-D arrays only")
    return out


def shared_leaves(configs: Sequence[RunConfig]) -> tuple[bool, ...]:
    """Per config leaf (``jax.tree.leaves`` order), whether it is equal in every config.

    Args:
        configs: n >= 1 configs sharing a static signature.

    Returns:
        One bool per leaf.
    """
    per_run = [jax.tree.leaves(c) for c in configs]
    return tuple(all(leaves[i] == per_run[0][i] for leaves in per_run)
                 for i in range(len(per_run[0])))


def run_batch(configs: Sequence[RunConfig], *, pad_to: int | None = None,
              program: Program = TRAIN_EVALUATE, shared: Sequence[bool] | None = None,
              shared_key: bool | None = None) -> BatchOutput:
    """Run ``program`` on n configs of one static signature as one compiled batch.

    Config leaves (and run keys) equal across the batch are passed unbatched, so
    what depends on them alone is computed once (see the module docstring); the
    numbers are those of running each config on its own, to float rounding. It
    computes in the configs' ``train.dtype`` (``clipsim.config.precision``),
    whatever the process-wide x64 setting.

    Args:
        configs: n >= 1 configs sharing a static signature.
        pad_to: batch size to compile for (>= n); the last config is repeated to
            fill it and the padded outputs are dropped. Default n.
        program: what to run (default ``train_evaluate``).
        shared: which leaves to pass unbatched (each must be equal across
            ``configs``); default ``shared_leaves(configs)``. The planner passes the
            group's pattern so every chunk of a group compiles to one program.
        shared_key: pass one key for all runs (all seeds equal); default: whether
            the seeds are equal.

    Returns:
        ``BatchOutput`` for the n configs, in order.
    """
    configs = list(configs)
    n = len(configs)
    if n == 0:
        raise ValueError("run_batch: no configs")
    with precision(configs[0].train.dtype):
        return _run_batch(configs, pad_to=pad_to, program=program, shared=shared,
                          shared_key=shared_key)


def _run_batch(configs: list[RunConfig], *, pad_to: int | None, program: Program,
               shared: Sequence[bool] | None, shared_key: bool | None) -> BatchOutput:
    n = len(configs)
    sig = static_signature(configs[0])
    for cfg in configs[1:]:
        if static_signature(cfg) != sig:
            raise ValueError("run_batch: configs differ in static fields; group them first")
    size = n if pad_to is None else pad_to
    if size < n:
        raise ValueError(f"run_batch: pad_to = {pad_to} is smaller than the batch ({n})")
    padded = configs + [configs[-1]] * (size - n)
    stacked, treedef = jax.tree.flatten(stack_configs(padded))
    shared = shared_leaves(padded) if shared is None else tuple(shared)
    leaves = [a[0] if c else a for a, c in zip(stacked, shared, strict=True)]
    axes = tuple(None if c else 0 for c in shared)
    seeds = {int(c.seed) for c in padded}
    if shared_key is None:
        shared_key = len(seeds) == 1
    if shared_key and len(seeds) != 1:
        raise ValueError(f"run_batch: shared_key with {len(seeds)} different seeds")
    if shared_key:
        keys, key_axis = jax.random.key(seeds.pop()), None
    else:
        keys, key_axis = jnp.stack([jax.random.key(int(c.seed)) for c in padded]), 0
    cache_key = (program.key, sig, axes, key_axis, size)
    if cache_key not in _PROGRAMS:
        _PROGRAMS[cache_key] = _Compiled(program, treedef, axes, key_axis, size)
    out = jax.device_get(_PROGRAMS[cache_key].fn(leaves, keys))
    history = {k: np.asarray(v)[:n] for k, v in out.history.items()}
    return BatchOutput(history=history, metrics=_flatten_metrics(out.metrics, n),
                       first_bad=np.asarray(out.first_bad_step)[:n])


def output_names(cfg: RunConfig,
                 program: Program = TRAIN_EVALUATE) -> tuple[list[str], list[str]]:
    """Names of the history keys (``step`` excluded) and metric columns of ``cfg``.

    Uses ``jax.eval_shape`` (traces, does not compile or run).

    Args:
        cfg: a run config.
        program: the program (default ``train_evaluate``).

    Returns:
        ``(history_names, metric_names)``; a vector metric ``m`` of length k gives
        ``m[0]`` ... ``m[k-1]``.
    """
    out = jax.eval_shape(program.fn, cfg, jax.random.key(0))
    metrics: list[str] = []
    for name, shape in out.metrics.items():
        if shape.ndim == 0:
            metrics.append(name)
        elif shape.ndim == 1:
            metrics += [f"{name}[{i}]" for i in range(shape.shape[0])]
        else:
            raise ValueError(f"program {program.key!r}: metric {name!r} has shape "
                             f"{shape.shape}; scalars or 1-D arrays only")
    return [k for k in out.history if k != "step"], metrics


RUNTIME_BYTES: int = 16 * 2**20
"""Resident memory the first execution of any compiled program adds (16 MiB).

Thread stacks and the runtime's arenas: measured as 14 to 20 MiB above the
estimate of XLA's own buffers at every shape of ``benchmarks/memory_estimate.py``."""


def _score_items(cfg: RunConfig, b: int) -> int:
    """Entries the objective's score buffers hold for one batch of b pairs, with gradients.

    ``clip`` from ``BLOCKED_MIN_BATCH`` on: a few (B, ``BLOCK_ROWS``) slabs; every other
    objective: about five dense B x B matrices (scores, exponentials, their
    cotangents), as measured.
    """
    if cfg.objective.name == "clip" and b >= BLOCKED_MIN_BATCH:
        return 4 * b * BLOCK_ROWS
    return 5 * b * b


def estimate_run_parts(cfg: RunConfig) -> dict[str, int]:
    """Estimates of the memory one run's training and evaluation programs add, in bytes.

    A sum of buffers, in entries of ``train.dtype`` (4 or 8 bytes), plus
    ``RUNTIME_BYTES``; the coefficients were fitted to the peak resident memory each
    program adds (``python -m benchmarks.memory_estimate``: on a 2-core CPU the ratio of
    estimate to measured lies in [0.93, 1.26] on the 12 shapes fitted and in [0.95,
    1.53] on 5 others, float64 and an MLP among them). With P parameters, W the embedding (plus
    hidden) width, S = dx + dy + 2K + kx + ky + 1 the floats of one sample:

    * training: 4P (parameters, gradients, two optimizer moments), the data's
      mixing matrices, one batch B (S + 4W), the objective's score buffers
      (``_score_items``: 5 B^2, or 4 B x 256 for the blocked ``clip`` loss from
      B = 1024), and 3 n_b B S for a fixed training set of n_b batches;
    * evaluation (n = ``eval.num_samples`` test pairs and images): n (4.3 (dx + dy)
      + 2 (2K + kx + ky) + 2W + 2C) for samples, embeddings and class scores, the
      pairwise metrics' scores (4 n^2 below ``BLOCKED_MIN_ROWS`` = 1024 rows, else
      two slabs of ``block_rows(n, n)`` x n), and one test batch's score buffers.

    The two programs run one after the other, so a run needs the larger
    (``estimate_run_bytes``). Compilation memory is not included (once per chunk).

    Args:
        cfg: a run config (only static fields matter).

    Returns:
        ``{"train": bytes, "eval": bytes}``, ints.
    """
    d, m, t, e = cfg.data, cfg.model, cfg.train, cfg.eval
    item = 8 if t.dtype == "float64" else 4
    dx, dy, k, kx, ky, emb = (d.image_dim, d.text_dim, d.num_concepts, d.image_unique_dim,
                              d.text_unique_dim, m.embed_dim)
    classes = d.num_zero_shot_classes
    if m.kind == "linear":
        params, width = emb * (dx + dy), emb
    else:
        params, width = m.hidden_dim * (dx + dy) + 2 * emb * m.hidden_dim, m.hidden_dim + emb
    world = dx * dx + dy * dy + (dx + dy) * k + dx * kx + dy * ky + classes * k
    sample = dx + dy + 2 * k + kx + ky + 1
    b, n = t.batch_size, e.num_samples
    train = (4 * params + world + b * (sample + 4 * width) + _score_items(cfg, b)
             + 3 * (t.num_train_batches or 0) * b * sample)
    per_sample = (43 * (dx + dy)) // 10 + 2 * (2 * k + kx + ky) + 2 * width + 2 * classes
    if n < BLOCKED_MIN_ROWS:
        pairwise = 4 * n * n
    else:
        pairwise = 2 * block_rows(n, n) * n
    prompts = e.num_prompts * classes * (dy + width)
    evaluation = (params + world + n * per_sample + pairwise + prompts
                  + _score_items(cfg, min(b, n)))
    return {"train": item * train + RUNTIME_BYTES, "eval": item * evaluation + RUNTIME_BYTES}


def estimate_run_bytes(cfg: RunConfig) -> int:
    """An estimate of the memory one run of ``cfg`` needs, in bytes.

    The larger of the training and evaluation parts of ``estimate_run_parts`` (the
    two programs run one after the other inside a run).

    Args:
        cfg: a run config (only static fields matter).

    Returns:
        The estimate in bytes, an int.
    """
    parts = estimate_run_parts(cfg)
    return max(parts["train"], parts["eval"])


def estimate_run_work(cfg: RunConfig) -> int:
    """The work of one training run in pair-steps: ``train.steps * train.batch_size``.

    Used to bound a chunk (``DEFAULT_CHUNK_WORK``), so a kill loses a bounded
    amount of work whatever the sweep's size.

    Args:
        cfg: a run config.

    Returns:
        An int >= 1.
    """
    return max(1, cfg.train.steps * cfg.train.batch_size)


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


def _by_seed(points: Sequence[RunConfig], todo: list[int], cap: int) -> list[list[int]] | None:
    """Chunks of one seed each, if every seed has the same number (2 to cap) of points."""
    per_seed: dict[int, list[int]] = {}
    for i in todo:
        per_seed.setdefault(int(points[i].seed), []).append(i)
    sizes = {len(v) for v in per_seed.values()}
    if len(sizes) != 1 or not 2 <= sizes.pop() <= cap:
        return None
    return list(per_seed.values())


class MemoryBudgetError(SweepError):
    """One run of a static group needs more memory than the budget of a whole chunk."""


def check_memory_budget(points: Sequence[RunConfig], memory_budget: int = DEFAULT_MEMORY_BUDGET,
                        groups: Sequence[Sequence[int]] | None = None) -> None:
    """Refuse a plan whose chunks exceed ``memory_budget`` even at one run per chunk.

    Args:
        points: the sweep's points.
        memory_budget: bytes one chunk may use.
        groups: ``group_points(points)`` if already known.

    Raises:
        MemoryBudgetError: names the group, the estimate (``estimate_run_bytes``), the
            budget, and the knobs (``eval.num_samples``, ``train.batch_size``,
            ``--memory-budget``).
    """
    for g, members in enumerate(group_points(points) if groups is None else groups):
        cfg = points[members[0]]
        need = estimate_run_bytes(cfg)
        if need > memory_budget:
            parts = estimate_run_parts(cfg)
            raise MemoryBudgetError(
                f"static group {g} ({len(members)} points; train.batch_size = "
                f"{cfg.train.batch_size}, eval.num_samples = {cfg.eval.num_samples}) needs "
                f"about {need / 2**20:,.0f} MiB per run (training {parts['train'] / 2**20:,.0f}"
                f" MiB, evaluation {parts['eval'] / 2**20:,.0f} MiB; estimate_run_bytes), "
                f"above the memory budget of {memory_budget / 2**20:,.0f} MiB per chunk even "
                "at one run per chunk: lower eval.num_samples or train.batch_size, or raise "
                "--memory-budget (memory_budget=)")


@dataclass(frozen=True)
class ChunkLayout:
    """Where the planner puts points, without their configs (see ``plan_layout``).

    Attributes:
        group: index of the static group.
        points: indices of the chunk's points.
        pad_to: the group's chunk size.
        shared: per config leaf, whether it is equal across the group.
        shared_key: whether every run of the chunk has the same seed.
    """

    group: int
    points: tuple[int, ...]
    pad_to: int
    shared: tuple[bool, ...]
    shared_key: bool


def plan_layout(points: Sequence[RunConfig], pending: Sequence[int], *,
                max_batch: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                parallelism: int = 1, chunk_work: int = DEFAULT_CHUNK_WORK,
                groups: Sequence[Sequence[int]] | None = None) -> list[ChunkLayout]:
    """The chunks of ``plan_chunks`` as point indices only (no configs, no hashes).

    What ``--dry-run`` prints; ``plan_chunks`` turns each into a ``ChunkTask``.
    Arguments as in ``plan_chunks``; ``groups`` is ``group_points(points)`` if
    already known.

    Raises:
        MemoryBudgetError: a group's single run exceeds ``memory_budget``
            (``check_memory_budget``).
    """
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch = {max_batch} is invalid: must be >= 1")
    groups = group_points(points) if groups is None else groups
    check_memory_budget(points, memory_budget, groups)
    todo_set = set(pending)
    layout = []
    for g, members in enumerate(groups):
        todo = [i for i in members if i in todo_set]
        if not todo:
            continue
        first = points[todo[0]]
        if max_batch is not None:
            cap = max_batch
        else:
            # the runtime's own memory is paid once per chunk, the rest once per run
            per_run = max(1, estimate_run_bytes(first) - RUNTIME_BYTES)
            cap = max(1, (memory_budget - RUNTIME_BYTES) // per_run)
            cap = min(cap, max(1, chunk_work // estimate_run_work(first)))
            cap = min(cap, max(1, math.ceil(len(todo) / max(1, parallelism))))
        chunks = _by_seed(points, todo, cap)
        one_seed = chunks is not None or len({int(points[i].seed) for i in members}) == 1
        if chunks is None:
            n_chunks = math.ceil(len(todo) / cap)
            size = math.ceil(len(todo) / n_chunks)
            chunks = [todo[c * size:(c + 1) * size] for c in range(n_chunks)]
        pad = max(len(c) for c in chunks)
        shared = shared_leaves([points[i] for i in members])
        layout += [ChunkLayout(g, tuple(idx), pad, shared, one_seed) for idx in chunks]
    return layout


def plan_chunks(sweep: str, points: Sequence[RunConfig], pending: Sequence[int], *,
                max_batch: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                parallelism: int = 1, chunk_work: int = DEFAULT_CHUNK_WORK,
                program: Program = TRAIN_EVALUATE,
                groups: Sequence[Sequence[int]] | None = None) -> list[ChunkTask]:
    """Cut the pending points into equal-size chunks per static group.

    A chunk holds at most ``max_batch`` runs; without it, as many as the memory
    budget allows (``RUNTIME_BYTES`` once, then ``estimate_run_bytes`` less it per
    run), at most ``chunk_work`` pair-steps of training, and at most a
    ``1/parallelism`` share of the group. When every seed of the group has the
    same number (at least 2) of pending points and they fit one chunk, chunks are
    cut by seed, so the runs of a chunk share their initialization and training
    batches (drawn once for the chunk, see ``run_batch``). A group whose single
    run exceeds ``memory_budget`` is refused (``check_memory_budget``).

    Args:
        sweep: the sweep name.
        points: all points of the sweep.
        pending: indices of the points still to run.
        max_batch: at most this many runs per chunk; default from the budgets.
        memory_budget: bytes per chunk used with ``estimate_run_bytes``.
        parallelism: workers available; a group is split into at least this many
            chunks (when it has enough points).
        chunk_work: pair-steps per chunk (``estimate_run_work``), bounding what a
            kill can lose.
        program: the program every chunk runs.
        groups: ``group_points(points)`` if already known.

    Returns:
        Chunk tasks, groups in order; within a group all chunks share ``pad_to``.

    Raises:
        MemoryBudgetError: one run of a group exceeds ``memory_budget``.
    """
    hash_of = getattr(points, "hash", None)  # SweepPoints knows its hashes
    if not callable(hash_of):
        hash_of = lambda i: points[i].hash()  # noqa: E731
    tasks = []
    for c in plan_layout(points, pending, max_batch=max_batch, memory_budget=memory_budget,
                         parallelism=parallelism, chunk_work=chunk_work, groups=groups):
        tasks.append(ChunkTask(
            chunk_id=_chunk_id(c.group, [hash_of(i) for i in c.points]), sweep=sweep,
            group=c.group, points=c.points,
            configs=tuple(points[i].to_dict() for i in c.points), pad_to=c.pad_to,
            program=program, shared=c.shared, shared_key=c.shared_key))
    return tasks


def compute_chunk(task: ChunkTask) -> pd.DataFrame:
    """Run a chunk and return its rows; no files touched (so any backend can call it).

    Args:
        task: the chunk.

    Returns:
        The chunk's rows (``clipsim.sweep.table.chunk_frame``).
    """
    configs = task.run_configs()
    out = run_batch(configs, pad_to=task.pad_to, program=task.program, shared=task.shared,
                    shared_key=task.shared_key)
    return chunk_frame(task.sweep, task.points, configs, out.history, out.metrics,
                       out.first_bad)
