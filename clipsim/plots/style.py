"""The one figure style every clipsim plot uses.

Figures are plain ``matplotlib.figure.Figure`` objects, not pyplot figures: no
backend is chosen and no global figure list grows, so importing clipsim leaves
matplotlib as the user set it, a script saves headless, and a notebook shows a
returned figure inline (IPython renders ``Figure`` objects).
"""

from __future__ import annotations

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = ["STYLE", "new_figure", "save"]

STYLE: dict[str, object] = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.2, height: float = 3.2):
    """A figure with ``nrows x ncols`` axes in the clipsim style.

    Args:
        ncols: columns of axes.
        nrows: rows of axes.
        width: width of one panel, inches.
        height: height of one panel, inches.

    Returns:
        ``(fig, axes)`` with ``axes`` a (nrows, ncols) array.
    """
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig, path) -> None:
    """Save ``fig`` to ``path`` (parents created) in the clipsim style.

    Args:
        fig: a matplotlib figure.
        path: output file; the suffix picks the format.
    """
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(STYLE):
        fig.savefig(path)
