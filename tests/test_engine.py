"""The one engine: the generic loop, programs through the sweep engine, shared data streams."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clipsim import sweep
from clipsim.sweep import engine
from clipsim.sweep.store import StoreMismatchError
from clipsim.train import fit
from tests.conftest import ROOT, tiny_config

TEMPS = [0.1, 0.3, 1.0]


def _loss_metrics(cfg, key) -> sweep.RunOutput:
    """A custom program: train, then a scalar and a vector metric."""
    from clipsim.train import train_program

    out = train_program(cfg, key)
    w = out.params["encoders"]["image"]["w"]
    return sweep.RunOutput(history=out.history,
                           metrics={"w_norm": jnp.linalg.norm(w),
                                    "row_norms": jnp.linalg.norm(w, axis=1)},
                           first_bad_step=out.first_bad_step)


NORMS = sweep.Program("test/norms", _loss_metrics)


def _spec(name: str = "prog", seeds: int = 2) -> sweep.SweepSpec:
    return sweep.SweepSpec(name=name, base=tiny_config(),
                           grid={"objective.temperature": TEMPS}, seeds=seeds)


def test_fit_learns_a_quadratic_and_skips_a_nonfinite_step() -> None:
    target = jnp.arange(3.0)

    def loss_fn(params, batch):
        loss = jnp.sum((params - target) ** 2) * batch
        return loss, {"twice": 2 * loss}

    bad_at = 7
    batch_fn = lambda step: jnp.where(step == bad_at, jnp.inf, 1.0)  # noqa: E731
    out = jax.jit(lambda p: fit(loss_fn, p, optax.sgd(0.1), batch_fn, steps=40,
                                log_every=10))(jnp.zeros(3))
    assert int(out.first_bad_step) == bad_at
    np.testing.assert_allclose(out.params, target, atol=1e-3)
    assert out.history["loss"].shape == (4,)
    assert list(np.asarray(out.history["step"])) == [10, 20, 30, 40]
    assert out.history["loss"][-1] < 1e-3 < out.history["loss"][1]


def test_fit_refuses_a_step_count_off_the_log_cadence() -> None:
    with pytest.raises(ValueError, match="log_every"):
        fit(lambda p, b: (jnp.sum(p), {}), jnp.zeros(2), optax.sgd(0.1), lambda s: 0,
            steps=15, log_every=10)


def test_custom_program_runs_through_the_store_and_resumes(tmp_path, monkeypatch) -> None:
    out = tmp_path / "norms"
    df = sweep.run(_spec(), out=out, program=NORMS, quiet=True)
    final = df[df["final"]]
    assert len(final) == len(TEMPS) * 2
    d = tiny_config().model.embed_dim
    assert [f"row_norms[{i}]" for i in range(d)] == [c for c in df if c.startswith("row_norms")]
    rows = final[[f"row_norms[{i}]" for i in range(d)]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), final["w_norm"], rtol=1e-5)

    calls = []
    monkeypatch.setattr(engine, "run_batch", lambda *a, **k: calls.append(a))
    again = sweep.run(_spec(), out=out, program=NORMS, quiet=True)
    assert not calls  # every run read back from the store
    assert again.equals(df)


def test_a_folder_of_one_program_is_refused_to_another(tmp_path) -> None:
    out = tmp_path / "two"
    sweep.run(_spec(seeds=1), out=out, program=NORMS, quiet=True)
    with pytest.raises(StoreMismatchError):
        sweep.run(_spec(seeds=1), out=out, quiet=True)


def test_unknown_program_name_is_a_spec_error() -> None:
    spec = sweep.SweepSpec.from_dict({"name": "x", "program": "no_such_program"})
    with pytest.raises(sweep.SpecError, match="no_such_program"):
        sweep.run(spec, out="/nonexistent/never-written", quiet=True)


def test_planner_cuts_by_seed_so_runs_share_their_batches() -> None:
    points = _spec(seeds=2).points()
    tasks = engine.plan_chunks("prog", points, range(len(points)))
    assert len(tasks) == 2
    for task in tasks:
        assert len({c["seed"] for c in task.configs}) == 1
        assert task.shared_key


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
@pytest.mark.parametrize(("dtype", "rtol"), [("float32", 2e-5), ("float64", 1e-12)])
def test_shared_data_stream_matches_separate_runs(dtype: str, rtol: float) -> None:
    """Runs of one seed draw each batch once; each run's numbers are its own.

    Not bitwise: a batched program and a single-run one are different XLA programs
    and round differently (measured: 5e-7 in float32, 2e-15 in float64). In float64
    the agreement to 1e-12 rules out any difference in the data a run sees (another
    batch would move the loss by ~1e-1).
    """
    configs = [tiny_config(**{"objective.temperature": t, "train.dtype": dtype}) for t in TEMPS]
    together = engine.run_batch(configs)  # one seed: key and batches shared
    for i, cfg in enumerate(configs):
        alone = engine.run_batch([cfg])
        for name, value in alone.metrics.items():
            np.testing.assert_allclose(together.metrics[name][i], value[0], rtol=rtol,
                                       atol=rtol / 10, err_msg=name)
        for name, value in alone.history.items():
            np.testing.assert_allclose(together.history[name][i], value[0], rtol=rtol,
                                       atol=rtol / 10, err_msg=name)


def test_register_program_refuses_a_second_function_under_one_name() -> None:
    engine.register_program(NORMS, replace=True)
    with pytest.raises(ValueError, match="already registered"):
        engine.register_program(sweep.Program("test/norms", lambda c, k: None))
    assert engine.get_program("test/norms") is NORMS


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_import_keeps_matplotlib_backend_and_user_xla_flags() -> None:
    code = ("import os, matplotlib; b = matplotlib.get_backend(); "
            "import clipsim, clipsim.plots, clipsim.sweep; "
            "assert matplotlib.get_backend() == b, (b, matplotlib.get_backend()); "
            "print(os.environ.get('XLA_FLAGS'))")
    assert _python(code, {"XLA_FLAGS": "--xla_dump_to=/tmp/nowhere"}) == \
        "--xla_dump_to=/tmp/nowhere"


def test_cpu_scheduler_protection_keeps_the_users_flags() -> None:
    code = ("import os; from clipsim.runtime import protect_cpu_scheduler; "
            "protect_cpu_scheduler(); protect_cpu_scheduler(); print(os.environ['XLA_FLAGS'])")
    assert _python(code, {"XLA_FLAGS": "--xla_a=1"}) == \
        "--xla_a=1 --xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_summarize_leaves_out_diverged_runs_with_a_warning() -> None:
    import pandas as pd

    from clipsim import summarize

    df = pd.DataFrame({"config_hash": ["a", "b", "c"], "final": True, "x": [0.0, 0.0, 1.0],
                       "nonfinite_step": [-1, -1, 12], "m": [1.0, 3.0, 100.0]})
    with pytest.warns(RuntimeWarning, match="left out 1 run"):
        out = summarize(df, by="x", metrics="m")
    assert list(out["m_mean"]) == [2.0]
    kept = summarize(df, by="x", metrics="m", include_diverged=True)
    assert list(kept["m_mean"]) == [2.0, 100.0]
