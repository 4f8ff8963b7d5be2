"""The command line: help, a training run that writes its folder, clean user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import clipsim
from clipsim.cli import COMMANDS, build_parser, main
from clipsim.cli._common import UsageError, parse_overrides, resolve_file
from clipsim.io import load_run
from clipsim.reproduce import shipped_files
from tests.conftest import tiny_config


@pytest.fixture()
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_config().to_toml())
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One ``clipsim train`` run folder (tiny config, temperature overridden)."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "tiny.toml"
    cfg.write_text(tiny_config().to_toml())
    out = tmp / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet",
                 "--set", "objective.temperature=0.2"]) == 0
    return out


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for name, module in COMMANDS.items():
        assert name in printed and module.HELP in printed
    for name in COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert "usage: clipsim " + name in capsys.readouterr().out


def test_each_command_module_has_the_table_interface():
    for module in COMMANDS.values():
        assert isinstance(module.HELP, str) and "\n" not in module.HELP
        assert callable(module.add_arguments) and callable(module.run)
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


def test_help_mentions_shipped_names(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "onehot_linear" in capsys.readouterr().out


def test_train_writes_the_run_folder(trained):
    record = json.loads((trained / "metrics.json").read_text())
    assert record["config"]["objective"]["temperature"] == 0.2
    assert len(record["config_hash"]) == 12
    assert 0.0 <= record["metrics"]["zs_accuracy"] <= 1.0
    assert len(record["history"]["loss"]) == 4
    assert record["versions"]["jax"] and record["versions"]["numpy"] == np.__version__
    assert {row["statement"][:2] for row in record["bounds"]} >= {"E1", "E7"}
    assert (trained / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (trained / "params.npz").is_file() and (trained / "config.toml").is_file()
    assert not [p for p in trained.parent.iterdir() if p.name.startswith(".")]


def test_train_then_bounds_round_trip_through_load_run(trained, capsys):
    record = json.loads((trained / "metrics.json").read_text())
    result = load_run(trained)
    assert result.config.hash() == record["config_hash"]
    np.testing.assert_allclose(result.history["loss"], record["history"]["loss"])
    report = clipsim.evaluate(result)  # the reloaded model gives the metrics of the run
    for name, value in record["metrics"].items():
        if value is None:
            assert np.isnan(report[name]), name
        else:
            assert report[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert main(["bounds", str(trained)]) == 0
    printed = capsys.readouterr().out
    for name in ("E1", "E2", "E3", "E4", "E5", "E6", "E7"):
        assert name in printed
    assert main(["bounds", str(trained), "--json", "--batches", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["statement"][:2] for r in rows} >= {"E1", "E7"}


def test_prints_the_table_unless_quiet(tiny_toml, tmp_path, capsys):
    assert main(["train", str(tiny_toml), "--out", str(tmp_path / "run")]) == 0
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
    assert err.startswith("clipsim train: error:")
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("override, message", [
    ("objective.temprature=0.1", "objective.temprature"),
    ("objective.temperature", "FIELD=VALUE"),
    ("=3", "FIELD=VALUE"),
])
def test_bad_override_is_one_line_exit_2(tiny_toml, tmp_path, capsys, override, message):
    assert main(["train", str(tiny_toml), "--out", str(tmp_path / "x"), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_file_is_refused_before_training(tiny_toml, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    assert main(["train", str(tiny_toml), "--out", str(taken)]) == 2
    assert "existing file" in capsys.readouterr().err
    assert taken.read_text() == "keep me"


def test_bounds_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["bounds", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["bounds", str(tmp_path / "nowhere.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_overrides_are_json_values_else_strings():
    assert parse_overrides(["a.b=1", "c=0.5", "d=[1, 2]", "e=clip", "f=true"]) == {
        "a.b": 1, "c": 0.5, "d": [1, 2], "e": "clip", "f": True}
    with pytest.raises(UsageError, match="FIELD=VALUE"):
        parse_overrides(["nothing"])


def test_bare_names_resolve_to_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_file("onehot_linear", "configs") == shipped_files("configs")["onehot_linear"]
    assert resolve_file("quick_tau.toml", "sweeps") == shipped_files("sweeps")["quick_tau"]
    (tmp_path / "onehot_linear").write_text("")  # an existing file wins
    assert resolve_file("onehot_linear", "configs").resolve() == tmp_path / "onehot_linear"
    assert resolve_file("sub/onehot_linear", "configs").name == "onehot_linear"  # not shipped
    assert str(resolve_file("no_such_config", "configs")) == "no_such_config"
    cfg = clipsim.RunConfig.load(resolve_file("onehot_linear.toml", "configs"))
    assert cfg.data.num_concepts >= 2


def test_sweep_accepts_a_shipped_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "quick_tau", "--out", "x", "--dry-run"]) == 0
    assert "quick_tau" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_console_entry_point_exit_code(tmp_path):
    missing = tmp_path / "missing.toml"
    proc = subprocess.run([sys.executable, "-m", "clipsim.cli", "train", str(missing),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_commands_add_the_scheduler_flag_and_keep_the_users_xla_flags(tmp_path):
    code = ("import os, sys; from clipsim.cli import main; "
            "code = main(['bounds', sys.argv[1]]); print(os.environ['XLA_FLAGS']); sys.exit(code)")
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    flags = proc.stdout.split()
    assert flags[0] == "--xla_cpu_multi_thread_eigen=false"
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in flags


# ------------------------------------------------------------ discovery, sweeps
def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"clipsim {clipsim.__version__}"


def test_list_objectives_families_and_every_field(capsys):
    from clipsim.config import ALL_FIELDS, LATENT_FAMILIES, OBJECTIVES

    assert main(["list", "objectives"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in OBJECTIVES)
    assert main(["list", "families"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in LATENT_FAMILIES)
    assert main(["list", "fields"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(lines) == set(ALL_FIELDS)
    assert " static " in lines["train.batch_size"] and " dynamic " in lines["objective.temperature"]
    assert " 128 " in lines["train.batch_size"]


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2 x 2 sweep (temperature x seed) run by ``clipsim sweep SPEC --set``."""
    import tomli_w

    from clipsim.sweep import SweepSpec

    tmp = tmp_path_factory.mktemp("sweep")
    spec = SweepSpec(name="tiny", base=tiny_config(), grid={"objective.temperature": [0.1, 0.5]},
                     seeds=[0, 1])
    path = tmp / "tiny.toml"
    path.write_text(tomli_w.dumps(_drop_none(spec.to_dict())))
    out = tmp / "results"
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--set", "train.steps=20"]) == 0
    return path, out


