"""Data modules: splits, CIFAR-10 sources, synthetic images and the two-circles toy."""

from unlearning.data.base import UnlearningDataModule
from unlearning.data.images import CIFAR10DataModule, ImageDataModule, SyntheticImageDataModule
from unlearning.data.loaders import TensorLoader
from unlearning.data.splits import STREAMS, Split, make_split
from unlearning.data.two_circles import TwoCircles

__all__ = [
    "STREAMS",
    "CIFAR10DataModule",
    "ImageDataModule",
    "Split",
    "SyntheticImageDataModule",
    "TensorLoader",
    "TwoCircles",
    "UnlearningDataModule",
    "make_split",
]
