"""Unlearning algorithms, one file each, all subclasses of
:class:`~unlearning.modules.UnlearnModule`."""

from unlearning.methods.finetune import Finetune
from unlearning.methods.grad_reinit import GradientReinit
from unlearning.methods.kl_contrastive import KLUniformContrastive
from unlearning.methods.neggrad import NegGradPlus
from unlearning.methods.random_label import RandomLabel
from unlearning.methods.scrub import SCRUB

__all__ = ["SCRUB", "Finetune", "GradientReinit", "KLUniformContrastive", "NegGradPlus", "RandomLabel"]
