"""``python -m benchmarks.gpu_check --tiny`` runs on CPU and writes the JSON the GPU run writes.

The check runs from the source tree with ``PYTHONPATH=.`` in a fresh process, as on
the GPU machine; the test reads its JSON: every section ran without error, the
rates are positive and side by side, and no module outside the GPU machine's
packages was imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a fresh process compiling every benchmark program
def test_gpu_check_tiny_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLIPSIM_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--out", str(out),
         "--budget-s", "1e9"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny"
    assert res["device"]["jax_backend"] == "cpu" and res["device"]["jax_device_kind"]
    for section in ("w1", "large_batch", "evaluate"):
        assert "error" not in res[section], res[section].get("traceback")
        assert "skipped" not in res[section]
    w1 = res["w1"]
    assert w1["runs"] == 2 and w1["steps"] == 20
    assert w1["model_steps_per_s"]["sweep"] > 0 and w1["model_steps_per_s"]["naive_jax"] > 0
    assert set(w1["ratios"]) >= {"sweep/naive_jax"}
    large = res["large_batch"]
    for name in ("blocked", "dense"):
        assert large[name]["batch_size"] == 1024 and large[name]["steps_per_s"] > 0
        assert 0 < large[name]["fraction_of_peak"]
    assert large["dense_step_over_blocked_step"] > 0
    assert res["evaluate"]["n"] == 5000 and res["evaluate"]["seconds"] > 0
    assert {"sweep", "naive_jax", "large_batch_blocked_steps_per_s"} <= set(res["rates"])
    assert res["forbidden_imported"] == []
    assert res["unexpected_modules"] == [], res["imported_modules"]
    assert res["wall_s"] > 0
