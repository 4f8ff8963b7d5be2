"""Every reproduction script's quick mode runs and writes a well-formed record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipsim.cli import main
from clipsim.reproduce import EXPERIMENTS, experiments_dir, write_report
from tests.conftest import ROOT as _ROOT

ROOT = Path(_ROOT)

VERDICTS = {"confirmed", "not confirmed", "inconclusive"}
REQUIRED = ("name", "prediction", "title", "claim", "criterion", "verdict", "summary",
            "key_numbers", "numbers", "configs", "seeds", "versions", "runtime_s")


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory) -> tuple[Path, dict[str, dict | Exception]]:
    """Run every experiment's quick mode once; keep each record or the error it raised."""
    from clipsim.reproduce import load_experiment

    out = tmp_path_factory.mktemp("reproduce")
    records: dict[str, dict | Exception] = {}
    for name in EXPERIMENTS:
        try:
            records[name] = load_experiment(name).main(quick=True, out=out, quiet=True)
        except Exception as err:  # reported by the test of that experiment
            records[name] = err
    return out, records


def _finite_numbers(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    return True


@pytest.mark.slow  # every quick mode: minutes of compilation; CI runs them (make test-slow)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quick_mode_writes_png_and_json(quick_runs, name):
    out, records = quick_runs
    record = records[name]
    if isinstance(record, Exception):
        raise record
    assert (experiments_dir() / f"{name}.py").is_file()
    png = out / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / f"{name}.json").read_text())
    for key in REQUIRED:
        assert key in on_disk, f"{name}.json lacks {key!r}"
    assert on_disk["verdict"] in VERDICTS
    assert on_disk["criteria"], f"{name}.json has an empty criteria ledger"
    assert on_disk["criteria"][-1]["text"] == on_disk["criterion"]
    assert on_disk["verdict"] != "not confirmed" or (on_disk["positive_control"] or {}).get(
        "passed", True), f"{name}: a negative verdict needs a passing positive control"
    control = on_disk["positive_control"]  # None only for an exact check
    assert control is None or isinstance(control["passed"], bool)
    assert on_disk["criterion"].strip() and on_disk["summary"].strip()
    assert len(on_disk["seeds"]) >= 2
    assert on_disk["quick"] is True
    assert _finite_numbers(on_disk["numbers"]), f"{name}: non-finite numbers"
    assert _finite_numbers(on_disk["key_numbers"])


@pytest.mark.slow
def test_report_lists_every_experiment(quick_runs):
    out, records = quick_runs
    done = [r for r in records.values() if isinstance(r, dict)]
    report = write_report(done, out, quick=True).read_text()
    for r in done:
        assert f"`{r['name']}`" in report and f"({r['name']}.png)" in report
        assert r["criterion"] in report


def test_reproduce_command_rejects_unknown_names(tmp_path, capsys):
    assert main(["reproduce", "no_such_result", "--quick", "--out", str(tmp_path / "r")]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_rerun_on_a_finished_folder_trains_nothing(quick_runs, monkeypatch):
    from clipsim.reproduce import load_experiment
    from clipsim.sweep import engine

    out, records = quick_runs
    calls = []
    monkeypatch.setattr(engine, "run_batch", lambda *a, **k: calls.append(a))
    again = load_experiment("three_modalities").main(quick=True, out=out, quiet=True)
    assert not calls, "the rerun trained models instead of reading the store"
    assert again["verdict"] == records["three_modalities"]["verdict"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_committed_records_keep_the_code_ledger_append_only(name):
    """A script's ledger extends the one in its committed full run, never rewrites it."""
    from clipsim.experiment import _check_ledger, _ledger
    from clipsim.reproduce import load_experiment

    prediction = load_experiment(name).PREDICTION
    record = ROOT / "docs" / "figures" / f"{name}.json"
    _check_ledger(record, _ledger(prediction, "confirmed"))  # raises LedgerError if rewritten
    assert json.loads(record.read_text())["criterion"] == prediction.criterion


def test_the_ledger_check_catches_a_rewritten_criterion(tmp_path):
    from dataclasses import replace

    from clipsim.experiment import Criterion, LedgerError, Prediction, _check_ledger, _ledger

    old = Prediction("P0", "toy", "t", "c", (Criterion("first", "2026-01-01", verdict="x"),
                                            Criterion("second", "2026-02-01")))
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({"criteria": _ledger(old, "confirmed")}))
    grown = replace(old, criteria=(*old.criteria[:1], replace(old.criteria[1], verdict="y"),
                                   Criterion("third", "2026-03-01")))
    _check_ledger(path, _ledger(grown, "confirmed"))  # appending is fine
    rewritten = replace(old, criteria=(Criterion("FIRST", "2026-01-01", verdict="x"),
                                       old.criteria[1]))
    with pytest.raises(LedgerError):
        _check_ledger(path, _ledger(rewritten, "confirmed"))
    with pytest.raises(LedgerError):
        _check_ledger(path, _ledger(replace(old, criteria=(Criterion("second", "2026-02-01"),)),
                                    "confirmed"))
