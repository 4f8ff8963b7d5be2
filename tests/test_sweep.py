"""Sweeps: spec parsing, batched == one-by-one, one compile per group, resumable store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clipsim
from clipsim import sweep
from clipsim.cli import main
from clipsim.config import flatten_dict, static_signature
from clipsim.sweep import engine, runner
from clipsim.sweep.spec import SpecError, SweepSpec
from clipsim.sweep.store import ResultsStore, StoreMismatchError
from clipsim.sweep.table import CONFIG_COLUMNS
from tests.conftest import ROOT, tiny_config

BASE = tiny_config()
MAX_BATCH = 3  # every test that computes uses chunks of 3 for BASE: one compilation


def tiny_sweep_spec(name: str = "tiny") -> SweepSpec:
    """2 temperatures x 2 (learning rate, noise) pairs x 2 seeds = 8 points, one group."""
    return SweepSpec(
        name=name, base=BASE, grid={"objective.temperature": [0.1, 0.3]},
        zip=({"train.learning_rate": [0.01, 0.03], "data.noise_scale": [0.1, 0.2]},),
        seeds=(0, 1))


def spec_toml(name: str, base: clipsim.RunConfig, grid: dict, seeds: int) -> str:
    lines = [f'name = "{name}"', "", "[base]"]
    for key, value in flatten_dict(base.to_dict()).items():
        if value is not None:
            lines.append(f'"{key}" = {json.dumps(value)}')
    lines += ["", "[grid]"]
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in grid.items()]
    lines.append(f"seeds = {seeds}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The tiny sweep run once from a fresh program cache (8 points, chunks 3 + 3 + 2)."""
    engine.clear_programs()
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    start = time.perf_counter()
    df = sweep.run(tiny_sweep_spec(), out=out, max_batch=MAX_BATCH, quiet=True)
    return SimpleNamespace(df=df, out=out, traces=engine.program_traces(BASE),
                           seconds=time.perf_counter() - start)


# --------------------------------------------------------------------- spec
def test_points_are_grid_times_zip_times_seeds():
    spec = tiny_sweep_spec()
    points = spec.points()
    assert len(points) == len(spec) == 8
    got = [(p.objective.temperature, p.train.learning_rate, p.data.noise_scale, p.seed)
           for p in points]
    want = [(t, lr, ns, s) for t in (0.1, 0.3) for lr, ns in ((0.01, 0.1), (0.03, 0.2))
            for s in (0, 1)]
    assert got == want
    assert spec.swept_fields == ("objective.temperature", "train.learning_rate",
                                 "data.noise_scale", "seed")
    assert spec.describe(points[3]) == {"objective.temperature": 0.1, "train.learning_rate": 0.03,
                                        "data.noise_scale": 0.2, "seed": 1}
    assert len({p.hash() for p in points}) == 8
    assert SweepSpec.from_dict(spec.to_dict()).hash() == spec.hash()


def test_issue_example_toml_parses():
    text = """
name = "margin_vs_tau"
[base]
data.family = "onehot"
data.num_concepts = 16
data.image_dim = 40
data.text_dim = 40
objective.name = "clip"
train.steps = 2000
[grid]
"objective.temperature" = [0.01, 0.03, 0.1, 0.3, 1.0]
seeds = 5
[[zip]]
"train.learning_rate" = [0.01, 0.02]
"model.init_scale" = [1.0, 0.5]
[eval]
num_samples = 500
"""
    spec = SweepSpec.from_toml(text)
    points = spec.points()
    assert spec.name == "margin_vs_tau" and spec.seeds == (0, 1, 2, 3, 4)
    assert len(points) == 5 * 2 * 5
    assert {p.data.num_concepts for p in points} == {16}
    assert {p.eval.num_samples for p in points} == {500}
    assert points[-1].objective.temperature == 1.0 and points[-1].model.init_scale == 0.5


SWEEP_FILES = sorted(p for p in os.listdir(os.path.join(ROOT, "experiments/sweeps"))
                     if p.endswith(".toml"))


