"""``clipsim train CONFIG --out DIR``: train one run, evaluate it, write a run folder."""

from __future__ import annotations

import argparse

from clipsim.cli._common import add_set_argument, load_config, shipped_names

HELP = "train one run from a config and evaluate it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim train``."""
    parser.add_argument("config", help="run config (.toml or .json), or the name of a shipped "
                                       f"config ({shipped_names('configs')})")
    parser.add_argument("--out", required=True,
                        help="output folder (config.toml, params.npz, metrics.json, training.png)")
    add_set_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, measure the E-statements, and save the run folder."""
    from clipsim.io import check_out_dir

    cfg = load_config(args.config, args.set)  # validates before any compute
    out = check_out_dir(args.out)

    import clipsim
    from clipsim.io import METRICS_FILE, save_run
    from clipsim.sweep.cache import enable_compilation_cache
    from clipsim.theory.report import bounds_table, format_table

    enable_compilation_cache()
    result = clipsim.train(cfg)
    report = clipsim.evaluate(result)
    rows = bounds_table(result)
    save_run(out, result, report=report, extra={"bounds": rows})
    if not args.quiet:
        print(f"config {cfg.hash()}  ({args.config})")
        print(report.table())
        print()
        print(format_table(rows))
        print(f"\nwrote {out / METRICS_FILE} and the run folder {out}")
    return 0
