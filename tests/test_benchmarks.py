"""The benchmark runner's workloads still run against the library (quick sizes, no timings)."""

from __future__ import annotations

import pytest


@pytest.mark.slow  # compiles the sweep and four fresh CLI processes: a few minutes
def test_w1_quick_compares_like_with_like() -> None:
    from benchmarks.w1_sweep import run

    res = run(quick=True, repeats=1, log=lambda *_: None, torch_ok=False)
    # the naive loop trains the sweep's own runs: same data, same initialization
    assert res["naive_vs_sweep_final_loss_max_abs_diff"] < 1e-4
    assert res["settings"]["chunk_shares_data"]
    assert res["sweep_traces_after_all_rounds"] == 1
    assert res["hot_path"]["host_callbacks_in_program"] == {}
    assert res["cli"]["second_reuses_cache"]
    assert res["cli"]["sweep_compiles_first"] >= 1  # the probe recognizes the sweep program
    assert res["cli"]["memory_budget"]["rss_exec_increment"] > 0
    assert set(res["model_steps_per_s"]) == {"sweep", "sweep_program", "naive_jax"}
