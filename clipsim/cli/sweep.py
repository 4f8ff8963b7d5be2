"""``clipsim sweep``: run a sweep file into a results folder (resumable), and read the folder.

    clipsim sweep SPEC --out DIR [--set FIELD=VALUE]     (the same as ``sweep run``)
    clipsim sweep status DIR                             done / remaining / failed, time
    clipsim sweep summary DIR --by FIELD [FIELD ...]     the ``clipsim.summarize`` table
    clipsim sweep plot DIR --x FIELD --y METRIC [--hue FIELD]   a PNG with seed bands
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from clipsim.cli._common import (
    UsageError,
    add_set_argument,
    parse_overrides,
    resolve_file,
    shipped_names,
)

__all__ = ["HELP", "ACTIONS", "DEFAULT_ACTION", "add_arguments", "run", "parse_size"]

HELP = "run a parameter sweep (resumable); show its status, summary or plot"

ACTIONS = ("run", "status", "summary", "plot")
DEFAULT_ACTION = "run"
"""``clipsim sweep SPEC ...`` means ``clipsim sweep run SPEC ...``."""

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
          "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30}


def parse_size(text: str) -> int:
    """Parse a memory size.

    Args:
        text: ``"2GiB"``, ``"512MB"``, ``"64 mib"``, ``"1e9"`` or plain bytes.

    Returns:
        The size in bytes.

    Raises:
        UsageError: not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise UsageError(f"--memory-budget {text!r} is invalid: use e.g. 2GiB, 512MB or bytes")
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    except ValueError:
        raise UsageError(f"--memory-budget {text!r} is invalid: use e.g. 2GiB") from None
    if value < 1:
        raise UsageError(f"--memory-budget {text!r} is invalid: must be positive")
    return int(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim sweep`` and its actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    _run_arguments(actions.add_parser(
        "run", help="run a sweep file into a results folder (the default action: "
                    "'clipsim sweep SPEC --out DIR')"))
    status = actions.add_parser("status", help="done, remaining and failed runs; time so far "
                                               "and an estimate of the rest")
    status.add_argument("dir", help="a sweep results folder")
    summary = actions.add_parser("summary", help="mean, standard error and 95%% interval of "
                                                 "metrics across seeds (clipsim.summarize)")
    summary.add_argument("dir", help="a sweep results folder")
    summary.add_argument("--by", nargs="+", required=True, metavar="FIELD",
                         help="column(s) to group by, e.g. objective.temperature")
    summary.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                         help="metric column(s) (default: every metric)")
    plot = actions.add_parser("plot", help="a metric against a field, one line per --hue "
                                           "value, with a +-1 standard-error band over seeds")
    plot.add_argument("dir", help="a sweep results folder")
    plot.add_argument("--x", required=True, metavar="FIELD", help="x axis (a column, or step)")
    plot.add_argument("--y", required=True, metavar="METRIC", help="metric on the y axis")
    plot.add_argument("--hue", default=None, metavar="FIELD", help="one line per value")
    plot.add_argument("--logx", action="store_true", help="log-scale x axis")
    plot.add_argument("--out", default=None, metavar="PNG",
                      help="figure path (default DIR/<METRIC>_vs_<FIELD>.png)")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep file (.toml): base config, grid, zip groups, seeds; or "
                                f"the name of a shipped sweep ({shipped_names('sweeps')})")
    p.add_argument("--out", required=True,
                   help="results folder (manifest.json, results/part-*.parquet); rerun the "
                        "same command to resume")
    p.add_argument("--backend", choices=("local", "dask"), default="local",
                   help="where chunks run (default: local)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="dask scheduler address, e.g. tcp://host:8786 (default: start a "
                        "2-worker LocalCluster)")
    p.add_argument("--max-batch", type=_positive_int, default=None, metavar="N",
                   help="at most N runs per compiled batch (default: from --memory-budget)")
    p.add_argument("--memory-budget", default="2GiB", metavar="SIZE",
                   help="memory per batch for the automatic batch size (default: 2GiB)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--no-cache", action="store_true",
                   help="do not use the persistent compilation cache "
                        "($CLIPSIM_CACHE_DIR or ~/.cache/clipsim/jax)")
    p.add_argument("--max-points", type=_positive_int, default=None, metavar="N",
                   help="refuse a spec of more than N points (default: 200,000)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec, read --out and print the plan: runs done and to "
                        "do, groups, chunks, memory per run, estimated time; run nothing")
    add_set_argument(p)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    return {"run": _run, "status": _status, "summary": _summary, "plot": _plot}[args.action](args)


