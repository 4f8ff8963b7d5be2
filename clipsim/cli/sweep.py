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
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec and print the plan (groups, chunks); run nothing")
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
    from clipsim.sweep.engine import estimate_run_bytes, group_points, plan_chunks
    from clipsim.sweep.spec import SweepSpec

    spec = _with_overrides(SweepSpec.from_toml(resolve_file(args.spec, "sweeps")), args.set)
    points = spec.points()  # validates every point before anything runs
    budget = parse_size(args.memory_budget)
    if args.scheduler is not None and args.backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    if args.dry_run:
        _print_plan(spec, points, plan_chunks(spec.name, points, range(len(points)),
                                              max_batch=args.max_batch, memory_budget=budget),
                    group_points(points), estimate_run_bytes)
        return 0
    if not args.no_cache:
        from clipsim.sweep.cache import enable_compilation_cache

        enable_compilation_cache()
    from clipsim.sweep.runner import run as run_sweep

    start = time.perf_counter()
    try:
        df = run_sweep(spec, out=args.out, backend=args.backend, scheduler=args.scheduler,
                       max_batch=args.max_batch, memory_budget=budget, quiet=args.quiet)
    except ImportError as err:  # the dask extra is missing
        raise UsageError(str(err)) from None
    if not args.quiet:
        final = df[df["final"]]
        bad = int((final["nonfinite_step"] >= 0).sum())
        print(f"sweep {spec.name!r}: {len(final)} of {len(points)} runs, {len(df)} rows in "
              f"{args.out}/results ({time.perf_counter() - start:.1f} s)"
              + (f"; {bad} run(s) went non-finite (column nonfinite_step)" if bad else ""))
        print(f"read it with clipsim.sweep.load({str(args.out)!r})")
    return 0


def _print_plan(spec, points, tasks, groups, estimate) -> None:
    print(f"sweep {spec.name!r} (spec hash {spec.hash()}): {len(points)} points, "
          f"{len(groups)} static group(s), {len(tasks)} chunk(s)")
    print(f"swept: {', '.join(spec.swept_fields) or '(nothing)'}")
    for g, members in enumerate(groups):
        chunks = [t for t in tasks if t.group == g]
        cfg = points[members[0]]
        print(f"  group {g}: {len(members)} points, {len(chunks)} chunk(s) of "
              f"{chunks[0].pad_to if chunks else 0}, ~{estimate(cfg) / 2**20:.1f} MiB per run "
              f"({cfg.objective.name}, {cfg.model.kind}, B={cfg.train.batch_size}, "
              f"steps={cfg.train.steps})")


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
    done = int(final["config_hash"].nunique()) if len(final) else 0
    failed = int((final["nonfinite_step"] >= 0).sum()) if len(final) else 0
    sessions = manifest.get("sessions", [])
    spent = sum(_seconds(s.get("started"), s.get("finished")) for s in sessions)
    ran = sum(int(s.get("points_run") or 0) for s in sessions)
    print(f"sweep {manifest.get('name', '?')!r} in {args.dir}: {done} of {total} runs done, "
          f"{total - done} remaining, {failed} failed (non-finite loss)")
    state = "finished" if manifest.get("finished") else "not finished"
    line = f"{state}; {len(sessions)} session(s), {spent:.0f} s of recorded run time"
    if total > done and ran:
        line += f"; about {spent / ran * (total - done):.0f} s to go at {spent / ran:.2f} s/run"
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
