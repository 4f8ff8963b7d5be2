"""The command line: help, a training run that writes its files, clean user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clipsim.cli import main
from tests.conftest import tiny_config


@pytest.fixture()
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_config().to_toml())
    return path


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--out" in capsys.readouterr().out


def test_train_writes_metrics_and_figure(tiny_toml, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(tiny_toml), "--out", str(out),
                 "--set", "objective.temperature=0.2"])
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["config"]["objective"]["temperature"] == 0.2
    assert len(record["config_hash"]) == 12
    assert 0.0 <= record["metrics"]["zs_accuracy"] <= 1.0
    assert len(record["history"]["loss"]) == 4
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "zs_accuracy" in printed and "metrics.json" in printed


@pytest.mark.parametrize("content, message", [
    ("[objective]\ntemperature = -1.0\n", "objective.temperature"),
    ("[train]\nbatch_size = 1\n", "train.batch_size"),
    ("[objective\n", "not valid TOML"),
])
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, capsys, content, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    out = tmp_path / "never"
    assert main(["train", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_bad_override_is_reported(tiny_toml, tmp_path, capsys):
    code = main(["train", str(tiny_toml), "--out", str(tmp_path / "x"),
                 "--set", "objective.temprature=0.1"])
    assert code == 2
    assert "objective.temprature" in capsys.readouterr().err


def test_console_entry_point_exit_code(tmp_path):
    missing = tmp_path / "missing.toml"
    proc = subprocess.run([sys.executable, "-m", "clipsim.cli", "train", str(missing),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
