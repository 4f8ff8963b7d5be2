"""Reproductions: find the experiment modules, run them, write ``report.md``.

Each prediction has one module ``experiments/<name>.py`` with
``main(quick=False, out=...)`` that writes ``<name>.png`` and ``<name>.json``
(numbers, criterion, verdict, configs, versions, run time) and returns the JSON
record. The ``experiments/`` folder is installed as the package
``clipsim_experiments``, together with its ready-made run configs
(``configs/*.toml``) and sweep files (``sweeps/*.toml``), so an installed wheel
runs its own reproductions. This module imports the experiments by name, runs the
requested ones and writes ``report.md``: a table of prediction, criterion,
verdict and key numbers, followed by every figure. ``clipsim reproduce`` is its
command line.
"""

from __future__ import annotations

import importlib
import time
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from clipsim.io import write_atomic

__all__ = ["EXPERIMENTS", "EXPERIMENTS_PACKAGE", "ExperimentError", "experiments_dir",
           "load_experiment", "run_experiments", "write_report", "shipped_files", "shipped_file"]

EXPERIMENTS_PACKAGE = "clipsim_experiments"
"""The installed name of the top-level ``experiments/`` folder."""

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
    "spectral_optimum",
    "captions_per_image",
    "completeness_chain",
)
"""Experiment names in report order (P1 to P8, then the extension)."""

SHIPPED_KINDS: tuple[str, ...] = ("configs", "sweeps")


class ExperimentError(ValueError):
    """An unknown experiment or a missing shipped file (one-line message)."""


def experiments_dir() -> Path:
    """The folder of the installed experiments package (``experiments/`` in a source tree).

    Returns:
        The package folder.

    Raises:
        ExperimentError: the package is not installed (reinstall clipsim).
    """
    try:
        return Path(str(resources.files(EXPERIMENTS_PACKAGE)))
    except ModuleNotFoundError:
        raise ExperimentError(f"the experiments package {EXPERIMENTS_PACKAGE!r} is not "
                              "installed; reinstall clipsim (pip install -e .)") from None


def load_experiment(name: str) -> ModuleType:
    """Import the experiment module ``clipsim_experiments.<name>``.

    Args:
        name: one of ``EXPERIMENTS``.

    Returns:
        The imported module (its ``main(quick=..., out=..., quiet=...)`` runs it).

    Raises:
        ExperimentError: unknown name, or the experiments package is not installed.
    """
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}, all")
    experiments_dir()  # a clear error when the package is missing
    return importlib.import_module(f"{EXPERIMENTS_PACKAGE}.{name}")


def shipped_files(kind: str) -> dict[str, Path]:
    """The ready-made files shipped with the experiments.

    Args:
        kind: ``"configs"`` (run configs) or ``"sweeps"`` (sweep files).

    Returns:
        Name (file stem) -> path of each ``<kind>/*.toml``, sorted by name.
    """
    if kind not in SHIPPED_KINDS:
        raise ExperimentError(f"kind {kind!r} is invalid: use one of {', '.join(SHIPPED_KINDS)}")
    folder = experiments_dir() / kind
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def shipped_file(kind: str, name: str) -> Path | None:
    """The shipped ``<kind>/<name>.toml`` (``name`` with or without ``.toml``), or None.

    Args:
        kind: ``"configs"`` or ``"sweeps"``.
        name: the file's stem (or name).

    Returns:
        The path, or None when no such file is shipped.
    """
    stem = name[:-5] if name.endswith(".toml") else name
    return shipped_files(kind).get(stem)


def run_experiments(names: list[str], *, out: str | Path, quick: bool,
                    quiet: bool = False) -> list[dict[str, Any]]:
    """Run the named experiments into ``out`` and write ``out/report.md``.

    Args:
        names: experiment names (see ``EXPERIMENTS``), all checked before any runs.
        out: output folder (created if missing).
        quick: smoke-test sizes (seconds per experiment; verdicts are not evidence).
        quiet: print no progress.

    Returns:
        The JSON records, in the order run.

    Raises:
        ExperimentError: an unknown name (nothing is run or written).
    """
    modules = [load_experiment(n) for n in names]  # fail on a bad name before running any
    out = Path(out)
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


def write_report(records: list[dict[str, Any]], out: str | Path, *, quick: bool,
                 path: str | Path | None = None, figures: str = "",
                 preamble: str = "") -> Path:
    """Write the report (atomically): the verdict table, then per experiment its summary,
    positive control, criteria ledger and figure.

    Args:
        records: the experiments' JSON records, in report order.
        out: the folder holding the figures (and, by default, ``report.md``).
        quick: whether the records come from quick runs (said in the header).
        path: where to write; default ``out/report.md``.
        figures: prefix of the figure links (e.g. ``"figures/"``).
        preamble: text placed under the title.

    Returns:
        The written path.
    """
    out = Path(out)
    lines = [
        "# clipsim reproduction report",
        "",
        f"Mode: {'quick (smoke-test sizes; verdicts are not evidence)' if quick else 'full'}.",
        "",
    ]
    if preamble:
        lines += [preamble, ""]
    lines += [
        "| prediction | experiment | criterion in force | positive control | verdict | "
        "key numbers |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(f"| {r['prediction']} | `{r['name']}` | {r['criterion']} | "
                     f"{_control_cell(r)} | **{r['verdict']}** | {_key_numbers(r)} |")
    lines.append("")
    for r in records:
        lines += [f"## {r['prediction']}: {r['title']}", "", r.get("summary", ""), ""]
        control = r.get("positive_control")
        if control:
            lines += [f"Positive control ({'passed' if control['passed'] else 'failed'}): "
                      f"{control['setting']} Expected: {control['expected']} "
                      f"Measured: {_fmt(control['measured'])}.", ""]
        ledger = r.get("criteria") or []
        if len(ledger) > 1:
            lines += ["Criteria ledger (oldest first; each with the verdict it gave):", ""]
            for i, c in enumerate(ledger, 1):
                why = f" *Why:* {c['reason']}" if c.get("reason") else ""
                lines.append(f"{i}. {c['adopted']}, **{c.get('verdict')}**: {c['text']}{why}")
            lines.append("")
        times = r.get("wall_times_s") or [r["runtime_s"]]
        reruns = (f" (reruns from the store: {', '.join(f'{t:.0f}' for t in times[1:])} s)"
                  if len(times) > 1 else "")
        lines += [f"![{r['name']}]({figures}{r['name']}.png)", "",
                  f"Seeds: {r['seeds']}; wall time {times[0]:.0f} s{reruns}.", ""]
    target = Path(path) if path is not None else out / "report.md"
    return write_atomic(target, "\n".join(lines))


def _control_cell(record: dict[str, Any]) -> str:
    control = record.get("positive_control")
    if not control:
        return "none (exact check)"
    return "passed" if control["passed"] else "**failed**"
