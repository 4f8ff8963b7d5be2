"""``clipsim sweep SPEC --out DIR``: run a sweep file into a results folder (resumable)."""

from __future__ import annotations

import argparse
import re
import time

from clipsim.cli._common import UsageError, resolve_file, shipped_names

__all__ = ["HELP", "add_arguments", "run", "parse_size"]

HELP = "run a parameter sweep into a results folder (resumable)"

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim sweep``."""
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


def run(args: argparse.Namespace) -> int:
    """Validate the spec, then plan (``--dry-run``) or run it into ``--out``."""
    import jax

    from clipsim.sweep.engine import estimate_run_bytes, group_points, plan_chunks
    from clipsim.sweep.spec import SweepSpec

    spec = SweepSpec.from_toml(resolve_file(args.spec, "sweeps"))
    points = spec.points()  # validates every point before anything runs
    budget = parse_size(args.memory_budget)
    if args.scheduler is not None and args.backend != "dask":
        raise UsageError("--scheduler needs --backend dask")
    if any(p.train.dtype == "float64" for p in points):
        jax.config.update("jax_enable_x64", True)
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
