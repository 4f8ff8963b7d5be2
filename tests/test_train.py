"""The trainer: it learns, it is deterministic, it vmaps, it stays finite or says why."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clipsim
from clipsim.train import NonFiniteLossError, train_program
from tests.conftest import learning_config, tiny_config


# ------------------------------------------------------------------ learning
def test_linear_clip_learns_zero_shot_on_onehot(learned_runs):
    """>= 95% zero-shot top-1 within 500 steps, for each of 3 seeds."""
    for result, report in learned_runs:
        assert result.config.train.steps == 500
        assert report["zs_accuracy"] >= 0.95, report.metrics
        # the loss fell by more than a nat from its start near log B (it cannot reach
        # zero: same-class pairs in a batch put a floor under it, THEORY.md E3)
        assert result.history["loss"][-1] < result.history["loss"][0] - 1.0


def test_recovery_keeps_shared_drops_unique(learned_runs):
    for _, report in learned_runs:
        assert report["r2_shared"] >= 0.9, report.metrics
        assert report["r2_image_unique"] <= 0.2, report.metrics
        assert report["unique_share_image"] < 0.05


def test_unique_weight_share_falls_during_training(learned_runs):
    for result, _ in learned_runs:
        share = result.history["unique_share_image"]
        assert share[-1] < 0.2 * share[0]


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_align_only_collapses_to_chance():
    """Without negatives, the same data and encoder collapse: zero-shot near chance."""
    cfg = learning_config().replace(**{"objective.name": "align_only", "train.steps": 3000,
                                       "train.log_every": 100})
    report = clipsim.evaluate(clipsim.train(cfg))
    chance = 1.0 / cfg.data.num_concepts
    assert report["zs_accuracy"] <= 2 * chance, report.metrics
    assert report["positive_cosine"] > 0.99  # perfectly "aligned"...
    assert report["uniformity_a"] > -1.0     # ...but not spread out


# --------------------------------------------------------------- mechanics
@pytest.fixture(scope="module")
def tiny_program():
    return jax.jit(train_program)


def test_determinism(tiny_program):
    cfg = tiny_config()
    a = tiny_program(cfg, jax.random.key(3))
    b = tiny_program(cfg, jax.random.key(3))
    for name in a.history:
        np.testing.assert_array_equal(a.history[name], b.history[name])
    c = tiny_program(cfg, jax.random.key(4))
    assert not np.array_equal(a.history["loss"], c.history["loss"])


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_vmap_over_seeds_equals_separate_runs(tiny_program):
    cfgs = [tiny_config(seed=s, **{"objective.temperature": t, "train.learning_rate": lr})
            for s, t, lr in [(0, 0.1, 0.01), (1, 0.2, 0.01), (2, 0.1, 0.03), (3, 0.5, 0.02)]]
    keys = jnp.stack([jax.random.key(c.seed) for c in cfgs])
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cfgs)
    batched = jax.jit(jax.vmap(train_program))(stacked, keys)
    for i, cfg in enumerate(cfgs):
        single = tiny_program(cfg, keys[i])
        for name in single.history:
            np.testing.assert_allclose(batched.history[name][i], single.history[name],
                                       atol=1e-5, rtol=1e-5)
        flat_b = [a[i] for a in jax.tree.leaves(batched.params)]
        for x, y in zip(flat_b, jax.tree.leaves(single.params), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-5)


def test_history_has_one_entry_per_log_block():
    result = clipsim.train(tiny_config())
    assert result.history["step"].tolist() == [10, 20, 30, 40]
    for name in ("loss", "pos_mean", "neg_mean", "accuracy", "margin", "temperature"):
        assert result.history[name].shape == (4,)
    assert result.config == tiny_config()


@pytest.mark.parametrize("tau", [0.01, 0.001])
def test_float32_training_at_tiny_temperature_stays_finite(tau):
    result = clipsim.train(tiny_config(**{"objective.temperature": tau}))
    assert all(np.all(np.isfinite(v)) for k, v in result.history.items() if k != "temperature")
    leaves = jax.tree.leaves(result.params)
    assert all(np.all(np.isfinite(x)) for x in leaves)


def test_non_finite_loss_raises_with_step_and_config():
    cfg = tiny_config(**{"objective.name": "square", "model.normalize": False,
                         "train.optimizer": "sgd", "train.learning_rate": 1e3,
                         "train.momentum": 0.0})
    with pytest.raises(NonFiniteLossError, match=r"step \d+.*config [0-9a-f]{12}"):
        clipsim.train(cfg)


@pytest.mark.parametrize("overrides", [
    {"train.optimizer": "sgd", "train.learning_rate": 0.5},
    {"train.optimizer": "adamw", "train.weight_decay": 0.01, "train.schedule": "cosine",
     "train.warmup_steps": 10},
    {"train.num_train_batches": 2},
    {"objective.learn_temperature": True, "objective.temperature": 0.2},
])
def test_optimizer_variants_reduce_the_loss(overrides):
    result = clipsim.train(tiny_config(**{**overrides, "train.steps": 100}))
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_learned_temperature_respects_its_floor():
    cfg = tiny_config(**{"objective.learn_temperature": True, "objective.temperature": 0.02,
                         "objective.min_temperature": 0.02, "train.learning_rate": 0.1})
    result = clipsim.train(cfg)
    assert np.all(result.history["temperature"] >= 0.02 - 1e-6)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_fixed_training_set_is_reused():
    """With one fixed batch, the training loss falls below the loss on fresh data."""
    cfg = tiny_config(**{"train.num_train_batches": 1, "train.steps": 200,
                         "data.noise_scale": 0.5, "model.kind": "mlp2"})
    result = clipsim.train(cfg)
    report = clipsim.evaluate(result)
    assert result.history["loss"][-1] < report["eval_loss"]


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_float64_needs_no_global_switch():
    cfg = tiny_config(**{"train.dtype": "float64"})
    x64 = bool(jax.config.jax_enable_x64)
    result = clipsim.train(cfg)
    assert result.params["encoders"]["image"]["w"].dtype == jnp.float64
    report = clipsim.evaluate(result)
    assert np.isfinite(report["eval_loss"])
    assert bool(jax.config.jax_enable_x64) == x64  # the process setting is untouched


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_training_in_segments_equals_one_program(monkeypatch) -> None:
    """``train`` runs bounded segments (for Ctrl-C); the numbers are the one-piece program's."""
    from clipsim.train import loop

    cfg = tiny_config()
    whole = jax.jit(loop.train_program)(cfg, jax.random.key(cfg.seed))
    monkeypatch.setattr(loop, "SEGMENT_WORK", cfg.train.log_every * cfg.train.batch_size)
    assert loop._segments(cfg) == [1] * cfg.train.num_logs
    pieces = loop.train(cfg)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(pieces.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(whole.history["loss"]), pieces.history["loss"])
    np.testing.assert_array_equal(np.asarray(whole.history["step"]), pieces.history["step"])


def test_report_is_a_mapping(learned_runs) -> None:
    _, report = learned_runs[0]
    assert "zs_accuracy" in report and dict(report)["zs_accuracy"] == report["zs_accuracy"]
    assert len(report) == len(report.metrics)


def test_a_run_whose_embeddings_overflow_is_flagged_degenerate() -> None:
    from clipsim.train import DegenerateRunWarning

    with pytest.warns(DegenerateRunWarning, match="degenerate"):
        clipsim.train(tiny_config(**{"model.init_scale": 1e30}))


def test_degenerate_reason_sees_constant_loss_and_bad_params() -> None:
    from clipsim.train import degenerate_reason

    assert degenerate_reason({"loss": np.array([1.5, 1.2, 1.1])}) is None
    assert "stayed" in degenerate_reason({"loss": np.full(4, np.log(16.0))})
    bad = {"w": np.array([1.0, np.inf])}
    assert "finite" in degenerate_reason({"loss": np.array([1.0, 0.5])}, bad)
