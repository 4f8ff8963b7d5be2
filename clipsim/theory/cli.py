"""``clipsim bounds``: the E-statement table of a trained run, its config, or its oracle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from clipsim.cli import COMMANDS, UsageError
from clipsim.config import RunConfig

__all__ = ["load_run"]


def load_run(run_dir: Path):
    """Rebuild a ``TrainResult`` from a ``clipsim train --out`` folder."""
    from clipsim.train import TrainResult, init_params

    cfg = RunConfig.load(run_dir / "config.toml")
    stored = np.load(run_dir / "params.npz")
    template = init_params(cfg, key=jax.random.key(0))
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in paths:
        name = jax.tree_util.keystr(path)
        if name not in stored:
            raise UsageError(f"{run_dir / 'params.npz'} has no parameter {name}")
        leaves.append(jax.numpy.asarray(stored[name], leaf.dtype))
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    metrics = run_dir / "metrics.json"
    history = {}
    if metrics.is_file():
        history = {k: np.asarray(v) for k, v in json.loads(metrics.read_text())["history"].items()}
    return TrainResult(params=params, history=history, config=cfg, key=jax.random.key(cfg.seed))


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="a run folder written by 'clipsim train', or a config file "
                                  "(which is trained first)")
    p.add_argument("--oracle", action="store_true",
                   help="measure the oracle encoders of the config's data instead")
    p.add_argument("--batches", type=int, default=64,
                   help="population batches for the expectations (default 64)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def _run(args: argparse.Namespace) -> int:
    from clipsim.theory.report import bounds_table, format_table

    if args.batches < 4:
        raise UsageError(f"--batches = {args.batches} is invalid: must be >= 4")
    target = Path(args.target)
    if target.is_dir():
        if not (target / "config.toml").is_file():
            raise UsageError(f"{target} is not a run folder (no config.toml)")
        result = load_run(target)
        subject = result.config if args.oracle else result
    else:
        cfg = RunConfig.load(target)
        if args.oracle:
            subject = cfg
        else:
            import clipsim

            subject = clipsim.train(cfg)
    rows = bounds_table(subject, num_batches=args.batches)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


COMMANDS["bounds"] = ("print the exact statements E1-E7 measured on a model", _args, _run)
