"""``clipsim bounds TARGET``: the E-statement table of a run folder, a config, or its oracle."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsim.cli._common import UsageError, resolve_file

HELP = "print the exact statements E1-E7 measured on a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim bounds``."""
    parser.add_argument("target", help="a run folder written by 'clipsim train', or a config "
                                       "file or shipped config name (trained first)")
    parser.add_argument("--oracle", action="store_true",
                        help="measure the oracle encoders of the config's data instead")
    parser.add_argument("--batches", type=int, default=64,
                        help="population batches for the expectations (default 64, at least 4)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    """Load or train the subject, compute the table, print it."""
    from clipsim.config import RunConfig
    from clipsim.io import CONFIG_FILE, dumps, load_run
    from clipsim.theory.report import bounds_table, format_table

    if args.batches < 4:
        raise UsageError(f"--batches = {args.batches} is invalid: must be >= 4")
    target = Path(args.target)
    if target.is_dir():
        if not (target / CONFIG_FILE).is_file():
            raise UsageError(f"{target} is not a run folder (no {CONFIG_FILE})")
        result = load_run(target)
        subject = result.config if args.oracle else result
    else:
        cfg = RunConfig.load(resolve_file(args.target, "configs"))
        if args.oracle:
            subject = cfg
        else:
            import clipsim

            subject = clipsim.train(cfg)
    rows = bounds_table(subject, num_batches=args.batches)
    print(dumps(rows) if args.json else format_table(rows))
    return 0
