"""``run``: spec -> validated points -> memory check -> chunks -> backend -> store -> table."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from clipsim.config import RunConfig
from clipsim.sweep.backends import Backend, make_backend
from clipsim.sweep.engine import (
    DEFAULT_MEMORY_BUDGET,
    TRAIN_EVALUATE,
    Program,
    check_memory_budget,
    compute_chunk,
    estimate_run_work,
    get_program,
    group_points,
    output_names,
    plan_chunks,
)
from clipsim.sweep.spec import SpecError, SweepSpec, as_spec
from clipsim.sweep.store import ResultsStore
from clipsim.train import DegenerateRunWarning, degenerate_reason

__all__ = ["NonFiniteRunWarning", "run", "metric_columns"]


class NonFiniteRunWarning(RuntimeWarning):
    """A sweep point's training loss went NaN/inf; its rows carry ``nonfinite_step``."""


def metric_columns(points: Sequence[RunConfig], program: Program = TRAIN_EVALUATE,
                   groups: Sequence[Sequence[int]] | None = None) -> list[str]:
    """Metric columns of the table, over all static groups.

    Args:
        points: the sweep's points.
        program: the program the points run.
        groups: ``group_points(points)`` if already known.

    Returns:
        History keys, then evaluation metrics (names in first-seen order, no repeats).
    """
    names: dict[str, None] = {}
    evals: dict[str, None] = {}
    for members in group_points(points) if groups is None else groups:
        hist, metrics = output_names(points[members[0]], program)
        names.update(dict.fromkeys(hist))
        evals.update(dict.fromkeys(metrics))
    return [*names, *(m for m in evals if m not in names)]


def _warn_degenerate(spec: SweepSpec, points: Sequence[RunConfig], frame: pd.DataFrame) -> None:
    if "loss" not in frame:
        return
    for p, rows in frame.groupby("point", sort=True):
        reason = degenerate_reason({"loss": rows["loss"].to_numpy()})
        if reason is not None and int(rows["nonfinite_step"].iloc[0]) < 0:
            warnings.warn(f"sweep {spec.name!r}: point {int(p)} (config "
                          f"{points[int(p)].hash()}) is degenerate: {reason}",
                          DegenerateRunWarning, stacklevel=3)


def _warn_nonfinite(spec: SweepSpec, points: Sequence[RunConfig], frame: pd.DataFrame) -> int:
    _warn_degenerate(spec, points, frame)
    bad = frame[frame["final"] & (frame["nonfinite_step"] >= 0)]
    for p, step in zip(bad["point"], bad["nonfinite_step"], strict=True):
        cfg = points[int(p)]
        swept = ", ".join(f"{k}={v!r}" for k, v in spec.describe(cfg).items())
        warnings.warn(
            f"sweep {spec.name!r}: point {int(p)} (config {cfg.hash()}; {swept}) had a "
            f"non-finite training loss at step {int(step)}; its rows carry "
            f"nonfinite_step = {int(step)} and the sweep continues",
            NonFiniteRunWarning, stacklevel=3)
    return len(bad)


