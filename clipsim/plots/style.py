"""The one figure style every clipsim plot uses."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless by default; notebooks switch backends themselves

import matplotlib.pyplot as plt  # noqa: E402

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
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                 squeeze=False)
    return fig, axes


def save(fig, path) -> None:
    """Save ``fig`` to ``path`` (parents created) in the clipsim style and close it.

    Args:
        fig: a matplotlib figure.
        path: output file; the suffix picks the format.
    """
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig.savefig(path)
    plt.close(fig)
