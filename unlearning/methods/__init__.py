"""Unlearning algorithms, one file each, all subclasses of
:class:`~unlearning.modules.UnlearnModule`."""

from __future__ import annotations

from pathlib import Path

import yaml

from unlearning.methods.bad_teacher import BadTeacher
from unlearning.methods.boundary_shrink import BoundaryShrink
from unlearning.methods.cf_k import CFk
from unlearning.methods.discriminator import (
    DiscriminatorUnlearn,
    RetainFreeDiscriminator,
)
from unlearning.methods.eu_k import EUk
from unlearning.methods.finetune import Finetune
from unlearning.methods.grad_reinit import GradientReinit
from unlearning.methods.neggrad import NegGrad
from unlearning.methods.hypernet import HypernetTrainer, HypernetUnlearn
from unlearning.methods.jit import JiT
from unlearning.methods.kl_contrastive import KLUniformContrastive
from unlearning.methods.l1_sparse import L1Sparse
from unlearning.methods.lfssd import LFSSD
from unlearning.methods.neggrad_plus import NegGradPlus
from unlearning.methods.random_label import RandomLabel
from unlearning.methods.rum import RUM
from unlearning.methods.salun import SalUn
from unlearning.methods.scrub import SCRUB
from unlearning.methods.ssd import SSD
from unlearning.methods.streaming import StreamingForget
from unlearning.methods.unsir import UNSIR
from unlearning.registry import module_class


__all__ = [
    "LFSSD",
    "RUM",
    "SCRUB",
    "SSD",
    "UNSIR",
    "BadTeacher",
    "BoundaryShrink",
    "CFk",
    "DiscriminatorUnlearn",
    "EUk",
    "Finetune",
    "GradientReinit",
    "HypernetTrainer",
    "HypernetUnlearn",
    "JiT",
    "KLUniformContrastive",
    "L1Sparse",
    "NegGrad",
    "NegGradPlus",
    "RandomLabel",
    "RetainFreeDiscriminator",
    "SalUn",
    "StreamingForget",
    "declared_stages",
    "module_class",
]


def declared_stages(config: str | Path) -> list[str]:
    """The one-time stages (init argument names) that the module of a fit config declares.

    Args:
        config: a fit config (YAML with a ``model`` section).

    Returns:
        The names of the init arguments that take a one-time stage's checkpoint.
    """
    cls = module_class(yaml.safe_load(Path(config).read_text())["model"]["class_path"])
    return list(getattr(cls, "stages", {}) or {})
