"""Callbacks: TensorBoard distributions of per-example outputs."""

from unlearning.callbacks.distributions import DistributionLogger, distribution_figure

__all__ = ["DistributionLogger", "distribution_figure"]
