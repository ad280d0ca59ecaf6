"""Callbacks and figures: TensorBoard distributions of per-example outputs, figure writing."""

from unlearning.callbacks.distributions import DistributionLogger, distribution_figure
from unlearning.callbacks.figures import FigureWriter, histogram_panels

__all__ = ["DistributionLogger", "FigureWriter", "distribution_figure", "histogram_panels"]
