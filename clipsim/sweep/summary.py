"""Across-seed summaries of a results table: mean, standard error, 95% interval."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["summarize", "metric_names"]

_NOT_METRICS = frozenset({"sweep", "point", "config_hash", "seed", "step", "final",
                          "nonfinite_step"})
STATS: tuple[str, ...] = ("mean", "sem", "ci95_low", "ci95_high", "n")


def metric_names(df: pd.DataFrame) -> list[str]:
    """Numeric metric columns of a results table (not bookkeeping, not dotted config).

    Args:
        df: a results table.

    Returns:
        The metric column names, in table order.
    """
    return [c for c in df.columns if c not in _NOT_METRICS and "." not in c
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def summarize(df: pd.DataFrame, by: str | Sequence[str],
              metrics: str | Sequence[str] | None = None, *, final: bool = True,
              include_diverged: bool = False) -> pd.DataFrame:
    """Mean, standard error and 95% t-interval of metrics across runs (seeds).

    For each group of rows with equal ``by`` values and each metric m (NaN values
    skipped), with n values x_1..x_n::

        mean = sum(x) / n
        sem  = std(x, ddof=1) / sqrt(n)                  (NaN when n < 2)
        ci95 = mean -/+ t_{0.975, n-1} * sem              (Student t; NaN when n < 2)

    Args:
        df: a results table (``clipsim.sweep.load``) or any DataFrame.
        by: column(s) to group by, e.g. ``["objective.temperature"]``.
        metrics: metric column(s); default every numeric metric column.
        final: use only each run's final row (column ``final``), where the
            evaluation metrics live. Set False to summarize every row (then put
            ``step`` in ``by``).
        include_diverged: keep runs whose training loss went non-finite (column
            ``nonfinite_step`` >= 0); by default they are left out, with a warning
            naming how many, since their metrics describe a broken run.

    Returns:
        One row per group: the ``by`` columns, then ``<metric>_mean``,
        ``<metric>_sem``, ``<metric>_ci95_low``, ``<metric>_ci95_high``, ``<metric>_n``.

    Example:
        >>> summarize(df, by=["objective.temperature"], metrics=["zs_accuracy"])  # doctest: +SKIP
    """
    from scipy import stats

    by = [by] if isinstance(by, str) else list(by)
    if metrics is None:
        metrics = [m for m in metric_names(df) if m not in by]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [c for c in [*by, *metrics] if c not in df.columns]
    if missing:
        raise KeyError(f"summarize: no column(s) {missing}; columns: {list(df.columns)}")
    if final and "final" in df.columns:
        df = df[df["final"].astype(bool)]
    if not include_diverged and "nonfinite_step" in df.columns:
        diverged = df["nonfinite_step"] >= 0
        if diverged.any():
            runs = df.loc[diverged, "config_hash"].nunique() if "config_hash" in df else "some"
            warnings.warn(f"summarize: left out {runs} run(s) whose training loss went "
                          "non-finite (nonfinite_step >= 0); include_diverged=True keeps them",
                          RuntimeWarning, stacklevel=2)
            df = df[~diverged]
    grouped = df[[*by, *metrics]].groupby(by, sort=True, dropna=False)[metrics]
    mean = grouped.mean()
    n = grouped.count()
    sem = grouped.std(ddof=1) / np.sqrt(n.where(n > 0))
    tq = pd.DataFrame(stats.t.ppf(0.975, (n - 1).where(n > 1).to_numpy(float)),
                      index=n.index, columns=n.columns)
    out = pd.DataFrame(index=mean.index)
    for m in metrics:
        out[f"{m}_mean"] = mean[m]
        out[f"{m}_sem"] = sem[m]
        out[f"{m}_ci95_low"] = mean[m] - tq[m] * sem[m]
        out[f"{m}_ci95_high"] = mean[m] + tq[m] * sem[m]
        out[f"{m}_n"] = n[m].astype(np.int64)
    return out.reset_index()
