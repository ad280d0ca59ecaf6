"""Metrics: per-example output statistics, membership-inference attacks, forgetting quality."""

from unlearning.metrics.forgetting import final_score, forgetting_points, forgetting_quality, per_example_epsilon
from unlearning.metrics.mia import mia_efficacy, simple_mia
from unlearning.metrics.outputs import attack_features, logit_scaled_confidence, per_example_stats

__all__ = [
    "attack_features",
    "final_score",
    "forgetting_points",
    "forgetting_quality",
    "logit_scaled_confidence",
    "mia_efficacy",
    "per_example_epsilon",
    "per_example_stats",
    "simple_mia",
]
