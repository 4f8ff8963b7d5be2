"""Training-curve figures from a run's history."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from clipsim.plots.style import new_figure, save

__all__ = ["plot_training_curves"]

_PANELS = (
    ("loss", "training loss"),
    ("accuracy", "in-batch top-1 accuracy"),
    ("margin", "mean in-batch margin"),
    ("unique_share_image", "unique-block weight share"),
)


def plot_training_curves(history: Mapping[str, np.ndarray], path: str | Path,
                         *, title: str = "") -> Path:
    """Plot loss, in-batch accuracy, margin and (linear encoders) unique-weight share.

    Args:
        history: ``TrainResult.history`` (arrays of length ``num_logs``, with ``step``).
        path: output PNG path.
        title: figure title.

    Returns:
        The path written.
    """
    panels = [(k, label) for k, label in _PANELS if k in history]
    fig, axes = new_figure(ncols=len(panels), width=3.4, height=2.8)
    steps = np.asarray(history["step"])
    for ax, (name, label) in zip(axes[0], panels, strict=True):
        ax.plot(steps, np.asarray(history[name]), color="C0")
        if name == "unique_share_image" and "unique_share_text" in history:
            ax.plot(steps, np.asarray(history["unique_share_text"]), color="C1", label="text")
            ax.lines[0].set_label("image")
            ax.legend()
        ax.set_xlabel("step")
        ax.set_title(label)
    if title:
        fig.suptitle(title)
    save(fig, path)
    return Path(path)
