"""Shared machinery of the reproduction scripts in ``experiments/``.

An experiment states its prediction and criterion *before* it runs (a
``Prediction``), runs its grid through the sweep engine (``run_grid``), decides a
verdict from the criterion, and writes ``<name>.png`` and ``<name>.json`` with
``finish``. Verdicts are ``confirmed``, ``not confirmed`` or ``inconclusive``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clipsim.config import RunConfig
from clipsim.io import package_versions as versions

__all__ = ["Prediction", "versions", "verdict", "run_grid", "final_rows", "seed_stats",
           "finish", "run_stacked", "run_script", "CONFIRMED", "NOT_CONFIRMED", "INCONCLUSIVE"]

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not confirmed", "inconclusive"


@dataclass(frozen=True)
class Prediction:
    """A prediction of THEORY.md section 6 and the criterion that decides it.

    Attributes:
        key: "P1" ... "P8", or "X1" for extensions.
        name: the experiment name (script and output file stem).
        title: a short title for the report.
        claim: the paper's claim in one or two sentences.
        criterion: the test applied to the numbers, fixed before running.
    """

    key: str
    name: str
    title: str
    claim: str
    criterion: str


def verdict(passed: bool | None) -> str:
    """``confirmed`` (True), ``not confirmed`` (False) or ``inconclusive`` (None)."""
    if passed is None:
        return INCONCLUSIVE
    return CONFIRMED if passed else NOT_CONFIRMED


def run_grid(name: str, base: RunConfig, grid: dict[str, list], *, seeds: int | list[int],
             out: Path, quiet: bool = True, zip_groups: list[dict[str, list]] | None = None,
             max_batch: int | None = None) -> pd.DataFrame:
    """Run ``base`` over ``grid`` (cartesian) x ``zip_groups`` x ``seeds`` with the sweep engine.

    Results go to ``out/<name>_sweep/`` (resumable), and the full table is returned.
    """
    from clipsim import sweep

    spec = sweep.SweepSpec(name=name, base=base, grid=grid, zip=zip_groups or [],
                           seeds=list(range(seeds)) if isinstance(seeds, int) else list(seeds))
    return sweep.run(spec, out=Path(out) / f"{name}_sweep", quiet=quiet, max_batch=max_batch)


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows holding end-of-training evaluation metrics (one per run)."""
    return df[df["final"]].copy()


def seed_stats(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, standard error and count of ``metric`` across seeds, per group of ``by``."""
    rows = final_rows(df) if "final" in df else df
    g = rows.groupby(by, sort=True)[metric]
    stats = g.agg(mean="mean", std="std", n="count").reset_index()
    stats["se"] = stats["std"].fillna(0.0) / np.sqrt(stats["n"])
    return stats.drop(columns="std")


def finish(prediction: Prediction, *, out: Path, fig: Any, passed: bool | None,
           key_numbers: dict[str, Any], numbers: dict[str, Any], configs: dict[str, Any],
           seeds: list[int], started: float, quick: bool, summary: str) -> dict[str, Any]:
    """Save the figure and the JSON record; return the record.

    Args:
        prediction: what was tested and how.
        out: output folder.
        fig: a matplotlib figure (saved as ``<name>.png`` in the shared style).
        passed: the criterion's outcome (None when the data cannot decide).
        key_numbers: a few headline numbers for the report table.
        numbers: every number behind the figure (JSON-serializable).
        configs: the base config(s) and grids, as dicts.
        seeds: the seeds used.
        started: ``time.perf_counter()`` at the start of the experiment.
        quick: whether this was a quick run.
        summary: one paragraph saying what was found.
    """
    from clipsim.io import dumps
    from clipsim.plots import save

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save(fig, out / f"{prediction.name}.png")
    record = {
        **asdict(prediction),
        "prediction": prediction.key,
        "verdict": verdict(passed),
        "quick": quick,
        "summary": summary,
        "key_numbers": key_numbers,
        "numbers": numbers,
        "configs": configs,
        "seeds": list(seeds),
        "versions": versions(),
        "runtime_s": time.perf_counter() - started,
    }
    (out / f"{prediction.name}.json").write_text(dumps(record))
    return record


def run_stacked(fn: Any, configs: list[RunConfig]) -> Any:
    """Apply ``fn(cfg, key)`` to configs sharing their static fields as one ``jit(vmap(fn))``.

    For experiments that need more than the sweep table (trained parameters, or
    quantities the evaluation does not compute): ``fn`` is any pure function of a
    run config and its key, typically calling ``clipsim.train.train_program``.
    Each run's key is ``jax.random.key(cfg.seed)``, as in ``clipsim.train`` and
    the sweep engine, so a run here trains exactly like the same point there.

    Config leaves equal across all runs are passed once (``in_axes=None``), not
    stacked. Besides saving work, this keeps the dataset's mixing matrices
    (``make_world``, a QR factorization per matrix) out of the batch: under
    ``vmap`` they become batched LAPACK calls (jaxlib 0.10), which spread the
    batch over XLA's CPU thread pool and block until it is done; with several
    in flight on a 2-core machine every pool thread ended up waiting and the
    program hung forever, intermittently.

    Args:
        fn: ``fn(cfg, key) -> pytree`` of arrays; jittable and vmappable.
        configs: n >= 1 configs with equal static signatures (checked).

    Returns:
        ``fn``'s output pytree with a leading axis of length n on every leaf
        (JAX arrays; index a run with ``jax.tree.map(lambda a: a[i], out)``).
    """
    import jax
    import jax.numpy as jnp

    from clipsim.config import static_signature
    from clipsim.sweep.engine import stack_configs

    if not configs:
        raise ValueError("run_stacked: no configs")
    signature = static_signature(configs[0])
    if any(static_signature(c) != signature for c in configs[1:]):
        raise ValueError("run_stacked: configs differ in static fields; group them first")
    per_run = [jax.tree.leaves(c) for c in configs]
    constant = [all(leaves[i] == per_run[0][i] for leaves in per_run)
                for i in range(len(per_run[0]))]
    stacked, treedef = jax.tree.flatten(stack_configs(configs))
    leaves = [a[0] if c else a for a, c in zip(stacked, constant, strict=True)]
    axes = [None if c else 0 for c in constant]

    def flat_fn(cfg_leaves: list, key: Any) -> Any:
        return fn(treedef.unflatten(cfg_leaves), key)

    keys = jnp.stack([jax.random.key(int(c.seed)) for c in configs])
    return jax.jit(jax.vmap(flat_fn, in_axes=(axes, 0)))(leaves, keys)


def run_script(main: Any, doc: str | None) -> None:
    """Command line of an experiment script: ``[--quick] [--out DIR]``, then print the verdict.

    Args:
        main: the script's ``main(quick=..., out=..., quiet=...)``.
        doc: the script's module docstring (its first line describes the command).
    """
    import argparse

    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--out", default="runs/reproduce", help="output folder")
    args = parser.parse_args()
    record = main(quick=args.quick, out=args.out, quiet=False)
    print(record["verdict"], "-", record["summary"])