@pytest.mark.parametrize("path", SWEEP_FILES)
def test_shipped_specs_are_valid(path):
    spec = SweepSpec.load(os.path.join(ROOT, "experiments/sweeps", path))
    assert spec.name == path.removesuffix(".toml")
    assert len(spec.points()) == len(spec) > 1


@pytest.mark.parametrize("values, message", [
    ({"grid": {"objective.temprature": [0.1]}}, "objective.temprature"),
    ({"grid": {"objective.temperature": [0.1, -1.0]}}, "objective.temperature = -1.0"),
    ({"grid": {"train.batch_size": [16, 1]}}, "train.batch_size"),
    ({"grid": {"objective.temperature": 0.1}}, "'objective.temperature' must be a non-empty"),
    ({"grid": {"seed": [0, 1]}}, "'seed' cannot be swept"),
    ({"zip": [{"objective.temperature": [0.1, 0.2], "train.learning_rate": [0.01]}]},
     "objective.temperature: 2, train.learning_rate: 1"),
    ({"zip": {"objective.temperature": [0.1]}, "grid": {"objective.temperature": [0.2]}},
     "swept twice"),
    ({"base": {"model.kind": "transformer"}}, "model.kind"),
    ({"base": {"objective": {"temperatur": 0.1}}}, "objective.temperatur"),
    ({"seeds": 0}, "seeds = 0"),
    ({"grid": {"objective.temperature": [0.1, 0.1]}}, "same config"),
    ({"grids": {}}, "'grids' is not a sweep spec key"),
    ({"eval": {"num_sample": 10}}, "eval.num_sample"),
])
def test_bad_specs_are_rejected_naming_the_field(tmp_path, values, message):
    out = tmp_path / "never"
    with pytest.raises(SpecError) as info:
        sweep.run({"name": "bad", "base": BASE.to_dict(), **values}, out=out, quiet=True)
    assert message in str(info.value)
    assert not out.exists()


def test_cli_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(spec_toml("bad", BASE, {"objective.temperature": [0.1, -1.0]}, 2))
    out = tmp_path / "never"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "objective.temperature = -1.0 is invalid" in err and "\n" not in err
    assert not out.exists()


def test_cli_dry_run_prints_plan_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["sweep", os.path.join(ROOT, "experiments/sweeps/reg_lambda.toml"),
                 "--out", str(out), "--dry-run", "--max-batch", "4"])
    assert code == 0
    printed = capsys.readouterr().out
    # a chained sweep: clip once per seed (3), clip_reg over 6 lambdas (18); chunks of 4
    assert "21 points, 2 static group(s), 6 chunk(s) to run" in printed
    assert "all 21 runs to do" in printed and "estimated time: unknown" in printed
    assert not out.exists()


def test_memory_budget_sizes_parse():
    from clipsim.cli import UsageError
    from clipsim.cli.sweep import parse_size

    assert parse_size("2GiB") == 2 * 2**30 and parse_size("512MB") == 512 * 10**6
    assert parse_size("1e6") == 10**6 and parse_size("64 mib") == 64 * 2**20
    for bad in ("lots", "2XB", "0"):
        with pytest.raises(UsageError, match="--memory-budget"):
            parse_size(bad)


# ------------------------------------------------------------------ planning
def test_chunks_follow_memory_budget_and_max_batch():
    points = tiny_sweep_spec().points()
    per_run = engine.estimate_run_bytes(points[0])
    assert per_run > 0
    runtime = engine.RUNTIME_BYTES  # paid once per chunk
    by_budget = engine.plan_chunks("t", points, range(8),
                                   memory_budget=runtime + int(2.5 * (per_run - runtime)))
    assert [len(t.points) for t in by_budget] == [2, 2, 2, 2]
    by_cap = engine.plan_chunks("t", points, range(8), max_batch=3)
    assert [len(t.points) for t in by_cap] == [3, 3, 2]
    assert {t.pad_to for t in by_cap} == {3}
    assert sorted(i for t in by_cap for i in t.points) == list(range(8))
    assert len({t.chunk_id for t in by_cap}) == 3
    # resuming plans only what is left; a budget of one run gives chunks of one
    left = engine.plan_chunks("t", points, [1, 5], memory_budget=per_run)
    assert [t.points for t in left] == [(1,), (5,)]
    # a budget below one run is refused, naming the figure and the knobs
    with pytest.raises(engine.MemoryBudgetError) as info:
        engine.plan_chunks("t", points, [1, 5], memory_budget=per_run - 1)
    message = str(info.value)
    for knob in ("eval.num_samples", "train.batch_size", "--memory-budget", "MiB per run"):
        assert knob in message
    # a bigger static shape costs more memory
    assert engine.estimate_run_bytes(BASE.replace(**{"train.batch_size": 256})) > per_run


