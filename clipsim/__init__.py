"""clipsim: simulate the theory of CLIP-style multimodal contrastive learning.

Data flows one way: config -> generator -> encoders -> objective -> trainer ->
metrics/bounds -> results table -> plots. The main entry points:

    >>> import jax, clipsim                                     # doctest: +SKIP
    >>> cfg = clipsim.RunConfig.load("experiments/configs/onehot_linear.toml")  # doctest: +SKIP
    >>> result = clipsim.train(cfg, key=jax.random.key(0))      # doctest: +SKIP
    >>> report = clipsim.evaluate(result, key=jax.random.key(1))  # doctest: +SKIP
"""

import os as _os

# XLA's concurrency-optimized CPU scheduler can deadlock batched (vmapped)
# programs with LAPACK calls on small machines (seen with jax 0.10: the process
# idles forever in BlockUntilReady). The flag must be set before JAX starts its
# CPU backend; users can still override it through XLA_FLAGS.
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=false").strip()

from clipsim.config import (
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
)
from clipsim.evaluation import Report, evaluate
from clipsim.sweep.summary import summarize
from clipsim.train import NonFiniteLossError, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "TrainConfig",
    "Report",
    "evaluate",
    "NonFiniteLossError",
    "TrainResult",
    "train",
    "summarize",
    "__version__",
]
