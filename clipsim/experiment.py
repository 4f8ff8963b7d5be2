"""Shared machinery of the reproduction scripts in ``experiments/``.

An experiment states its prediction, its positive control and its criterion
*before* it runs (a ``Prediction`` with a ledger of ``Criterion`` entries, the
last one in force), runs every model through the sweep engine and its
resumable store (``run_grid``, with the experiment's own ``Program`` where it
needs numbers the default evaluation does not compute), decides, and writes
``<name>.png`` and ``<name>.json`` with ``finish``.

Verdicts are ``confirmed``, ``not confirmed`` or ``inconclusive``. A negative
verdict stands only when the experiment's positive control passed: a setting
where the effect must appear by construction, measured with the same metric and
analysis. Without a passing control a failed criterion reads ``inconclusive``,
since the design may simply be unable to see the effect.

The criteria ledger is append-only: changing a criterion means adding an entry
with its date and reason, never editing an old one; each record carries the
whole ledger with the verdict each entry gave when it was in force, and
``finish`` refuses to write a record whose ledger drops or rewrites an entry
already recorded in the output folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clipsim.config import RunConfig
from clipsim.io import package_versions as versions

__all__ = ["Criterion", "Control", "ControlResult", "Prediction", "LedgerError", "versions",
           "verdict", "run_grid", "final_rows", "seed_stats", "finish", "run_script",
           "CONFIRMED", "NOT_CONFIRMED", "INCONCLUSIVE"]

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not confirmed", "inconclusive"


class LedgerError(ValueError):
    """A criteria ledger would drop or rewrite an entry already recorded."""


@dataclass(frozen=True)
class Criterion:
    """One entry of an experiment's criteria ledger.

    Attributes:
        text: the test applied to the numbers, fixed before the run it decided.
        adopted: ISO date the criterion was adopted.
        reason: why it was adopted (for an amendment: what was wrong before).
        verdict: for an entry no longer in force, the verdict it gave in its last
            full run; None for the entry in force (decided by this run).
    """

    text: str
    adopted: str
    reason: str = ""
    verdict: str | None = None


@dataclass(frozen=True)
class Control:
    """A positive control: a setting where the effect must appear, same metric, same analysis.

    Attributes:
        setting: the control setting, in words.
        expected: what must be measured there for the design to count as able to
            detect the effect.
    """

    setting: str
    expected: str


@dataclass(frozen=True)
class ControlResult:
    """What the positive control measured.

    Attributes:
        measured: the measured value(s), in words or numbers.
        passed: the expected effect appeared.
    """

    measured: Any
    passed: bool


@dataclass(frozen=True)
class Prediction:
    """A prediction of docs/theory.md and the ledger of criteria that decide it.

    Attributes:
        key: "P1" ... "P8", "T1", "M1", or "X1" for extensions.
        name: the experiment name (script and output file stem).
        title: a short title for the report.
        claim: the paper's claim in one or two sentences.
        criteria: the ledger, oldest first; the last entry is in force.
        control: the positive control; None only for exact checks (statements that
            cannot fail but through a bug).
    """

    key: str
    name: str
    title: str
    claim: str
    criteria: tuple[Criterion, ...]
    control: Control | None = None

    def __post_init__(self) -> None:
        if not self.criteria:
            raise ValueError(f"{self.name}: a prediction needs at least one criterion")
        if self.criteria[-1].verdict is not None:
            raise ValueError(f"{self.name}: the criterion in force cannot carry a verdict yet")
        if any(c.verdict is None for c in self.criteria[:-1]):
            raise ValueError(f"{self.name}: every superseded criterion keeps the verdict it gave")

    @property
    def criterion(self) -> str:
        """The criterion in force (the ledger's last entry)."""
        return self.criteria[-1].text


def verdict(passed: bool | None, control_passed: bool | None = None) -> str:
    """The verdict of a criterion outcome, given the positive control's outcome.

    Args:
        passed: the criterion held (True), failed (False), or the data cannot decide
            (None).
        control_passed: the positive control detected its effect; None when the
            experiment has no control (an exact check), which cannot veto.

    Returns:
        ``confirmed`` when the criterion held; ``not confirmed`` when it failed and
        the control did not fail; ``inconclusive`` otherwise.
    """
    if passed is None:
        return INCONCLUSIVE
    if passed:
        return CONFIRMED
    return INCONCLUSIVE if control_passed is False else NOT_CONFIRMED


def run_grid(name: str, base: RunConfig, grid: Mapping[str, Sequence], *,
             seeds: int | Sequence[int], out: str | Path, program: Any = None,
             zip_groups: Sequence[Mapping[str, Sequence]] | None = None,
             max_batch: int | None = None, quiet: bool = True) -> pd.DataFrame:
    """Run ``base`` over ``grid`` (cartesian) x ``zip_groups`` x ``seeds`` with the sweep engine.

    Results go to ``out/<name>_sweep/`` (resumable: a rerun reads every finished
    run back from the store and trains nothing), and the full table is returned.

    Args:
        name: the sweep's name (and folder stem).
        base: the config every point starts from.
        grid: dotted field -> values.
        seeds: a count (seeds 0..n-1) or explicit seeds.
        out: the experiment's output folder.
        program: a ``clipsim.sweep.Program``; default ``train_evaluate``.
        zip_groups: groups of fields varied together.
        max_batch: at most this many runs per compiled batch.
        quiet: no progress bar.

    Returns:
        The results table (``clipsim.sweep.table``).
    """
    from clipsim import sweep

    spec = sweep.SweepSpec(name=name, base=base, grid=dict(grid),
                           zip=tuple(dict(g) for g in zip_groups or ()),
                           seeds=list(range(seeds)) if isinstance(seeds, int) else list(seeds))
    return sweep.run(spec, out=Path(out) / f"{name}_sweep", program=program, quiet=quiet,
                     max_batch=max_batch)


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows holding end-of-training evaluation metrics (one per run).

    Args:
        df: a results table.

    Returns:
        A copy of its rows with ``final`` True.
    """
    return df[df["final"]].copy()


def seed_stats(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, standard error and count of ``metric`` across seeds, per group of ``by``.

    ``clipsim.summarize`` (runs with a non-finite training loss left out) with
    short column names.

    Args:
        df: a results table (final rows are used when it has a ``final`` column).
        by: columns to group by.
        metric: the metric column.

    Returns:
        One row per group: the ``by`` columns, ``mean``, ``se`` (standard error of
        the mean over seeds; NaN for one seed) and ``n``.
    """
    from clipsim.sweep.summary import summarize

    stats = summarize(df, by=by, metrics=[metric], final="final" in df)
    return stats.rename(columns={f"{metric}_mean": "mean", f"{metric}_sem": "se",
                                 f"{metric}_n": "n"})[[*by, "mean", "se", "n"]]


def _ledger(prediction: Prediction, outcome: str) -> list[dict[str, Any]]:
    entries = [asdict(c) for c in prediction.criteria]
    entries[-1]["verdict"] = outcome
    return entries


def _check_ledger(path: Path, ledger: list[dict[str, Any]]) -> None:
    """Refuse a ledger that drops or rewrites an entry of the record already at ``path``."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text()).get("criteria", [])
    except (json.JSONDecodeError, AttributeError):
        return  # not a record of ours: nothing to keep
    for i, entry in enumerate(old[:-1]):  # the old entry in force may since have been decided
        if i >= len(ledger) or any(entry.get(k) != ledger[i][k] for k in ("text", "adopted")):
            raise LedgerError(
                f"{path}: criterion {i + 1} ({entry.get('text', '')[:60]!r}...) of the recorded "
                "ledger is missing or rewritten; criteria are append-only")
    if old and (len(ledger) < len(old) or old[-1].get("text") != ledger[len(old) - 1]["text"]):
        raise LedgerError(f"{path}: the recorded criterion in force was dropped or rewritten; "
                          "criteria are append-only")


def finish(prediction: Prediction, *, out: str | Path, fig: Any, passed: bool | None,
           control: ControlResult | None, key_numbers: dict[str, Any], numbers: dict[str, Any],
           configs: dict[str, Any], seeds: Sequence[int], started: float, quick: bool,
           summary: str) -> dict[str, Any]:
    """Decide the verdict, save the figure and the JSON record; return the record.

    Args:
        prediction: what was tested and how (with the criteria ledger).
        out: output folder.
        fig: a matplotlib figure (saved as ``<name>.png`` in the shared style).
        passed: the criterion's outcome (None when the data cannot decide).
        control: the positive control's outcome (None only for exact checks).
        key_numbers: a few headline numbers for the report table.
        numbers: every number behind the figure (JSON-serializable).
        configs: the base config(s) and grids, as dicts.
        seeds: the seeds used.
        started: ``time.perf_counter()`` at the start of the experiment.
        quick: whether this was a quick run.
        summary: one paragraph saying what was found.

    Returns:
        The record: the prediction's fields, ``verdict``, ``criteria`` (the ledger,
        each entry with its verdict), ``positive_control`` (``setting``,
        ``expected``, ``measured``, ``passed``), the numbers, configs, seeds,
        versions, ``runtime_s`` (this call) and ``wall_times_s`` (every full call
        into this folder, oldest first: a rerun from the store is fast).

    Raises:
        LedgerError: the ledger drops or rewrites an entry already recorded in
            ``out/<name>.json``.
    """
    from clipsim.io import dumps
    from clipsim.plots import save

    if (prediction.control is None) != (control is None):
        raise ValueError(f"{prediction.name}: a declared positive control needs its result, "
                         "and a result needs a declared control")
    outcome = verdict(passed, None if control is None else control.passed)
    out = Path(out)
    path = out / f"{prediction.name}.json"
    ledger = _ledger(prediction, outcome)
    if not quick:
        _check_ledger(path, ledger)
    out.mkdir(parents=True, exist_ok=True)
    save(fig, out / f"{prediction.name}.png")
    positive_control = None
    if prediction.control is not None and control is not None:
        positive_control = {**asdict(prediction.control), "measured": control.measured,
                            "passed": bool(control.passed)}
    record = {
        "prediction": prediction.key,
        "name": prediction.name,
        "title": prediction.title,
        "claim": prediction.claim,
        "criterion": prediction.criterion,
        "criteria": ledger,
        "positive_control": positive_control,
        "verdict": outcome,
        "quick": quick,
        "summary": summary,
        "key_numbers": key_numbers,
        "numbers": numbers,
        "configs": configs,
        "seeds": list(seeds),
        "versions": versions(),
        "runtime_s": time.perf_counter() - started,
    }
    # Wall times of every full invocation, oldest first: a rerun that reads its runs
    # back from the store is fast, and must not hide how long the experiment took.
    previous: list[float] = []
    if path.is_file() and not quick:
        try:
            old = json.loads(path.read_text())
            previous = list(old.get("wall_times_s", [old.get("runtime_s")] if "runtime_s" in old
                                    else []))
        except (json.JSONDecodeError, AttributeError):
            previous = []
    record["wall_times_s"] = [t for t in previous if t is not None] + [record["runtime_s"]]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(record))
    tmp.replace(path)
    return record


def run_script(main: Any, doc: str | None) -> None:
    """Command line of an experiment script: ``[--quick] [--out DIR]``, then print the verdict.

    Args:
        main: the script's ``main(quick=..., out=..., quiet=...)``.
        doc: the script's module docstring (its first line describes the command).
    """
    import argparse

    from clipsim.runtime import protect_cpu_scheduler

    protect_cpu_scheduler()
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--out", default="runs/reproduce", help="output folder")
    args = parser.parse_args()
    record = main(quick=args.quick, out=args.out, quiet=False)
    print(record["verdict"], "-", record["summary"])