# -------------------------------------------------------------- the engine
def test_one_compilation_per_group_across_chunks(swept):
    parts = ResultsStore(swept.out).part_files()
    sizes = sorted(pq_points(p) for p in parts)
    assert sizes == [2, 3, 3]  # two full chunks and one padded chunk
    assert swept.traces == 1
    compiled = [c for k, c in engine._PROGRAMS.items() if k[1] == static_signature(BASE)]
    assert [c.fn._cache_size() for c in compiled] == [1]


def pq_points(path) -> int:
    return pd.read_parquet(path, columns=["point"])["point"].nunique()


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_batched_equals_one_by_one(swept):
    """Points differing in seed, temperature and learning rate match clipsim.train/evaluate."""
    points = tiny_sweep_spec().points()
    for i in (0, 3, 6):
        cfg = points[i]
        result = clipsim.train(cfg)
        report = clipsim.evaluate(result)
        rows = swept.df[swept.df["point"] == i]
        np.testing.assert_array_equal(rows["step"], result.history["step"])
        for name, values in result.history.items():
            if name in ("step", "unique_share_image", "unique_share_text"):
                continue
            np.testing.assert_allclose(rows[name], values, rtol=1e-5, atol=1e-5, err_msg=name)
        final = rows[rows["final"]].iloc[0]
        compared = 0
        for name, value in report.metrics.items():
            if name in final.index:
                np.testing.assert_allclose(final[name], value, rtol=1e-5, atol=1e-5,
                                           err_msg=name)
                compared += 1
        assert compared >= 20
        assert final["config_hash"] == cfg.hash() and final["seed"] == cfg.seed


def test_table_has_one_row_per_run_and_step(swept):
    df = swept.df
    assert len(df) == 8 * BASE.train.num_logs
    final = df[df["final"]]
    assert sorted(final["point"]) == list(range(8))
    assert (final["step"] == BASE.train.steps).all()
    assert (df["nonfinite_step"] == -1).all() and (df["sweep"] == "tiny").all()
    assert df.loc[~df["final"], "zs_accuracy"].isna().all()
    assert df.loc[df["final"], "zs_accuracy"].between(0, 1).all()
    assert set(CONFIG_COLUMNS) <= set(df.columns)
    assert df["eval.top_r"].iloc[0] == "[1, 2]" and df["data.class_probs"].iloc[0] == "null"
    assert df["objective.temperature"].dtype == np.float64
    assert sorted(df["objective.temperature"].unique()) == [0.1, 0.3]
    plain = pd.read_parquet(swept.out / "results")
    assert len(plain) == len(df) and set(plain.columns) == set(df.columns)
    manifest = json.loads((swept.out / "manifest.json").read_text())
    assert manifest["spec_hash"] == tiny_sweep_spec().hash() and manifest["num_points"] == 8
    assert manifest["finished"] and manifest["versions"]["jax"] == jax.__version__
    assert manifest["spec"]["grid"] == {"objective.temperature": [0.1, 0.3]}


# ------------------------------------------------------------------- store
def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = runner.compute_chunk

    def counted(task):
        calls.append(len(task.points))
        return original(task)

    monkeypatch.setattr(runner, "compute_chunk", counted)
    return calls


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.attrs = {}
    return df


def test_rerun_skips_finished_points(swept, monkeypatch):
    calls = _counting(monkeypatch)
    again = sweep.run(tiny_sweep_spec(), out=swept.out, max_batch=MAX_BATCH, quiet=True)
    assert calls == []
    pd.testing.assert_frame_equal(_plain(again), _plain(swept.df))


def test_lost_part_is_recomputed_and_nothing_else(swept, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(swept.out, out)
    store = ResultsStore(out)
    victim = next(p for p in store.part_files() if pq_points(p) == 3)
    victim.unlink()
    sessions = len(store.read_manifest()["sessions"])
    calls = _counting(monkeypatch)
    again = sweep.run(tiny_sweep_spec(), out=out, max_batch=MAX_BATCH, quiet=True)
    assert calls == [3]
    pd.testing.assert_frame_equal(_plain(again), _plain(swept.df))
    assert len(store.read_manifest()["sessions"]) == sessions + 1


def test_other_sweep_into_same_folder_is_refused(swept, tmp_path):
    before = sorted(p.name for p in ResultsStore(swept.out).part_files())
    other = SweepSpec(name="other", base=BASE, grid={"objective.temperature": [0.5]})
    with pytest.raises(StoreMismatchError) as info:
        sweep.run(other, out=swept.out, quiet=True)
    message = str(info.value)
    assert "'tiny'" in message and "'other'" in message and "--out" in message
    assert sorted(p.name for p in ResultsStore(swept.out).part_files()) == before
    stranger = tmp_path / "not_results"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(StoreMismatchError, match="no manifest"):
        sweep.run(other, out=stranger, quiet=True)


def test_parts_with_different_metrics_share_one_schema(tmp_path):
    """Groups with different metric sets (e.g. linear vs mlp2) still form one dataset."""
    spec = SweepSpec(name="s", base=BASE, grid={"objective.temperature": [0.1, 0.2]})
    store = ResultsStore(tmp_path / "s")
    store.open(spec, num_points=2, metrics=["loss", "extra"])
    points = spec.points()
    for i in (0, 1):
        frame = pd.DataFrame({"sweep": ["s"], "point": [i], "config_hash": [points[i].hash()],
                              "seed": [0], "step": [40], "final": [True], "nonfinite_step": [-1],
                              "loss": [1.0 + i]})
        if i == 1:
            frame["extra"] = 7.0
        store.write_part(f"p{i}", frame)
    plain = pd.read_parquet(store.results_path)
    assert len(plain) == 2 and np.isnan(plain["extra"]).sum() == 1
    assert store.finished_hashes() == {p.hash() for p in points}
    assert list(sweep.load(store.path)["loss"]) == [1.0, 2.0]


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_sigkill_mid_sweep_then_rerun_has_every_point_once(tmp_path):
    base = BASE.replace(**{"train.steps": 3000, "train.log_every": 1000})
    spec = tmp_path / "killme.toml"
    spec.write_text(spec_toml("killme", base, {"objective.temperature": [0.1, 0.2, 0.3, 0.5]}, 3))
    out = tmp_path / "out"
    env = {**os.environ, "CLIPSIM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-c", "import sys; from clipsim.cli import main; sys.exit(main())",
           "sweep", str(spec), "--out", str(out), "--max-batch", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    results = out / "results"
    deadline = time.monotonic() + 120
    while not (results.is_dir() and any(results.glob("part-*.parquet"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part file appeared"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(results.glob("part-*.parquet")))
    assert 1 <= done < 12, f"{done} parts: the sweep was not killed mid-way"
    partial = sweep.load(out)  # readable after the kill: whole points only
    assert partial.groupby("point").size().eq(3).all()
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    df = sweep.load(out)
    final = df[df["final"]]
    assert sorted(final["point"]) == list(range(12))
    assert final["config_hash"].is_unique and len(df) == 12 * 3
    assert len(list(results.glob("part-*.parquet"))) == 12
    assert not list(results.glob(".*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] and manifest["sessions"][0]["finished"] is None
    assert any((tmp_path / "cache").iterdir())  # the CLI used the compilation cache


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_nonfinite_point_is_flagged_not_silent(tmp_path):
    spec = SweepSpec(name="nan", base=BASE, grid={"objective.temperature": [0.1, 1e-40, 0.3]})
    with pytest.warns(sweep.NonFiniteRunWarning) as record:
        df = sweep.run(spec, out=tmp_path / "nan", max_batch=MAX_BATCH, quiet=True)
    bad_hash = spec.points()[1].hash()
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert bad_hash in messages[0] and "step 0" in messages[0]
    assert "objective.temperature=1e-40" in messages[0]
    flags = df.groupby("point")["nonfinite_step"].first()
    assert list(flags) == [-1, 0, -1]


# ------------------------------------------------------------------ summary
def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    rows = []
    for a in (0.1, 0.3):
        for b in ("x", "y"):
            for seed in range(5):
                for step, final in ((10, False), (20, True)):
                    rows.append({"a": a, "b": b, "seed": seed, "step": step, "final": final,
                                 "m": rng.normal(), "k": rng.normal()})
    df = pd.DataFrame(rows)
    df.loc[(df["a"] == 0.3) & (df["b"] == "y") & (df["seed"] == 0), "m"] = np.nan
    out = clipsim.summarize(df, by=["a", "b"], metrics=["m", "k"])
    assert len(out) == 4 and list(out.columns[:2]) == ["a", "b"]
    for _, row in out.iterrows():
        sel = df[(df["a"] == row["a"]) & (df["b"] == row["b"]) & df["final"]]
        for metric in ("m", "k"):
            x = sel[metric].to_numpy()
            x = x[~np.isnan(x)]
            n = len(x)
            sem = np.std(x, ddof=1) / np.sqrt(n)
            half = stats.t.ppf(0.975, n - 1) * sem
            assert row[f"{metric}_n"] == n
            np.testing.assert_allclose(row[f"{metric}_mean"], np.mean(x), rtol=1e-12)
            np.testing.assert_allclose(row[f"{metric}_sem"], sem, rtol=1e-12)
            np.testing.assert_allclose(row[f"{metric}_ci95_low"], np.mean(x) - half, rtol=1e-12)
            np.testing.assert_allclose(row[f"{metric}_ci95_high"], np.mean(x) + half, rtol=1e-12)
    assert out.loc[(out["a"] == 0.3) & (out["b"] == "y"), "m_n"].item() == 4
    # t quantile for n = 5 seeds is 2.776
    five = out.loc[(out["a"] == 0.1) & (out["b"] == "x")].iloc[0]
    assert np.isclose((five["k_ci95_high"] - five["k_mean"]) / five["k_sem"], 2.776445, atol=1e-6)
    default = clipsim.summarize(df, by="a")
    assert {"m_mean", "k_ci95_high"} <= set(default.columns)
    assert not {"seed_mean", "step_mean", "final_mean"} & set(default.columns)
    single = clipsim.summarize(df[df["seed"] == 0], by="a", metrics="k")
    assert single["k_n"].tolist() == [2, 2]
    assert clipsim.summarize(df[df["seed"] < 1], by=["a", "b"], metrics="k")["k_sem"].isna().all()


# -------------------------------------------------------------------- plots
def test_plot_metric_draws_a_line_and_band_per_hue(swept, tmp_path):
    from clipsim.plots import plot_metric, plot_metric_grid

    png = tmp_path / "zs.png"
    ax = plot_metric(swept.df, "objective.temperature", "zs_accuracy",
                     hue="train.learning_rate", logx=True, path=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0.01", "0.03"]
    assert ax.get_xscale() == "log"
    means = swept.df[swept.df["final"]].groupby("objective.temperature")["zs_accuracy"]
    single = plot_metric(swept.df, "objective.temperature", "zs_accuracy")
    np.testing.assert_allclose(single.lines[0].get_ydata(), means.mean().to_numpy())
    curves = plot_metric(swept.df, "step", "loss", hue="objective.temperature")
    assert len(curves.lines) == 2
    assert list(curves.lines[0].get_xdata()) == [10, 20, 30, 40]
    fig = plot_metric_grid(swept.df, "objective.temperature", ["zs_accuracy", "loss", "r2_shared"],
                           path=tmp_path / "grid.png")
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    assert (tmp_path / "grid.png").is_file()