def test_sweep_set_overrides_the_base_config(swept, capsys):
    from clipsim.sweep import load

    path, out = swept
    df = load(out)
    assert set(df["train.steps"]) == {20} and df["final"].sum() == 4
    assert main(["sweep", str(path), "--out", str(out / "x"), "--set",
                 "objective.temperature=0.3"]) == 2
    err = capsys.readouterr().err
    assert "objective.temperature" in err and "swept" in err and "\n" not in err.strip()


def test_sweep_status_summary_and_plot(swept, tmp_path, capsys):
    _, out = swept
    assert main(["sweep", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 runs done, 0 remaining, 0 failed" in printed and "finished" in printed
    assert main(["sweep", "summary", str(out), "--by", "objective.temperature",
                 "--metrics", "zs_accuracy"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "zs_accuracy_mean" in table[0] and len(table) == 3
    png = tmp_path / "fig.png"
    assert main(["sweep", "plot", str(out), "--x", "objective.temperature", "--y",
                 "zs_accuracy", "--hue", "seed", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sweep", "summary", str(out), "--by", "objective.temprature"]) == 2
    assert "objective.temprature" in capsys.readouterr().err
    assert main(["sweep", "status", str(tmp_path / "nowhere")]) == 2


def test_sweep_help_lists_its_actions(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    printed = capsys.readouterr().out
    assert all(action in printed for action in ("run", "status", "summary", "plot"))


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_train_float64_from_the_command_line(tiny_toml, tmp_path):
    out = tmp_path / "f64"
    assert main(["train", str(tiny_toml), "--out", str(out), "--quiet",
                 "--set", "train.dtype=float64"]) == 0
    result = load_run(out)
    assert result.params["encoders"]["image"]["w"].dtype == np.float64


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_ctrl_c_stops_training_within_seconds_and_writes_nothing(tiny_toml, tmp_path):
    import signal
    import time

    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipsim.cli", "train", str(tiny_toml), "--out", str(out),
         "--set", "train.steps=4000000"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    # Wait until imports and compilation are done and training is under way (minutes in
    # total): judged by the child's CPU time, so a loaded machine only makes the wait longer.
    import psutil

    child, waited_for = psutil.Process(proc.pid), time.monotonic()
    while sum(child.cpu_times()[:2]) < 12 and time.monotonic() - waited_for < 180:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, err[-2000:]
    assert waited < 20, f"took {waited:.1f} s to stop"
    assert "interrupt" in err.lower() and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
