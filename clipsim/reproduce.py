"""``clipsim reproduce``: run the experiment scripts and write a report.

Each prediction of THEORY.md section 6 has one script ``experiments/<name>.py``
with ``main(quick=False, out=...)`` that writes ``<name>.png`` and
``<name>.json`` (numbers, criterion, verdict, configs, versions, run time) and
returns the JSON record. This module finds the scripts, runs the requested ones
and writes ``report.md``: a table of prediction, criterion, verdict and key
numbers, followed by every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from clipsim.cli import COMMANDS, UsageError

__all__ = ["EXPERIMENTS", "experiments_dir", "load_experiment", "run_experiments", "write_report"]

EXPERIMENTS: tuple[str, ...] = (
    "margin_vs_temperature",
    "alignment_unique_features",
    "square_loss_zero_shot",
    "positive_regularizer",
    "generalization_batches",
    "loss_floor",
    "zero_shot_top_r",
    "batch_size",
    "three_modalities",
)
"""Experiment names in report order (P1 to P8, then the extension)."""


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder (next to the ``clipsim`` package)."""
    return Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str) -> ModuleType:
    """Import ``experiments/<name>.py`` as a module.

    Raises:
        UsageError: unknown name, or the script is missing.
    """
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}, all")
    path = experiments_dir() / f"{name}.py"
    if not path.is_file():
        raise UsageError(f"experiment script {path} is missing")
    spec = importlib.util.spec_from_file_location(f"clipsim_experiments.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_experiments(names: list[str], *, out: Path, quick: bool,
                    quiet: bool = False) -> list[dict[str, Any]]:
    """Run the named experiments into ``out`` and write ``out/report.md``.

    Returns:
        The JSON records, in the order run.
    """
    modules = [load_experiment(n) for n in names]  # fail on a bad name before running any
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name, module in zip(names, modules, strict=True):
        if not quiet:
            print(f"[{name}] running ({'quick' if quick else 'full'})", flush=True)
        start = time.perf_counter()
        record = module.main(quick=quick, out=out, quiet=quiet)
        if not quiet:
            print(f"[{name}] {record['verdict']} in {time.perf_counter() - start:.0f} s",
                  flush=True)
        records.append(record)
    write_report(records, out, quick=quick)
    return records


def _key_numbers(record: dict[str, Any]) -> str:
    items = list(record.get("key_numbers", {}).items())[:4]
    return "; ".join(f"{k} = {_fmt(v)}" for k, v in items)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_report(records: list[dict[str, Any]], out: Path, *, quick: bool) -> Path:
    """Write ``out/report.md``: the verdict table and every figure."""
    lines = [
        "# clipsim reproduction report",
        "",
        f"Mode: {'quick (smoke-test sizes; verdicts are not evidence)' if quick else 'full'}.",
        "",
        "| prediction | experiment | criterion | verdict | key numbers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(f"| {r['prediction']} | `{r['name']}` | {r['criterion']} | "
                     f"**{r['verdict']}** | {_key_numbers(r)} |")
    lines.append("")
    for r in records:
        lines += [f"## {r['prediction']}: {r['title']}", "", r.get("summary", ""), "",
                  f"![{r['name']}]({r['name']}.png)", "",
                  f"Seeds: {r['seeds']}; run time {r['runtime_s']:.0f} s.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help=f"an experiment ({', '.join(EXPERIMENTS)}) or 'all'")
    p.add_argument("--out", required=True, help="output folder for figures, JSON and report.md")
    p.add_argument("--quick", action="store_true", help="smoke-test sizes (seconds per experiment)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _run(args: argparse.Namespace) -> int:
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    records = run_experiments(names, out=Path(args.out), quick=args.quick, quiet=args.quiet)
    if not args.quiet:
        width = max(len(r["name"]) for r in records)
        for r in records:
            print(f"{r['prediction']:<4} {r['name']:<{width}}  {r['verdict']}")
        print(f"\nwrote {Path(args.out) / 'report.md'}")
    return 0


COMMANDS["reproduce"] = ("run the paper-reproduction experiments and write a report",
                         _args, _run)

# JSON helpers shared by the experiment scripts ---------------------------------


def dumps(record: dict[str, Any]) -> str:
    """JSON text of a record; NumPy scalars and arrays become plain numbers and lists."""
    import numpy as np

    def default(value: Any) -> Any:
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(f"not JSON serializable: {type(value).__name__}")

    return json.dumps(record, indent=2, default=default, allow_nan=True)
