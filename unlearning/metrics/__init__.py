"""Metrics: per-example output statistics, membership-inference attacks, forgetting quality."""

from unlearning.metrics.mia import mia_efficacy, simple_mia
from unlearning.metrics.outputs import logit_scaled_confidence, per_example_stats

__all__ = ["logit_scaled_confidence", "mia_efficacy", "per_example_stats", "simple_mia"]
