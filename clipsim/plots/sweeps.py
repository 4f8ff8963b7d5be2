"""Sweep figures from the results table: a metric against a swept field, seed bands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clipsim.plots.style import new_figure, save

__all__ = ["plot_metric", "plot_metric_grid"]


def _label(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plot_metric(df: pd.DataFrame, x: str, metric: str, *, hue: str | None = None, ax=None,
                logx: bool = False, path: str | Path | None = None, title: str | None = None,
                label: str | None = None, color: str | None = None):
    """Draw the across-seed mean of ``metric`` against ``x`` with a +-1 standard-error band.

    Rows are grouped with ``clipsim.summarize``: by ``x`` (and ``hue``), over the runs'
    final rows, or over every row when ``x == "step"`` (training curves).

    Args:
        df: a sweep results table (``clipsim.sweep.load``).
        x: the swept column on the x axis, e.g. ``"objective.temperature"`` or ``"step"``.
        metric: the metric column, e.g. ``"zs_accuracy"``.
        hue: a column with one line (and band) per value, e.g. ``"objective.name"``.
        ax: axes to draw on; default a new figure in the clipsim style.
        logx: log-scale x axis.
        path: if given, save the figure there (PNG) and close it.
        title: axes title.
        label: legend label of the line when there is no ``hue`` (so several
            metrics can share one axes).
        color: line and band color when there is no ``hue``; default ``C0``.

    Returns:
        The axes: one line and one band (``fill_between``) per hue value.
    """
    from clipsim.sweep.summary import summarize

    by = [x] if hue is None else [hue, x]
    table = summarize(df, by=by, metrics=[metric], final=x != "step")
    fig = None
    if ax is None:
        fig, axes = new_figure()
        ax = axes[0, 0]
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=True))
    for i, (value, sub) in enumerate(groups):
        sub = sub.sort_values(x)
        xs = sub[x].to_numpy()
        mean = sub[f"{metric}_mean"].to_numpy(float)
        sem = np.nan_to_num(sub[f"{metric}_sem"].to_numpy(float))
        if hue is None:
            line_label, line_color = label, color or "C0"
        else:
            line_label = _label(value[0] if isinstance(value, tuple) else value)
            line_color = f"C{i % 10}"
        ax.plot(xs, mean, marker="o", markersize=3, color=line_color, label=line_label)
        ax.fill_between(xs, mean - sem, mean + sem, color=line_color, alpha=0.2, linewidth=0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    if hue is not None:
        ax.legend(title=hue)
    if title:
        ax.set_title(title)
    if path is not None:
        save(ax.figure if fig is None else fig, path)
    return ax


def plot_metric_grid(df: pd.DataFrame, x: str, metrics: Sequence[str], *,
                     hue: str | None = None, logx: bool = False, ncols: int = 3,
                     path: str | Path | None = None, title: str | None = None):
    """One ``plot_metric`` panel per metric, sharing ``x`` and ``hue``.

    Args:
        df: a sweep results table (``clipsim.sweep.load``).
        x: the swept column on the x axis (or ``"step"`` for training curves).
        metrics: the metric columns, one panel each.
        hue: a column with one line (and band) per value.
        logx: log-scale x axes.
        ncols: panels per row.
        path: if given, save the figure there (PNG) and close it.
        title: figure title.

    Returns:
        The figure (saved and closed when ``path`` is given).
    """
    metrics = list(metrics)
    ncols = max(1, min(ncols, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6, height=2.9)
    flat = axes.reshape(-1)
    for ax, metric in zip(flat, metrics, strict=False):
        plot_metric(df, x, metric, hue=hue, ax=ax, logx=logx)
    for ax in flat[len(metrics):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig
