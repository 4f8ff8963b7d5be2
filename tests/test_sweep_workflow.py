"""The sweep workflow: growing a sweep, chained grids, fast validated points, dry runs,
progress, and the memory estimate and refusal.

The runner is exercised unchanged with a stand-in for ``compute_chunk`` (one row per
point at once), so these tests cost no training; the stand-in counts the points of
every chunk it is given, which is what "computes only the new runs" means.
"""

from __future__ import annotations

import json
import os
import random

import pandas as pd
import pytest

from clipsim import sweep
from clipsim.cli import main
from clipsim.config import RunConfig
from clipsim.sweep import engine, runner
from clipsim.sweep.engine import MemoryBudgetError, Program, estimate_run_parts
from clipsim.sweep.spec import MAX_POINTS, SpecError, SweepSpec
from clipsim.sweep.store import ResultsStore, StoreMismatchError
from tests.conftest import ROOT, tiny_config

BASE = tiny_config()


def spec_of(temps=(0.1, 0.2), seeds=(0, 1), name="grow", **extra) -> SweepSpec:
    return SweepSpec(name=name, base=BASE, grid={"objective.temperature": list(temps),
                                                 **extra.pop("grid", {})},
                     seeds=list(seeds), **extra)


@pytest.fixture
def computed(monkeypatch) -> list[str]:
    """Replace the computation by one synthetic row per point; record each hash computed."""
    hashes: list[str] = []

    def compute(task):
        configs = task.run_configs()
        hashes.extend(c.hash() for c in configs)
        return pd.DataFrame({
            "sweep": task.sweep, "point": list(task.points),
            "config_hash": [c.hash() for c in configs], "seed": [c.seed for c in configs],
            "step": 40, "final": True, "nonfinite_step": -1,
            "loss": [float(c.objective.temperature) + c.seed for c in configs]})

    monkeypatch.setattr(runner, "compute_chunk", compute)
    monkeypatch.setattr(runner, "metric_columns", lambda points, *args: ["loss"])
    return hashes


def _run(spec, out, **kw):
    return sweep.run(spec, out=out, max_batch=2, quiet=True, **kw)


# ------------------------------------------------------------------ growing
def test_growing_a_sweep_computes_only_the_new_runs(tmp_path, computed):
    out = tmp_path / "s"
    small = spec_of((0.1, 0.2), (0, 1))
    _run(small, out)
    assert len(computed) == 4
    computed.clear()
    big = spec_of((0.1, 0.2, 0.3), (0, 1, 2))
    df = _run(big, out)
    old = set(small.points().hashes)
    assert len(computed) == 5 and not old & set(computed)  # 9 points, 4 reused
    assert list(df["point"]) == list(range(9))
    assert list(df["config_hash"]) == big.points().hashes
    assert list(df["loss"]) == [t + s for t in (0.1, 0.2, 0.3) for s in (0, 1, 2)]
    manifest = ResultsStore(out).read_manifest()
    assert [s["spec_hash"] for s in manifest["specs"]] == [small.hash(), big.hash()]
    assert manifest["num_points"] == 9 and manifest["finished"]
    assert manifest["sessions"][-1]["points_run"] == 5 and manifest["sessions"][-1]["work_run"]


def test_a_smaller_spec_returns_its_points_and_load_returns_every_run(tmp_path, computed):
    out = tmp_path / "s"
    _run(spec_of((0.1, 0.2, 0.3), (0, 1, 2)), out)
    computed.clear()
    one = spec_of((0.3,), (1,))
    df = _run(one, out)
    assert computed == []
    assert list(df["point"]) == [0] and list(df["config_hash"]) == one.points().hashes
    assert df.attrs["other_runs"] == 8
    everything = sweep.load(out)
    assert len(everything) == 9 and everything["config_hash"].is_unique
    assert everything["config_hash"].iloc[0] == one.points().hash(0)  # latest spec first
    assert list(everything["point"]) == list(range(9))


def test_a_field_added_at_its_base_value_and_reordered_values_reuse_every_run(
        tmp_path, computed):
    out = tmp_path / "s"
    _run(spec_of((0.1, 0.2)), out)
    computed.clear()
    lr = BASE.train.learning_rate
    grown = spec_of((0.2, 0.1), grid={"train.learning_rate": [lr]},
                    description="the same runs, said differently")
    df = _run(grown, out)
    assert computed == [] and len(df) == 4
    assert set(df["config_hash"]) == set(spec_of((0.1, 0.2)).points().hashes)


def test_a_description_change_resumes_a_killed_sweep(tmp_path, computed, monkeypatch):
    out = tmp_path / "s"
    spec = spec_of((0.1, 0.2, 0.3))
    original = runner.compute_chunk
    calls = []

    def dies_on_second(task):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(task)

    monkeypatch.setattr(runner, "compute_chunk", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        _run(spec, out)
    monkeypatch.setattr(runner, "compute_chunk", original)
    computed.clear()
    df = _run(spec_of((0.1, 0.2, 0.3), description="now with a description"), out)
    assert len(computed) == 4 and len(df) == 6


def test_another_name_program_or_metric_schema_is_refused(tmp_path, computed, monkeypatch):
    out = tmp_path / "s"
    _run(spec_of(), out)
    before = sorted(p.name for p in ResultsStore(out).part_files())
    with pytest.raises(StoreMismatchError, match="holds sweep 'grow', not sweep 'other'"):
        _run(spec_of(name="other"), out)
    monkeypatch.setitem(engine.PROGRAMS, "other_program",
                        Program("other_program", engine.train_evaluate))
    with pytest.raises(StoreMismatchError) as info:
        _run(spec_of(program="other_program"), out)
    assert "program 'train_evaluate', not 'other_program'" in str(info.value)
    monkeypatch.setattr(runner, "metric_columns", lambda points, *a: ["loss", "new_metric"])
    with pytest.raises(StoreMismatchError, match=r"metric columns its table lacks \(new_metric"):
        _run(spec_of((0.1, 0.5)), out)
    assert sorted(p.name for p in ResultsStore(out).part_files()) == before
    assert computed[4:] == []


# ------------------------------------------------------------------ chains
CHAIN_TOML = """
name = "chained"
[base]
data.num_concepts = 4
data.image_dim = 8
data.text_dim = 8
data.image_unique_dim = 2
data.text_unique_dim = 2
model.embed_dim = 4
eval.top_r = [1, 2]
[grid]
"train.learning_rate" = [0.01, 0.02]
seeds = 2
[[chain]]
grid."objective.name" = ["clip"]
[[chain]]
grid."objective.name" = ["clip_reg"]
grid."objective.reg_weight" = [0.1, 1.0]
seeds = [5]
[[chain]]                        # overlaps the first link: its points are not repeated
grid."objective.name" = ["clip", "clip_reg"]
grid."objective.reg_weight" = [0.1]
"""


def test_chained_grids_are_the_union_of_their_links_without_repeats():
    spec = SweepSpec.from_toml(CHAIN_TOML)
    points = spec.points()
    got = [(p.train.learning_rate, p.objective.name, p.objective.reg_weight, p.seed)
           for p in points]
    default_w = RunConfig().objective.reg_weight
    link1 = [(lr, "clip", default_w, s) for lr in (0.01, 0.02) for s in (0, 1)]
    link2 = [(lr, "clip_reg", w, 5) for lr in (0.01, 0.02) for w in (0.1, 1.0)]
    link3 = [(lr, n, 0.1, s) for lr in (0.01, 0.02) for n in ("clip", "clip_reg")
             for s in (0, 1)]
    want = list(dict.fromkeys(link1 + link2 + link3))
    if default_w != 0.1:  # link 3's clip points differ from link 1's by reg_weight
        assert len(want) == 4 + 4 + 8
    assert got == want and len(spec) == len(points) == len(want)
    assert len(set(points.hashes)) == len(points)
    assert spec.swept_fields == ("train.learning_rate", "objective.name",
                                 "objective.reg_weight", "seed")
    again = SweepSpec.from_dict(spec.to_dict())
    assert again.hash() == spec.hash() and again.points().hashes == points.hashes


def test_chain_links_that_repeat_each_other_are_deduplicated():
    spec = SweepSpec(name="c", base=BASE, seeds=[0, 1], chain=[
        {"grid": {"objective.temperature": [0.1, 0.2]}},
        {"grid": {"objective.temperature": [0.2, 0.3]}}])
    temps = [p.objective.temperature for p in spec.points()]
    assert temps == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]


@pytest.mark.parametrize("chain, message", [
    ([{"grid": {"objective.temperature": [0.1, 0.1]}}], "same config"),
    ([{"grid": {"train.learning_rate": [0.1]}}], "swept twice"),
    ([{"grids": {}}], "'grids' is not a chain link key"),
    ([{"grid": {"objective.temprature": [0.1]}}], "chain link 1: grid: 'objective.temprature'"),
    ([{"seeds": 0}], "chain link 1: seeds = 0"),
    ([{"zip": [{"objective.temperature": [0.1, 0.2], "model.init_scale": [1.0]}]}],
     "chain link 1: zip group 1"),
    ({"grid": {}}, "[[chain]], not [chain]"),
])
def test_bad_chains_are_refused_naming_the_link(chain, message):
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict({"name": "bad", "base": BASE.to_dict(),
                             "grid": {"train.learning_rate": [0.01, 0.02]},
                             "chain": chain}).points()
    assert message in str(info.value)


def test_reg_lambda_trains_plain_clip_once_per_seed():
    spec = SweepSpec.load(os.path.join(ROOT, "experiments/sweeps/reg_lambda.toml"))
    points = spec.points()
    clip = [p for p in points if p.objective.name == "clip"]
    reg = [p for p in points if p.objective.name == "clip_reg"]
    assert len(clip) == 3 and sorted(p.seed for p in clip) == [0, 1, 2]
    assert len(reg) == 6 * 3 and len({p.objective.reg_weight for p in reg}) == 6


# ------------------------------------------------------- points and hashes
def test_fast_point_hashes_equal_config_hashes_and_points_equal_replace():
    default_t = RunConfig().objective.temperature
    spec = SweepSpec(
        name="h", base=BASE.replace(**{"train.learning_rate": 0.02}),
        grid={"objective.temperature": [default_t, 1, 0.3],  # a default, an int, a float
              "eval.top_r": [[1], [1, 2]]},
        zip=({"model.normalize": [True, False], "data.noise_scale": [0.0, 0.2]},),
        seeds=[0, 3, 2**31 - 1])
    points = spec.points()
    assert len(points) == 3 * 2 * 2 * 3
    for i, ov in enumerate(spec.overrides()):
        cfg = BASE.replace(**{"train.learning_rate": 0.02}).replace(**ov)
        assert points[i] == cfg and points.hash(i) == cfg.hash() == points[i].hash()
    assert points.index(points.hash(7)) == 7 and points[-1] == points[len(points) - 1]
    assert points.groups() == engine.group_points(list(points))


def test_a_point_that_fails_a_cross_section_check_names_the_point():
    spec = SweepSpec(name="x", base=BASE, grid={"model.embed_dim": [4, 64]})
    with pytest.raises(SpecError, match=r"point 1 \(model.embed_dim=64, seed=0\).*embed_dim"):
        spec.points()


def test_a_huge_spec_is_refused_before_expansion_naming_limit_and_knob():
    spec = SweepSpec(name="huge", base=BASE,
                     grid={"objective.temperature": [0.01 * (i + 1) for i in range(1000)],
                           "train.learning_rate": [1e-4 * (i + 1) for i in range(100)]},
                     seeds=10)
    with pytest.raises(SpecError) as info:
        spec.points()
    message = str(info.value)
    assert "1,000,000 points" in message and f"{MAX_POINTS:,}" in message
    assert "--max-points" in message and "max_points" in message
    assert spec._points is None  # nothing was expanded


