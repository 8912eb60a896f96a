"""Pictures: sample grids, animations and plots."""

from difusion.viz.animation import save_gif
from difusion.viz.grid import make_grid, save_grid, save_image
from difusion.viz.plots import plot_loss, plot_points, save_figure

__all__ = [
    "make_grid",
    "plot_loss",
    "plot_points",
    "save_figure",
    "save_gif",
    "save_grid",
    "save_image",
]