def run(spec: SweepSpec | str | Path | Mapping[str, Any], *, out: str | Path,
        backend: str | Backend = "local", scheduler: str | None = None,
        max_batch: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
        program: Program | None = None, quiet: bool = False,
        max_points: int | None = None) -> pd.DataFrame:
    """Run a sweep into a results folder and return its table.

    Every point is validated, and the plan checked against ``memory_budget``,
    before anything is written. Runs already in ``out`` are skipped: those of an
    earlier (possibly killed) run of the same spec, and those of any earlier spec of
    the same name and program that this one contains (more seeds, more grid values,
    another chain link: only the new runs are computed; see ``clipsim.sweep.store``).

    Progress: a bar in runs (done / total, with an ETA) that advances as each chunk
    finishes, with the chunk count; chunks are bounded by ``DEFAULT_CHUNK_WORK``, a
    few tens of seconds each on a 2-core CPU.

    Args:
        spec: a ``SweepSpec``, a TOML path or text, or a dict.
        out: results folder (see ``clipsim.sweep.store``).
        backend: ``"local"`` (this process), ``"dask"`` or a backend object.
        scheduler: dask scheduler address; None with ``"dask"`` starts a 2-worker
            ``LocalCluster`` for the run.
        max_batch: at most this many runs per compiled batch; default from
            ``memory_budget``.
        memory_budget: bytes per batch for the estimate (default 2 GiB); a group
            whose single run exceeds it is refused (``MemoryBudgetError``).
        program: what every point runs; default the spec's ``program`` looked up in
            ``clipsim.sweep.PROGRAMS`` (``train_evaluate``). A program given here is
            recorded in the spec (so its folder is never resumed by another program).
        quiet: no progress bar.
        max_points: refuse a spec of more points (default
            ``clipsim.sweep.spec.MAX_POINTS``).

    Returns:
        The table of exactly this spec's points: one row per (run, logged step),
        ``point`` the index in ``spec.points()``; see ``clipsim.sweep.table``.
        ``attrs["other_runs"]`` counts the folder's runs outside this spec (kept on
        disk; ``clipsim.sweep.load(out)`` returns them too).

    Raises:
        SpecError: the spec or one of its points is invalid (nothing written).
        MemoryBudgetError: one run needs more than ``memory_budget`` (nothing written).
        StoreMismatchError: ``out`` holds another sweep, program or metric schema.

    Example:
        >>> df = clipsim.sweep.run("experiments/sweeps/quick_tau.toml",
        ...                        out="runs/quick_tau")          # doctest: +SKIP
    """
    spec = as_spec(spec)
    if program is None:
        try:
            program = get_program(spec.program)
        except KeyError as err:
            raise SpecError(f"program: {err.args[0]}") from None
    elif spec.program != program.key:
        spec = dataclasses.replace(spec, program=program.key)
    points = spec.points(max_points=max_points)
    if max_batch is not None and max_batch < 1:
        raise SpecError(f"max_batch = {max_batch} is invalid: must be >= 1")
    groups = points.groups()
    check_memory_budget(points, memory_budget, groups)
    backend_obj = make_backend(backend, scheduler=scheduler)
    store = ResultsStore(out)
    manifest = store.check(spec)
    known = {s.get("spec_hash") for s in (manifest or {}).get("specs", ())}
    known.add((manifest or {}).get("spec_hash"))
    new_spec = manifest is not None and spec.hash() not in known
    if manifest is None or new_spec:
        metrics = metric_columns(points, program, groups)
    else:
        metrics = manifest["metrics"]
    store.open(spec, num_points=len(points), metrics=metrics, backend=backend_obj.name,
               check_metrics=new_spec)
    done = store.finished_hashes()
    pending = [i for i, h in enumerate(points.hashes) if h not in done]
    points_run, complete = 0, False
    bar = tqdm(total=len(points), initial=len(points) - len(pending), unit="run",
               desc=f"sweep {spec.name}", disable=quiet, dynamic_ncols=True)
    try:
        if pending:
            with backend_obj as active:
                tasks = plan_chunks(spec.name, points, pending, max_batch=max_batch,
                                    memory_budget=memory_budget, parallelism=active.parallelism,
                                    program=program, groups=groups)
                bar.set_postfix_str(f"chunks 0/{len(tasks)}")
                for k, (task, frame) in enumerate(active.map_chunks(compute_chunk, tasks), 1):
                    work = sum(estimate_run_work(points[i]) for i in task.points)
                    store.write_part(task.chunk_id, frame, work=work)
                    points_run += len(task.points)
                    bar.update(len(task.points))
                    bar.set_postfix_str(f"chunks {k}/{len(tasks)}")
                    _warn_nonfinite(spec, points, frame)
        complete = True
    finally:
        bar.close()
        store.close(points_run=points_run, complete=complete)
    table = store.read(points=points)
    table.attrs["other_runs"] = max(0, len(done) - (len(points) - len(pending)))
    return table
