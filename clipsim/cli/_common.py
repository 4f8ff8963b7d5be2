"""What the subcommands share: the user-error type, config loading with ``--set``, file lookup."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from clipsim.config import RunConfig

__all__ = ["UsageError", "parse_overrides", "resolve_file", "load_config", "add_set_argument"]


class UsageError(Exception):
    """A user error reported as one line with exit code 2."""


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set FIELD=VALUE`` option."""
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set objective.temperature=0.05 "
                             "(repeatable; VALUE is read as JSON, else as a string)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}``; values are JSON, else strings.

    Raises:
        UsageError: an item without ``=`` or with an empty field name.
    """
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def resolve_file(text: str, kind: str) -> Path:
    """The file a command-line argument names.

    An existing path wins; otherwise a bare name (no folder part) such as
    ``onehot_linear`` or ``quick_tau.toml`` names a file shipped with the
    experiments (``kind`` = ``"configs"`` or ``"sweeps"``). Anything else is
    returned unchanged, for the loader to report as missing.
    """
    path = Path(text)
    if path.exists() or len(path.parts) != 1:
        return path
    from clipsim.reproduce import shipped_file

    return shipped_file(kind, text) or path


def load_config(text: str, overrides: list[str]) -> RunConfig:
    """Read a run config (a path or a shipped config's name) and apply ``--set`` overrides.

    Raises:
        ConfigError: the file is missing or invalid, or an override names an
            unknown field or gives a value out of range.
        UsageError: a malformed ``--set`` item.
    """
    values = parse_overrides(overrides)
    cfg = RunConfig.load(resolve_file(text, "configs"))
    return cfg.replace(**values) if values else cfg


def shipped_names(kind: str) -> str:
    """Comma-separated names of the shipped configs or sweeps, for help texts."""
    from clipsim.reproduce import ExperimentError, shipped_files

    try:
        return ", ".join(shipped_files(kind))
    except ExperimentError:
        return "(none installed)"
