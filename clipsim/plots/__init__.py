"""Figures: one shared style; functions that read histories and result tables."""

from clipsim.plots.style import STYLE, new_figure, save
from clipsim.plots.sweeps import plot_metric, plot_metric_grid
from clipsim.plots.training import plot_training_curves

__all__ = ["STYLE", "new_figure", "save", "plot_training_curves", "plot_metric",
           "plot_metric_grid"]
