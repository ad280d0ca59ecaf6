"""Callbacks and figures: TensorBoard distributions of per-example outputs, figure writing,
faster training steps (``torch.compile``, channels-last), and recipe callbacks (whitening
initialisation, lookahead), and per-example learning events (memorisation proxies)."""

from unlearning.callbacks.distributions import DistributionLogger, distribution_figure
from unlearning.callbacks.figures import FigureWriter, histogram_panels
from unlearning.callbacks.memorisation import TrainingDynamics
from unlearning.callbacks.recipe import Lookahead, WhiteningInit
from unlearning.callbacks.speed import ChannelsLast, CompileNetwork
from unlearning.callbacks.streaming import StreamEvaluator, stream_figure

__all__ = [
    "ChannelsLast",
    "CompileNetwork",
    "DistributionLogger",
    "FigureWriter",
    "Lookahead",
    "StreamEvaluator",
    "TrainingDynamics",
    "WhiteningInit",
    "distribution_figure",
    "histogram_panels",
    "stream_figure",
]