def _with_overrides(spec, items: list[str]):
    """``spec`` with ``--set`` overrides applied to its base config."""
    import dataclasses

    values = parse_overrides(items)
    if not values:
        return spec
    swept = sorted(set(values) & set(spec.swept_fields))
    if swept:
        raise UsageError(f"--set {swept[0]}: the field is swept by the spec; change the spec "
                         "instead")
    return dataclasses.replace(spec, base=spec.base.replace(**values))


def _run(args: argparse.Namespace) -> int:
    """Validate the spec, then plan (``--dry-run``) or run it into ``--out``."""
    from clipsim.sweep.engine import check_memory_budget
    from clipsim.sweep.spec import SweepSpec

    spec = _with_overrides(SweepSpec.from_toml(resolve_file(args.spec, "sweeps")), args.set)
    points = spec.points(max_points=args.max_points)  # validates every point
    budget = parse_size(args.memory_budget)
    if args.scheduler is not None and args.backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    if args.dry_run:
        _dry_run(spec, points, args, budget)
        return 0
    check_memory_budget(points, budget, points.groups())
    if not args.no_cache:
        from clipsim.sweep.cache import enable_compilation_cache

        enable_compilation_cache()
    from clipsim.sweep.runner import run as run_sweep

    start = time.perf_counter()
    try:
        df = run_sweep(spec, out=args.out, backend=args.backend, scheduler=args.scheduler,
                       max_batch=args.max_batch, memory_budget=budget, quiet=args.quiet,
                       max_points=args.max_points)
    except ImportError as err:  # the dask extra is missing
        raise UsageError(str(err)) from None
    if not args.quiet:
        final = df[df["final"]]
        bad = int((final["nonfinite_step"] >= 0).sum())
        print(f"sweep {spec.name!r}: {len(final)} of {len(points)} runs, {len(df)} rows in "
              f"{args.out}/results ({time.perf_counter() - start:.1f} s)"
              + (f"; {bad} run(s) went non-finite (column nonfinite_step)" if bad else ""))
        other = int(df.attrs.get("other_runs", 0))
        if other:
            print(f"the folder also keeps {other} run(s) of earlier specs that this one does "
                  "not contain (clipsim.sweep.load returns them too)")
        print(f"read it with clipsim.sweep.load({str(args.out)!r})")
    return 0


def _rates(manifest: dict) -> tuple[float | None, float | None, int]:
    """Seconds per unit of work and per run over the folder's sessions that ran points.

    Returns:
        ``(seconds per pair-step or None, seconds per run or None, sessions used)``;
        a session's time runs from its start to its last written part (so killed
        sessions count too); pair-steps are ``estimate_run_work`` units.
    """
    spent = work = runs = 0.0
    used = 0
    all_work = True
    for session in manifest.get("sessions", []):
        ran = int(session.get("points_run") or 0)
        end = session.get("finished") or session.get("updated")
        if ran <= 0 or not end:
            continue
        used += 1
        spent += _seconds(session.get("started"), end)
        runs += ran
        all_work &= int(session.get("work_run") or 0) > 0
        work += int(session.get("work_run") or 0)
    if not used:
        return None, None, 0
    return (spent / work if all_work and work else None), spent / runs, used


