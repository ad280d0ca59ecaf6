"""LightningModules: the original classifier, the retrain oracle, their shared base, and the
reading of their checkpoints."""

from unlearning.modules.base import EvaluatedModule
from unlearning.modules.checkpoint import load_checkpoint_meta, load_net
from unlearning.modules.classifier import Classifier, RetrainOracle
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["Classifier", "EvaluatedModule", "RetrainOracle", "UnlearnModule", "load_checkpoint_meta", "load_net"]
