"""Callbacks and figures: TensorBoard distributions of per-example outputs, figure writing."""

from unlearning.callbacks.distributions import DistributionLogger, distribution_figure
from unlearning.callbacks.figures import FigureWriter, histogram_panels
from unlearning.callbacks.streaming import StreamEvaluator, stream_figure

__all__ = [
    "DistributionLogger",
    "FigureWriter",
    "StreamEvaluator",
    "distribution_figure",
    "histogram_panels",
    "stream_figure",
]