def _dry_run(spec, points, args: argparse.Namespace, budget: int) -> None:
    """Print what ``clipsim sweep SPEC --out DIR`` would do; write nothing."""
    from clipsim.sweep.engine import estimate_run_parts, estimate_run_work, plan_layout
    from clipsim.sweep.store import ResultsStore

    groups = points.groups()
    store = ResultsStore(args.out)
    manifest = store.check(spec)  # the folder must accept this spec (name, program)
    done = store.finished_hashes() if manifest is not None else set()
    pending = [i for i, h in enumerate(points.hashes) if h not in done]
    layout = plan_layout(points, pending, max_batch=args.max_batch, memory_budget=budget,
                         groups=groups)
    print(f"sweep {spec.name!r} (spec hash {spec.hash()}): {len(points)} points, "
          f"{len(groups)} static group(s), {len(layout)} chunk(s) to run")
    print(f"swept: {', '.join(spec.swept_fields) or '(nothing)'}")
    if manifest is None:
        print(f"folder {args.out}: new; all {len(points)} runs to do")
    else:
        have = len(points) - len(pending)
        other = len(done) - have
        print(f"folder {args.out}: {have} of {len(points)} runs done, {len(pending)} to do"
              + (f" ({other} run(s) of earlier specs kept)" if other > 0 else ""))
    todo_set = set(pending)
    for g, members in enumerate(groups):
        chunks = [c for c in layout if c.group == g]
        cfg = points[members[0]]
        parts = estimate_run_parts(cfg)
        todo = sum(1 for i in members if i in todo_set)
        print(f"  group {g}: {len(members)} points ({todo} to do), {len(chunks)} chunk(s) of "
              f"{chunks[0].pad_to if chunks else 0}, ~{max(parts.values()) / 2**20:.1f} MiB "
              f"per run (training {parts['train'] / 2**20:.1f}, evaluation "
              f"{parts['eval'] / 2**20:.1f}; {cfg.objective.name}, {cfg.model.kind}, "
              f"B={cfg.train.batch_size}, steps={cfg.train.steps}, "
              f"n_eval={cfg.eval.num_samples})")
    per_work, per_run, used = _rates(manifest or {})
    if not pending:
        print("estimated time: 0 s (nothing to do)")
    elif per_work is not None:
        work = sum(estimate_run_work(points[i]) for i in pending)
        print(f"estimated time: ~{_duration(per_work * work)} (from {used} recorded "
              f"session(s) of this folder, {per_work * 1e6:.2f} s per 10^6 pair-steps)")
    elif per_run is not None:
        print(f"estimated time: ~{_duration(per_run * len(pending))} (from {used} recorded "
              f"session(s) of this folder, {per_run:.2f} s per run)")
    else:
        print("estimated time: unknown (no recorded session in the folder yet)")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _load(folder: str):
    from clipsim.sweep import load

    if not Path(folder).is_dir():
        raise UsageError(f"{folder!r} is not a folder")
    return load(folder)


def _seconds(start: str | None, end: str | None) -> float:
    from datetime import datetime

    if not start or not end:
        return 0.0
    return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())


def _status(args: argparse.Namespace) -> int:
    """Print done / remaining / failed runs, time so far and an estimate for the rest."""
    df = _load(args.dir)
    manifest = df.attrs.get("manifest", {})
    final = df[df["final"]] if len(df) else df
    total = int(manifest.get("num_points", len(final)))
    other = int(final["config_hash"].nunique()) if len(final) else 0
    final = final[final["point"] < total] if len(final) else final  # the latest spec's runs
    other -= int(final["config_hash"].nunique()) if len(final) else 0
    done = int(final["config_hash"].nunique()) if len(final) else 0
    failed = int((final["nonfinite_step"] >= 0).sum()) if len(final) else 0
    sessions = manifest.get("sessions", [])
    spent = sum(_seconds(s.get("started"), s.get("finished") or s.get("updated"))
                for s in sessions)
    _, per_run, _ = _rates(manifest)
    print(f"sweep {manifest.get('name', '?')!r} in {args.dir}: {done} of {total} runs done, "
          f"{total - done} remaining, {failed} failed (non-finite loss)"
          + (f"; {other} run(s) of earlier specs kept" if other else ""))
    state = "finished" if manifest.get("finished") else "not finished"
    line = f"{state}; {len(sessions)} session(s), {spent:.0f} s of recorded run time"
    if total > done and per_run is not None:
        line += (f"; about {_duration(per_run * (total - done))} to go at {per_run:.2f} "
                 "s/run")
    print(line)
    return 0


def _summary(args: argparse.Namespace) -> int:
    """Print the ``clipsim.summarize`` table of the folder."""
    from clipsim.sweep.summary import summarize

    df = _load(args.dir)
    for name in [*args.by, *(args.metrics or [])]:
        if name not in df.columns:
            raise UsageError(f"{name!r} is not a column of {args.dir}'s table")
    print(summarize(df, by=args.by, metrics=args.metrics).to_string(index=False))
    return 0


def _plot(args: argparse.Namespace) -> int:
    """Draw ``--y`` against ``--x`` (per ``--hue``) with seed bands into a PNG."""
    from clipsim.plots import plot_metric

    df = _load(args.dir)
    for name in (args.x, args.y, args.hue):
        if name is not None and name not in df.columns:
            raise UsageError(f"{name!r} is not a column of {args.dir}'s table")
    out = Path(args.out) if args.out else Path(args.dir) / f"{args.y}_vs_{args.x}.png"
    plot_metric(df, args.x, args.y, hue=args.hue, logx=args.logx, path=out,
                title=df.attrs.get("manifest", {}).get("name"))
    print(f"wrote {out}")
    return 0
