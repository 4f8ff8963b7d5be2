"""The ``clipsim`` command line: parse, call the library, print.

One module per subcommand, listed in ``COMMANDS``; each has ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. User errors (a bad config or
sweep file, a bad ``--set``, a missing or unwritable path) print one line to
stderr and exit with code 2 before anything is computed or written; Ctrl-C
exits with code 130. ``main`` turns off XLA's concurrency-optimized CPU scheduler
(``clipsim.runtime.protect_cpu_scheduler``), keeping any flags the user set.
Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

import clipsim
from clipsim.cli import analyze, bounds, listing, reproduce, sweep, train
from clipsim.cli._common import UsageError
from clipsim.config import ConfigError
from clipsim.io import RunFolderError
from clipsim.reproduce import ExperimentError
from clipsim.runtime import protect_cpu_scheduler
from clipsim.sweep.store import SweepError

__all__ = ["main", "entry", "build_parser", "COMMANDS", "UsageError"]

COMMANDS: dict[str, ModuleType] = {
    "train": train,
    "sweep": sweep,
    "bounds": bounds,
    "analyze": analyze,
    "reproduce": reproduce,
    "list": listing,
}
"""Subcommand name -> module (``HELP``, ``add_arguments``, ``run``), in ``--help`` order.

A module with ``ACTIONS`` has actions of its own (``clipsim sweep status DIR``); a
first argument that is none of them selects its ``DEFAULT_ACTION``
(``clipsim sweep SPEC`` is ``clipsim sweep run SPEC``)."""

USER_ERRORS = (ConfigError, UsageError, RunFolderError, ExperimentError, SweepError,
               FileNotFoundError)
"""Exceptions reported as one line with exit code 2 (``SpecError`` is a ``ConfigError``)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``clipsim`` argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="clipsim",
        description="Simulate the theory of CLIP-style contrastive learning. CONFIG and SPEC "
                    "arguments take a file, or the bare name of a config or sweep shipped "
                    "with the experiments (e.g. 'clipsim train onehot_linear --out DIR').")
    parser.add_argument("--version", action="version", version=f"clipsim {clipsim.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipsim`` console script.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 for a user error, 130 when interrupted.
    """
    protect_cpu_scheduler()  # before the first JAX computation; keeps the user's XLA_FLAGS
    argv = list(sys.argv[1:] if argv is None else argv)
    module = COMMANDS.get(argv[0]) if argv else None
    actions = getattr(module, "ACTIONS", ())
    if actions and len(argv) > 1 and argv[1] not in (*actions, "-h", "--help"):
        argv.insert(1, module.DEFAULT_ACTION)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as err:
        print(f"clipsim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clipsim {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``clipsim`` program: ``main`` on ``sys.argv``, then exit with its code.

    After an interrupt (code 130) the process exits at once (``os._exit``, streams
    flushed first): JAX's runtime threads may still be busy with the interrupted
    computation, and a normal interpreter shutdown could crash on them.
    """
    import os

    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)
