"""LightningModules: the original classifier, the retrain oracle and their shared base."""

from unlearning.modules.base import EvaluatedModule, load_checkpoint_meta, load_net
from unlearning.modules.classifier import Classifier, RetrainOracle
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["Classifier", "EvaluatedModule", "RetrainOracle", "UnlearnModule", "load_checkpoint_meta", "load_net"]
