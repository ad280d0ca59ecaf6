"""Metrics: per-example output statistics, membership-inference attacks, the measurement of a model
from its outputs, forgetting quality, KLOM, per-example memorisation and entanglement."""

from unlearning.metrics.evaluation import evaluate, measure, run_attack, stream_outputs
from unlearning.metrics.forgetting import final_score, forgetting_points, forgetting_quality, per_example_epsilon
from unlearning.metrics.klom import klom
from unlearning.metrics.memorisation import (
    MemorisationWarning,
    centroid_distance,
    entanglement_score,
    memorisation_estimate,
    penultimate_features,
    penultimate_layer,
    penultimate_outputs,
    simulated_oracle_target,
    spearman,
    subset_masks,
    within_class_quantile,
)
from unlearning.metrics.mia import mia_efficacy, predictive_mia, simple_mia
from unlearning.metrics.outputs import attack_features, logit_scaled_confidence, per_example_stats

__all__ = [
    "MemorisationWarning",
    "attack_features",
    "centroid_distance",
    "entanglement_score",
    "evaluate",
    "final_score",
    "forgetting_points",
    "forgetting_quality",
    "klom",
    "logit_scaled_confidence",
    "measure",
    "memorisation_estimate",
    "mia_efficacy",
    "per_example_epsilon",
    "penultimate_features",
    "penultimate_layer",
    "penultimate_outputs",
    "simulated_oracle_target",
    "per_example_stats",
    "predictive_mia",
    "run_attack",
    "simple_mia",
    "spearman",
    "stream_outputs",
    "subset_masks",
    "within_class_quantile",
]
