"""Results are a function of config and seed only: 64-bit JAX on or off changes nothing.

Each check trains and evaluates small runs with plain ``clipsim.train`` and
``clipsim.evaluate`` in a fresh Python process (``JAX_ENABLE_X64`` is read at
start-up; both functions compute inside ``clipsim.config.precision`` of the run's
dtype), writes every number it produced, and the test compares them exactly:
training history, every evaluation metric, and the trained parameters' bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # two fresh processes, each compiling every program

# Three float32 runs that cover the random draws of every built-in family, caption
# omission, nonlinear mixing, both encoder kinds and a shifted test prior.
_PROGRAM = r'''
import hashlib, json, sys
import jax
import numpy as np
import clipsim
from clipsim.config import RunConfig

TINY = {
    "data": {"num_concepts": 4, "image_dim": 8, "text_dim": 8, "image_unique_dim": 2,
             "text_unique_dim": 2, "omit_prob": 0.2},
    "model": {"embed_dim": 4},
    "train": {"steps": 20, "batch_size": 16, "log_every": 10},
    "eval": {"num_samples": 64, "top_r": [1, 2], "num_prompts": 2},
}
CASES = {
    "onehot": {"data.class_probs": [0.4, 0.3, 0.2, 0.1],
               "eval.test_class_probs": [0.1, 0.2, 0.3, 0.4]},
    "sparse": {"data.family": "sparse", "data.sparse_prob": 0.3, "model.kind": "mlp2",
               "model.hidden_dim": 8, "objective.name": "siglip"},
    "gaussian": {"data.family": "gaussian", "data.num_classes": 3,
                 "data.mixing": "nonlinear", "objective.learn_temperature": True,
                 "seed": 3},
}


def numbers(cfg):
    result = clipsim.train(cfg)
    report = clipsim.evaluate(result)
    leaves = jax.tree.leaves(result.params)
    return {
        "history": {k: np.asarray(v).tolist() for k, v in result.history.items()},
        "report": {k: float(v) for k, v in report.metrics.items()},
        "params": hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in leaves)).hexdigest(),
        "dtypes": sorted({str(a.dtype) for a in leaves}),
    }


base = RunConfig.from_dict(TINY)
out = {"x64": bool(jax.config.jax_enable_x64)}
for name, overrides in CASES.items():
    out[name] = numbers(base.replace(**overrides))
if sys.argv[1] == "float64":
    # a float64 run in a process whose x64 is off, then float32 again
    out["float64"] = numbers(base.replace(**{**CASES["onehot"], "train.dtype": "float64"}))
    out["after_float64"] = numbers(base.replace(**CASES["onehot"]))
    out["x64_after"] = bool(jax.config.jax_enable_x64)
print(json.dumps(out))
'''


def _run(x64: str, mode: str = "plain") -> dict:
    env = {**os.environ, "JAX_ENABLE_X64": x64, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", _PROGRAM, mode], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_identical(a: dict, b: dict, what: str) -> None:
    assert a["params"] == b["params"], f"{what}: trained parameters differ"
    assert a["history"] == b["history"], f"{what}: training history differs"
    # json floats compare exactly; NaN metrics (not applicable to the run) compare by str
    diff = {k: (a["report"][k], b["report"].get(k)) for k in a["report"]
            if str(a["report"][k]) != str(b["report"].get(k))}
    assert not diff and a["report"].keys() == b["report"].keys(), f"{what}: {diff}"


@pytest.fixture(scope="module")
def off_and_on() -> tuple[dict, dict]:
    return _run("0", "float64"), _run("1")


def test_float32_runs_are_bitwise_identical_with_x64_off_and_on(off_and_on):
    off, on = off_and_on
    assert not off["x64"] and on["x64"]
    for case in ("onehot", "sparse", "gaussian"):
        assert off[case]["dtypes"] == ["float32"]
        assert len(off[case]["report"]) > 20
        _assert_identical(off[case], on[case], case)


def test_a_float64_run_changes_nothing_for_later_float32_runs(off_and_on):
    off, _ = off_and_on
    _assert_identical(off["onehot"], off["after_float64"], "after a float64 run")
    assert off["x64_after"] is False  # the scope left the process setting alone


def test_float64_run_needs_no_global_switch(off_and_on):
    off, _ = off_and_on
    run64 = off["float64"]
    assert run64["dtypes"] == ["float64"]
    assert run64["params"] != off["onehot"]["params"]
    finite = [v for v in run64["history"]["loss"] if v == v]
    assert len(finite) == len(run64["history"]["loss"])
