"""clipsim: simulate the theory of CLIP-style multimodal contrastive learning.

Data flows one way: config -> generator -> encoders -> objective -> trainer ->
metrics/bounds -> results table -> plots. The main entry points:

    >>> import clipsim                                          # doctest: +SKIP
    >>> cfg = clipsim.RunConfig.load("experiments/configs/onehot_linear.toml")  # doctest: +SKIP
    >>> result = clipsim.train(cfg)                             # doctest: +SKIP
    >>> report = clipsim.evaluate(result)                       # doctest: +SKIP
"""

from clipsim.analysis import Analysis, analyze
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
    "Analysis",
    "analyze",
    "NonFiniteLossError",
    "TrainResult",
    "train",
    "summarize",
    "__version__",
]
