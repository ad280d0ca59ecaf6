"""LightningModules: the original classifier, the retrain oracle and their shared base."""

from unlearning.modules.base import EvaluatedModule, load_checkpoint_meta, load_net
from unlearning.modules.classifier import Classifier, RetrainOracle

__all__ = ["Classifier", "EvaluatedModule", "RetrainOracle", "load_checkpoint_meta", "load_net"]
