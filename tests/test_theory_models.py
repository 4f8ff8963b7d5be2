"""The exact statements measured on random, oracle and trained encoders."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import clipsim
from clipsim.cli import main
from clipsim.theory.report import bounds_table
from clipsim.train import TrainResult, init_params
from tests.conftest import tiny_config


def _random_model(cfg: clipsim.RunConfig) -> TrainResult:
    key = jax.random.key(cfg.seed)
    return TrainResult(params=init_params(cfg, key=key), history={}, config=cfg, key=key)


def _rows(result, **kw) -> dict[str, dict]:
    return {r["statement"].split(" ")[0] + ":" + r["statement"]: r
            for r in bounds_table(result, **kw)}


def _only(rows: dict[str, dict], prefix: str) -> list[dict]:
    return [r for k, r in rows.items() if k.startswith(prefix + ":")]


ONEHOT_CASES = [(4, 16), (10, 64), (32, 32)]


@pytest.mark.parametrize(("k", "b"), ONEHOT_CASES)
@pytest.mark.parametrize("model", ["oracle", "random"])
@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_clip_loss_never_below_the_collision_floor_onehot(k, b, model):
    cfg = tiny_config(**{"data.num_concepts": k, "data.image_dim": k + 4,
                         "data.text_dim": k + 4, "train.batch_size": b,
                         "eval.num_samples": 256})
    subject = cfg if model == "oracle" else _random_model(cfg)
    (floor,) = _only(_rows(subject, num_batches=48), "E3")
    assert floor["holds"], floor
    assert floor["measured"] >= floor["bound"] - 3 * floor["mc_error"]


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_clip_loss_never_below_the_collision_floor_sparse():
    cfg = tiny_config(**{"data.family": "sparse", "data.num_concepts": 4,
                         "data.sparse_prob": 0.3, "train.batch_size": 32,
                         "train.steps": 200, "eval.num_samples": 256})
    for subject in (cfg, _random_model(cfg), clipsim.train(cfg)):
        (floor,) = _only(_rows(subject, num_batches=48), "E3")
        assert floor["bound"] > 0.1  # collisions are common: the floor is not trivial
        assert floor["holds"], floor


def test_every_statement_holds_on_trained_models(learned_runs):
    for result, _ in learned_runs[:2]:
        rows = bounds_table(result)
        failed = [r for r in rows if not r["holds"]]
        assert not failed, failed
        names = {r["statement"].split(" ")[0] for r in rows}
        assert names == {"E1", "E2", "E3", "E4", "E5", "E6", "E7"}


def test_trained_loss_approaches_the_floor(learned_runs):
    """Not an exact statement: a well-trained model sits within 10% of the E3 floor."""
    (floor,) = _only(_rows(learned_runs[0][0]), "E3")
    assert floor["bound"] <= floor["measured"] <= 1.1 * floor["bound"]


def test_e4_bounds_hold_for_the_oracle():
    cfg = tiny_config(**{"train.batch_size": 32, "eval.num_samples": 256})
    e4 = _only(_rows(cfg, num_batches=64), "E4")
    assert len(e4) == 2 and all(r["holds"] for r in e4)


def test_class_prior_shift_identity_and_tv_bound_on_an_imperfect_model():
    """A random encoder errs on some classes: the shifted error is the reweighted one."""
    probs = (0.7, 0.1, 0.1, 0.1)
    cfg = tiny_config(**{"eval.num_samples": 4000, "eval.test_class_probs": probs})
    rows = _only(_rows(_random_model(cfg)), "E7")
    identity, tv = rows
    assert 0.05 < identity["measured"] < 0.95  # errors are neither 0 nor 1
    assert identity["holds"] and tv["holds"]
    assert tv["bound"] == pytest.approx(0.5 * np.abs(np.array(probs) - 0.25).sum())


def test_bounds_command_reads_a_run_folder(tmp_path, capsys):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(tiny_config().to_toml())
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["bounds", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    for name in ("E1", "E2", "E3", "E4", "E5", "E6", "E7"):
        assert name in printed
    assert "FAILS" not in printed and "holds" in printed
    assert main(["bounds", str(tmp_path / "nowhere")]) == 2
