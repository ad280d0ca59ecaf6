"""Data modules: splits, image datasets (CIFAR-10, CIFAR-100, SVHN, Tiny-ImageNet, image folders),
synthetic images and the two-circles toy."""

from unlearning.data.base import UnlearningDataModule
from unlearning.data.corruption import CorruptedForget
from unlearning.data.datasets import (
    CIFAR100DataModule,
    ImageFolderDataModule,
    SVHNDataModule,
    TinyImageNetDataModule,
)
from unlearning.data.images import (
    CIFAR10DataModule,
    ImageDataModule,
    LocalImageDataModule,
    SyntheticImageDataModule,
)
from unlearning.data.loaders import TensorLoader
from unlearning.data.scenarios import ClassForget, ForgetScenario, IndexForget, RandomForget, ScoreBandForget
from unlearning.data.splits import STREAMS, Split, make_split
from unlearning.data.two_circles import TwoCircles

__all__ = [
    "STREAMS",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "ClassForget",
    "CorruptedForget",
    "ForgetScenario",
    "ImageDataModule",
    "ImageFolderDataModule",
    "IndexForget",
    "LocalImageDataModule",
    "RandomForget",
    "SVHNDataModule",
    "ScoreBandForget",
    "Split",
    "SyntheticImageDataModule",
    "TensorLoader",
    "TinyImageNetDataModule",
    "TwoCircles",
    "UnlearningDataModule",
    "make_split",
]
