"""``clipsim list objectives|families|fields``: what the registries and the config offer."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

HELP = "list the registered objectives, latent families, or every config field"

WHAT = ("objectives", "families", "fields")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim list``."""
    parser.add_argument("what", choices=WHAT,
                        help="objectives (ObjectiveConfig.name values), families "
                             "(DataConfig.family values) or fields (every config field with its "
                             "default, static/dynamic kind, allowed range and meaning)")


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def _meanings(cls: type) -> dict[str, str]:
    """``name`` (meaning) pairs of a config section's docstring."""
    text = " ".join((cls.__doc__ or "").split())
    pairs = re.findall(r"``(\w+)``\s*\(((?:[^()]|\([^()]*\))*)\)", text)
    return {name: meaning.strip() for name, meaning in pairs}


def field_rows() -> list[dict[str, Any]]:
    """One row per config field: name, kind, default, range, meaning.

    Read from the config dataclasses: the default, ``static`` from the field
    metadata, ``range`` and ``doc`` from the metadata when given, else the
    meaning the section's docstring gives the field.
    """
    from clipsim.config import RunConfig

    rows = [{"field": "seed", "kind": "dynamic", "default": RunConfig().seed,
             "range": "0 <= seed < 2**31", "meaning": "the run's seed (initialization, batches)"}]
    defaults = RunConfig()
    for section in dataclasses.fields(RunConfig):
        cls = type(getattr(defaults, section.name, None))
        if not dataclasses.is_dataclass(cls):
            continue
        meanings = _meanings(cls)
        for f in dataclasses.fields(cls):
            rows.append({
                "field": f"{section.name}.{f.name}",
                "kind": "static" if f.metadata.get("static", False) else "dynamic",
                "default": getattr(getattr(defaults, section.name), f.name),
                "range": f.metadata.get("range", ""),
                "meaning": f.metadata.get("doc", meanings.get(f.name, "")),
            })
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the requested table."""
    import clipsim  # noqa: F401  (fills the registries)
    from clipsim.config import LATENT_FAMILIES, OBJECTIVES

    if args.what == "objectives":
        rows = [{"objective": name, "summary": _first_line(getattr(obj.loss_fn, "__doc__", ""))}
                for name, obj in OBJECTIVES.items()]
    elif args.what == "families":
        rows = [{"family": name, "discrete": "yes" if fam.discrete else "no",
                 "classes from": f"data.{fam.classes_from}",
                 "class prior": "yes" if fam.class_prior else "no"}
                for name, fam in LATENT_FAMILIES.items()]
    else:
        rows = field_rows()
    print(_table(rows))
    return 0
