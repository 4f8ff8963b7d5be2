"""Run folders, JSON records and versions: round trips, atomic writes, clear errors."""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clipsim
from clipsim import io
from clipsim.train import TrainResult, init_params
from tests.conftest import tiny_config


def _strict_loads(text: str):
    """``json.loads`` that refuses the non-standard NaN/Infinity tokens."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _random_result(cfg: clipsim.RunConfig) -> TrainResult:
    params = init_params(cfg, key=jax.random.key(3))
    history = {"step": np.array([10, 20]), "loss": np.array([1.5, np.nan])}
    return TrainResult(params=params, history=history, config=cfg, key=jax.random.key(cfg.seed))


# ------------------------------------------------------------------ dumps
def test_dumps_writes_null_for_nan_and_inf():
    record = {"nan": float("nan"), "inf": np.inf, "neg": -math.inf, "f32": np.float32("nan"),
              "array": np.array([1.0, np.nan, np.inf]), "ok": 0.25}
    decoded = _strict_loads(io.dumps(record))
    assert decoded == {"nan": None, "inf": None, "neg": None, "f32": None,
                       "array": [1.0, None, None], "ok": 0.25}
    assert "NaN" not in io.dumps(record) and "Infinity" not in io.dumps(record)


def test_dumps_converts_numpy_and_jax_values():
    record = {"i": np.int64(3), "b": np.bool_(True), "f": np.float32(0.5),
              "m": np.arange(4).reshape(2, 2), "j": jnp.array([1.0, 2.0]), "t": (1, 2),
              "nested": [{"x": np.float64(2.0)}], 7: "int key"}
    assert _strict_loads(io.dumps(record)) == {
        "i": 3, "b": True, "f": 0.5, "m": [[0, 1], [2, 3]], "j": [1.0, 2.0], "t": [1, 2],
        "nested": [{"x": 2.0}], "7": "int key"}


def test_dumps_names_the_type_it_cannot_write():
    with pytest.raises(TypeError, match="object"):
        io.dumps({"x": object()})


def test_package_versions_names_the_numerical_packages():
    versions = io.package_versions()
    assert versions["jax"] == jax.__version__ and versions["numpy"] == np.__version__
    for name in ("python", "clipsim", "jaxlib", "optax", "pandas", "pyarrow", "scipy"):
        assert versions[name]


# ----------------------------------------------------------- write_atomic
def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    io.write_atomic(path, "old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        io.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


# ------------------------------------------------------- save_run/load_run
def test_save_then_load_run_round_trips_params_config_and_history(tmp_path):
    cfg = tiny_config()
    result = _random_result(cfg)
    out = io.save_run(tmp_path / "run", result, extra={"note": np.float32(1.5)}, figure=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metrics.json", "params.npz"]
    record = _strict_loads((out / "metrics.json").read_text())
    assert record["config_hash"] == cfg.hash() and record["note"] == 1.5
    assert record["history"]["loss"] == [1.5, None]
    assert record["versions"] == io.package_versions()

    loaded = io.load_run(out)
    assert loaded.config == cfg
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(result.params), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(loaded.params) == jax.tree.structure(result.params)
    np.testing.assert_array_equal(loaded.history["step"], [10, 20])
    assert loaded.history["loss"][0] == 1.5 and np.isnan(loaded.history["loss"][1])


def test_save_run_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    import clipsim.plots

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(clipsim.plots, "plot_training_curves", broken)
    with pytest.raises(OSError, match="no space"):
        io.save_run(tmp_path / "run", _random_result(tiny_config()))
    assert list(tmp_path.iterdir()) == []


def test_save_run_into_an_existing_folder_replaces_the_run_keeps_other_files(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "metrics.json").write_text("{stale")
    io.save_run(out, _random_result(tiny_config()), figure=False)
    assert (out / "notes.txt").read_text() == "mine"
    assert _strict_loads((out / "metrics.json").read_text())["config_hash"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_run_refuses_a_file_as_folder(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(io.RunFolderError, match="taken.*existing file"):
        io.save_run(target, _random_result(tiny_config()), figure=False)


def test_load_run_names_params_that_do_not_match_the_config(tmp_path):
    out = io.save_run(tmp_path / "run", _random_result(tiny_config()), figure=False)
    (out / "config.toml").write_text(tiny_config(**{"model.embed_dim": 3}).to_toml())
    with pytest.raises(io.RunFolderError, match=r"params\.npz does not match.*shape"):
        io.load_run(out)


def test_load_run_names_a_missing_parameter(tmp_path):
    out = io.save_run(tmp_path / "run", _random_result(tiny_config()), figure=False)
    with np.load(out / "params.npz") as npz:
        arrays = {k: npz[k] for k in npz.files[1:]}
    np.savez(out / "params.npz", **arrays)
    with pytest.raises(io.RunFolderError, match=r"params\.npz does not match.*lacks"):
        io.load_run(out)


@pytest.mark.parametrize("remove, message", [
    ("config.toml", "not a run folder"), ("params.npz", "params.npz is missing")])
def test_load_run_names_the_missing_file(tmp_path, remove, message):
    out = io.save_run(tmp_path / "run", _random_result(tiny_config()), figure=False)
    (out / remove).unlink()
    with pytest.raises(io.RunFolderError, match=message):
        io.load_run(out)


def test_load_run_reports_damaged_files(tmp_path):
    out = io.save_run(tmp_path / "run", _random_result(tiny_config()), figure=False)
    (out / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(io.RunFolderError, match="params.npz is unreadable"):
        io.load_run(out)
    with pytest.raises(io.RunFolderError, match="no such folder"):
        io.load_run(tmp_path / "nowhere")
