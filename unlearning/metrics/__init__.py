"""Metrics: per-example output statistics, membership-inference attacks, the measurement of a model
from its outputs, forgetting quality, KLOM."""

from unlearning.metrics.evaluation import measure, run_attack, stream_outputs
from unlearning.metrics.forgetting import final_score, forgetting_points, forgetting_quality, per_example_epsilon
from unlearning.metrics.klom import klom
from unlearning.metrics.mia import mia_efficacy, predictive_mia, simple_mia
from unlearning.metrics.outputs import attack_features, logit_scaled_confidence, per_example_stats

__all__ = [
    "attack_features",
    "final_score",
    "forgetting_points",
    "forgetting_quality",
    "klom",
    "logit_scaled_confidence",
    "measure",
    "mia_efficacy",
    "per_example_epsilon",
    "per_example_stats",
    "predictive_mia",
    "run_attack",
    "simple_mia",
    "stream_outputs",
]
