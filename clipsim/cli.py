"""The ``clipsim`` command line: parse, call the library, print.

Subcommands register themselves in ``COMMANDS`` (name -> (add_arguments, run)).
User errors (bad config, missing file) print one line to stderr and exit with
code 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from clipsim.config import ConfigError, RunConfig

__all__ = ["main", "COMMANDS", "UsageError"]


class UsageError(Exception):
    """A user error reported as one line with exit code 2."""


def _load_config(path: str, overrides: list[str]) -> RunConfig:
    cfg = RunConfig.load(path)
    if overrides:
        values: dict[str, object] = {}
        for item in overrides:
            if "=" not in item:
                raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
            name, raw = item.split("=", 1)
            try:
                values[name.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                values[name.strip()] = raw
        cfg = cfg.replace(**values)
    return cfg


# ------------------------------------------------------------------- train
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config (.toml or .json)")
    p.add_argument("--out", required=True, help="output folder (metrics.json, training.png)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set objective.temperature=0.05")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _train_run(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config, args.set)  # validates before any compute
    import clipsim
    from clipsim.sweep.cache import enable_compilation_cache

    enable_compilation_cache()
    from clipsim.plots import plot_training_curves
    from clipsim.theory.report import bounds_table, format_table

    result = clipsim.train(cfg)
    report = clipsim.evaluate(result)
    record = {**report.to_dict(), "history": {k: v.tolist() for k, v in result.history.items()}}
    record["bounds"] = bounds_table(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(cfg.to_toml())
    (out / "metrics.json").write_text(json.dumps(record, indent=2, default=_json_default))
    plot_training_curves(result.history, out / "training.png",
                         title=f"{cfg.objective.name}, tau={cfg.objective.temperature}")
    _save_params(result, out / "params.npz")
    if not args.quiet:
        print(f"config {cfg.hash()}  ({args.config})")
        print(report.table())
        print()
        print(format_table(record["bounds"]))
        print(f"\nwrote {out / 'metrics.json'} and {out / 'training.png'}")
    return 0


def _save_params(result, path: Path) -> None:
    import jax
    import numpy as np

    flat = jax.tree_util.tree_flatten_with_path(result.params)[0]
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    np.savez(path, **arrays)


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")




COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "train": ("train one run from a config and evaluate it", _train_args, _train_run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipsim",
        description="Simulate the theory of CLIP-style contrastive learning.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipsim`` console script; returns the exit code."""
    _register_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (ConfigError, UsageError, FileNotFoundError) as err:
        print(f"clipsim {args.command}: error: {err}", file=sys.stderr)
        return 2


def _register_commands() -> None:
    """Import the modules whose subcommands add themselves to ``COMMANDS``."""
    import clipsim.reproduce  # noqa: F401
    import clipsim.sweep.cli  # noqa: F401
    import clipsim.theory.cli  # noqa: F401


if __name__ == "__main__":
    # Run through the imported module so subcommands registered on import
    # (sweep, bounds, reproduce) land in the COMMANDS table this call reads.
    from clipsim.cli import main as _main

    sys.exit(_main())
