"""Shared fixtures: small configs and trained runs reused across tests.

JAX compile time dominates small tests, so trained runs are session-scoped and
the set of distinct static signatures is kept small.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import clipsim
from clipsim.runtime import protect_cpu_scheduler
from clipsim.sweep.cache import enable_compilation_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

protect_cpu_scheduler()  # before the first JAX computation of the session
# One persistent compilation cache for every test process (pytest-xdist workers and
# the subprocesses tests start), so a program compiled once is loaded, not recompiled.
os.environ.setdefault("CLIPSIM_CACHE_DIR", os.path.join(ROOT, ".jax_cache"))
enable_compilation_cache()

# Property tests draw the same examples on every run (a red CI is then a real, repeatable
# failure, never an unlucky draw); CLIPSIM_HYPOTHESIS=explore draws new ones each run.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("CLIPSIM_HYPOTHESIS", "repeatable"))

LEARNING_CONFIG = "experiments/configs/onehot_linear.toml"


def learning_config() -> clipsim.RunConfig:
    """The README's basic setting: linear CLIP, one-hot K = 10, dx = dy = 32, d = 16."""
    return clipsim.RunConfig.load(os.path.join(ROOT, LEARNING_CONFIG))


def tiny_config(**overrides) -> clipsim.RunConfig:
    """A few-second config for mechanics tests (not for learning claims)."""
    base = clipsim.RunConfig.from_dict({
        "data": {"num_concepts": 4, "image_dim": 8, "text_dim": 8, "image_unique_dim": 2,
                 "text_unique_dim": 2},
        "model": {"embed_dim": 4},
        "train": {"steps": 40, "batch_size": 16, "log_every": 10},
        "eval": {"num_samples": 64, "top_r": [1, 2]},
    })
    return base.replace(**overrides) if overrides else base


@pytest.fixture(scope="session")
def learned_runs() -> list[tuple[clipsim.TrainResult, clipsim.Report]]:
    """The learning config trained and evaluated for seeds 0, 1, 2."""
    cfg = learning_config()
    runs = []
    for seed in range(3):
        result = clipsim.train(cfg.replace(seed=seed))
        runs.append((result, clipsim.evaluate(result)))
    return runs
