"""The results table: one row per (run, logged step), typed columns.

Columns, in order:

* bookkeeping: ``sweep`` (name), ``point`` (index in ``SweepSpec.points()``),
  ``config_hash`` (of the point's full config, seed included), ``seed``, ``step``,
  ``final`` (True on each run's last row), ``nonfinite_step`` (first step whose
  training loss was NaN/inf, -1 if none);
* metrics: every training-history key (block means over ``train.log_every``
  steps, on every row) and every ``evaluate_program`` metric (on the final row,
  NaN on earlier rows; where a name is also a history key, e.g.
  ``unique_share_image``, the final row holds the evaluation's value);
* config: every field of ``RunConfig`` as a dotted column (``objective.temperature``).
  Column types follow the fields' annotated types (``clipsim.config.FIELD_TYPES``,
  real types, not annotation text): scalars keep their type; ``int | None`` fields
  are nullable integers, ``float | None`` floats (NaN for None); tuples and
  ``tuple | None`` fields are JSON text (``"[1, 3, 5]"``, ``"null"``).

Every part of a results folder is written with one ``pyarrow`` schema, so
``pandas.read_parquet(folder / "results")`` reads them as one table.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from clipsim.config import FIELD_TYPES, RunConfig, flatten_dict

__all__ = ["BOOKKEEPING_COLUMNS", "CONFIG_COLUMNS", "column_kind", "config_columns",
           "chunk_frame", "table_schema", "to_arrow"]

BOOKKEEPING_COLUMNS: tuple[str, ...] = (
    "sweep", "point", "config_hash", "seed", "step", "final", "nonfinite_step")

_BOOKKEEPING_TYPES: dict[str, pa.DataType] = {
    "sweep": pa.string(), "point": pa.int64(), "config_hash": pa.string(), "seed": pa.int64(),
    "step": pa.int64(), "final": pa.bool_(), "nonfinite_step": pa.int64(),
}

_SCALAR_KINDS: dict[type, tuple[str, pa.DataType]] = {
    float: ("float", pa.float64()),
    int: ("int", pa.int64()),
    bool: ("bool", pa.bool_()),
    str: ("str", pa.string()),
}


def column_kind(annotation: Any) -> tuple[str, pa.DataType]:
    """The column kind and Arrow type of a config field from its (real) annotated type.

    Args:
        annotation: a type such as ``float``, ``int | None`` or ``tuple[int, ...]``.

    Returns:
        ``(kind, arrow_type)``; kind is ``"float"``, ``"int"``, ``"int?"`` (nullable),
        ``"bool"``, ``"str"`` or ``"json"`` (anything else, stored as JSON text).
    """
    if annotation in _SCALAR_KINDS:
        return _SCALAR_KINDS[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and args[0] is int:
            return ("int?", pa.int64())
        if len(args) == 1 and args[0] is float:
            return ("float", pa.float64())
    return ("json", pa.string())


def _config_kinds() -> dict[str, tuple[str, pa.DataType]]:
    return {name: column_kind(t) for name, t in FIELD_TYPES.items() if name != "seed"}


_CONFIG_KINDS = _config_kinds()
CONFIG_COLUMNS: tuple[str, ...] = tuple(_CONFIG_KINDS)
"""Dotted config columns (every field but ``seed``, which is a bookkeeping column)."""


def _convert(kind: str, value: Any) -> Any:
    if kind == "json":
        return json.dumps(value)
    if value is None:
        return None if kind == "int?" else float("nan")
    if kind == "float":
        return float(value)
    if kind in ("int", "int?"):
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def config_columns(cfg: RunConfig) -> dict[str, Any]:
    """The config's dotted columns, converted to their column types (see module doc).

    Args:
        cfg: a concrete run config.

    Returns:
        Column name -> value for every name in ``CONFIG_COLUMNS``.
    """
    flat = flatten_dict(cfg.to_dict())
    return {name: _convert(kind, flat[name]) for name, (kind, _) in _CONFIG_KINDS.items()}


def table_schema(metrics: Sequence[str]) -> pa.Schema:
    """The Arrow schema of a results folder.

    Args:
        metrics: metric column names, in order.

    Returns:
        Bookkeeping columns, then ``metrics`` (float64), then config columns.
    """
    fields = [pa.field(n, t) for n, t in _BOOKKEEPING_TYPES.items()]
    fields += [pa.field(m, pa.float64()) for m in metrics]
    fields += [pa.field(n, t) for n, (_, t) in _CONFIG_KINDS.items()]
    return pa.schema(fields)


def chunk_frame(sweep: str, points: Sequence[int], configs: Sequence[RunConfig],
                history: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray],
                first_bad: np.ndarray) -> pd.DataFrame:
    """Rows of a computed chunk.

    Args:
        sweep: the sweep name.
        points: the n point indices.
        configs: the n configs.
        history: name -> (n, L) training history (must hold ``step``).
        metrics: name -> (n,) evaluation metrics.
        first_bad: (n,) first non-finite step per run, -1 if none.

    Returns:
        A DataFrame of n * L rows, runs in the given order, steps ascending.
    """
    n = len(configs)
    steps = np.asarray(history["step"]).reshape(n, -1)
    num_logs = steps.shape[1]
    rep = lambda values: np.repeat(np.asarray(values), num_logs)  # noqa: E731
    final = np.zeros((n, num_logs), bool)
    final[:, -1] = True
    cols: dict[str, Any] = {
        "sweep": [sweep] * (n * num_logs),
        "point": rep(np.asarray(points, np.int64)),
        "config_hash": rep([c.hash() for c in configs]),
        "seed": rep(np.asarray([int(c.seed) for c in configs], np.int64)),
        "step": steps.reshape(-1).astype(np.int64),
        "final": final.reshape(-1),
        "nonfinite_step": rep(np.asarray(first_bad, np.int64)),
    }
    for name, values in history.items():
        if name != "step":
            cols[name] = np.array(values, np.float64).reshape(-1)  # a writable copy
    last = np.arange(n) * num_logs + num_logs - 1
    for name, values in metrics.items():
        col = cols.get(name)
        if col is None:
            col = np.full(n * num_logs, np.nan)
        col[last] = np.asarray(values, np.float64)
        cols[name] = col
    per_point = [config_columns(c) for c in configs]
    for name in CONFIG_COLUMNS:
        cols[name] = [row[name] for row in per_point for _ in range(num_logs)]
    return pd.DataFrame(cols)


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as an Arrow table of exactly ``schema``.

    Args:
        frame: rows of a chunk.
        schema: the folder's schema (``table_schema``).

    Returns:
        The table; columns missing from ``frame`` become NaN/null, columns the schema
        lacks are dropped.
    """
    frame = frame.copy()
    for f in schema:
        if f.name not in frame.columns:
            frame[f.name] = np.nan if pa.types.is_floating(f.type) else None
    frame = frame[[f.name for f in schema]]
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
