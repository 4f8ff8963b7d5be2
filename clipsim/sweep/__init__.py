"""Parameter sweeps: one declarative file, one command, one tidy table.

    >>> import clipsim.sweep                                          # doctest: +SKIP
    >>> df = clipsim.sweep.run("experiments/sweeps/quick_tau.toml", out="runs/quick_tau")
    >>> clipsim.summarize(df, by=["objective.temperature"], metrics=["zs_accuracy"])

A ``SweepSpec`` (TOML: ``base`` config, ``grid``, ``zip`` groups, ``seeds``) expands
into validated points; points sharing a static signature run a ``Program`` (default: train, then
evaluate) as one compiled ``jit(vmap(...))`` per chunk (``engine``), locally or on dask
(``backends``); each finished chunk is written atomically into a results folder
(``store``) so an interrupted sweep resumes where it stopped.
"""

from clipsim.sweep.cache import enable_compilation_cache
from clipsim.sweep.engine import (
    DEFAULT_MEMORY_BUDGET,
    PROGRAMS,
    TRAIN_EVALUATE,
    Program,
    RunOutput,
    estimate_run_bytes,
    register_program,
    run_batch,
)
from clipsim.sweep.runner import NonFiniteRunWarning, run
from clipsim.sweep.spec import SpecError, SweepSpec
from clipsim.sweep.store import ResultsStore, StoreMismatchError, SweepError, load
from clipsim.sweep.summary import summarize

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "NonFiniteRunWarning",
    "PROGRAMS",
    "Program",
    "ResultsStore",
    "RunOutput",
    "SpecError",
    "StoreMismatchError",
    "SweepError",
    "SweepSpec",
    "TRAIN_EVALUATE",
    "enable_compilation_cache",
    "estimate_run_bytes",
    "load",
    "register_program",
    "run",
    "run_batch",
    "summarize",
]