def test_a_hundred_thousand_point_dry_run_plans(tmp_path, capsys):
    """The 10^5-point plan the issue measured at minutes (timed in the report, not here)."""
    path = tmp_path / "big.toml"
    path.write_text("\n".join([
        'name = "big"', "[base]", *(f'"{k}" = {json.dumps(v)}' for k, v in {
            "data.num_concepts": 4, "data.image_dim": 8, "data.text_dim": 8,
            "data.image_unique_dim": 2, "data.text_unique_dim": 2,
            "model.embed_dim": 4, "eval.top_r": [1, 2]}.items()),
        "[grid]",
        f'"objective.temperature" = {[round(0.01 * (i + 1), 4) for i in range(100)]}',
        f'"train.learning_rate" = {[round(1e-4 * (i + 1), 6) for i in range(100)]}',
        "seeds = 10"]))
    assert main(["sweep", str(path), "--out", str(tmp_path / "never"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "100000 points, 1 static group(s)" in printed and "all 100000 runs to do" in printed
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------ dry run
def test_dry_run_reads_the_folder_done_to_do_and_time(tmp_path, computed, capsys):
    out = tmp_path / "s"
    _run(spec_of((0.1, 0.2)), out)
    spec_path = tmp_path / "grow.toml"
    spec_path.write_text("\n".join([
        'name = "grow"', "[base]",
        *(f'"{k}" = {json.dumps(v)}' for k, v in _flat(BASE).items() if v is not None),
        "[grid]", '"objective.temperature" = [0.1, 0.2, 0.3]', "seeds = [0, 1]"]))
    capsys.readouterr()
    before = ResultsStore(out).read_manifest()
    assert main(["sweep", str(spec_path), "--out", str(out), "--dry-run", "--max-batch",
                 "2"]) == 0
    printed = capsys.readouterr().out
    assert "4 of 6 runs done, 2 to do" in printed and "1 chunk(s) to run" in printed
    assert "estimated time: ~" in printed and "recorded session(s)" in printed
    assert ResultsStore(out).read_manifest() == before  # nothing written


def _flat(cfg):
    from clipsim.config import flatten_dict

    return flatten_dict(cfg.to_dict())


# ------------------------------------------------------------------ progress
def test_progress_bar_counts_runs_and_chunks(tmp_path, computed, capsys):
    sweep.run(spec_of((0.1, 0.2, 0.3)), out=tmp_path / "s", max_batch=2, quiet=False)
    err = capsys.readouterr().err
    assert "6/6" in err and "chunks 3/3" in err


# ------------------------------------------------------------------ memory
def test_a_run_over_the_memory_budget_is_refused_before_anything_is_written(tmp_path, capsys):
    spec = SweepSpec(name="m", base=BASE.replace(**{"eval.num_samples": 1_000_000}))
    out = tmp_path / "never"
    with pytest.raises(MemoryBudgetError) as info:
        sweep.run(spec, out=out, quiet=True, memory_budget=2**28)
    assert "eval.num_samples = 1000000" in str(info.value) and "--memory-budget" in str(
        info.value)
    assert not out.exists()
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\n[base]\n' + "\n".join(
        f'"{k}" = {json.dumps(v)}' for k, v in _flat(spec.base).items() if v is not None))
    assert main(["sweep", str(path), "--out", str(out), "--memory-budget", "256MiB"]) == 2
    err = capsys.readouterr().err.strip()
    assert "MiB per run" in err and "\n" not in err and not out.exists()


def test_memory_estimate_grows_as_its_buffers_do():
    """The formula's parts, against hand counts of its largest buffers."""
    cfg = tiny_config()
    small = estimate_run_parts(cfg)
    # evaluation: dense n x n below 1024 rows, row-blocked (linear in n) from there
    n1, n2 = 4000, 8000
    e1 = estimate_run_parts(cfg.replace(**{"eval.num_samples": n1}))["eval"]
    e2 = estimate_run_parts(cfg.replace(**{"eval.num_samples": n2}))["eval"]
    assert e2 - e1 < 2 * (e1 - small["eval"])  # about linear in n ...
    assert e2 - e1 < 0.01 * 4 * 4 * (n2**2 - n1**2)  # ... nowhere near four n x n matrices
    dense = estimate_run_parts(cfg.replace(**{"eval.num_samples": 1000}))["eval"]
    assert dense - small["eval"] > 4 * 4 * (1000**2 - 64**2)  # four n x n float32 matrices
    # training: 5 B^2 dense scores for siglip; blocked (linear in B) for clip from 1024
    sig = [estimate_run_parts(cfg.replace(**{"objective.name": "siglip",
                                             "train.batch_size": b}))["train"]
           for b in (2048, 4096)]
    assert sig[1] - sig[0] > 4 * 5 * (4096**2 - 2048**2)
    clip = [estimate_run_parts(cfg.replace(**{"train.batch_size": b}))["train"]
            for b in (2048, 4096)]
    assert clip[1] - clip[0] < 4 * 4096 * 2048
    # float64 doubles the buffers; a fixed training set adds 3 n_b B S floats
    f64 = estimate_run_parts(cfg.replace(**{"train.dtype": "float64"}))
    assert f64["train"] - engine.RUNTIME_BYTES == 2 * (small["train"] - engine.RUNTIME_BYTES)
    fixed = estimate_run_parts(cfg.replace(**{"train.num_train_batches": 100}))["train"]
    d = cfg.data
    sample = d.image_dim + d.text_dim + 2 * d.num_concepts + d.image_unique_dim + \
        d.text_unique_dim + 1
    assert fixed - small["train"] == 4 * 3 * 100 * cfg.train.batch_size * sample


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_estimate_is_within_twice_the_measured_peak_at_small_shapes():
    """Measured in fresh processes (``benchmarks/memory_estimate.py``), a few seconds each."""
    from benchmarks.memory_estimate import run_cases

    rows = run_cases(["train:B=2048", "eval:n=4000"], parallel=2)
    for row in rows:
        assert "measured" in row, row
        assert 0.5 <= row["ratio"] <= 2, row


def test_random_specs_hash_like_their_configs():
    rng = random.Random(0)
    for _ in range(5):
        temps = rng.sample([0.05, 0.1, 0.2, 0.5, 1.0], 2)
        seeds = rng.sample(range(10), 2)
        spec = SweepSpec(name="r", base=BASE, grid={"objective.temperature": temps},
                         seeds=seeds, chain=[{"grid": {"train.steps": [20, 40]}},
                                             {"grid": {"data.noise_scale": [0.0, 0.1]}}])
        points = spec.points()
        assert [p.hash() for p in points] == points.hashes
