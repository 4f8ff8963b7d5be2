"""``clipsim reproduce NAME --out DIR``: run reproduction experiments and write report.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsim.reproduce import EXPERIMENTS

HELP = "run the paper-reproduction experiments and write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim reproduce``."""
    parser.add_argument("name", help=f"an experiment ({', '.join(EXPERIMENTS)}) or 'all'")
    parser.add_argument("--out", required=True,
                        help="output folder for figures, JSON records and report.md")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test sizes (seconds per experiment; verdicts are not evidence)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    """Run the named experiment (or all), print the verdicts."""
    from clipsim.reproduce import run_experiments

    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    records = run_experiments(names, out=Path(args.out), quick=args.quick, quiet=args.quiet)
    if not args.quiet:
        width = max(len(r["name"]) for r in records)
        for r in records:
            print(f"{r['prediction']:<4} {r['name']:<{width}}  {r['verdict']}")
        print(f"\nwrote {Path(args.out) / 'report.md'}")
    return 0
