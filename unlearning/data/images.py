"""Image data modules: CIFAR-10 and a synthetic CIFAR-shaped source for tests."""

from __future__ import annotations

import torch

from unlearning.data.base import UnlearningDataModule
from unlearning.data.sources import ImageArrays, load_cifar10, make_synthetic_images
from unlearning.data.transforms import CIFAR10_MEAN, CIFAR10_STD, ImageTransform

__all__ = ["CIFAR10DataModule", "ImageDataModule", "SyntheticImageDataModule"]


class ImageDataModule(UnlearningDataModule):
    """An :class:`UnlearningDataModule` of uint8 images, augmented and normalised in batches.

    Args:
        augment: random crop (pad 4) and horizontal flip on training batches (the starting kit's
            recipe). Turn it off to get an original model that memorises its training set.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        **kwargs: the split and loader arguments of :class:`UnlearningDataModule`.
    """

    def __init__(
        self,
        augment: bool = True,
        mean: tuple[float, float, float] = CIFAR10_MEAN,
        std: tuple[float, float, float] = CIFAR10_STD,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._train_tf = ImageTransform(mean, std, augment=augment)
        self._eval_tf = ImageTransform(mean, std, augment=False)

    def train_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Augment (if enabled) and normalise a uint8 batch."""
        return self._train_tf(x)

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 batch."""
        return self._eval_tf(x)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 split into retain/forget (from the 50k training images) and val/test (the 10k test
    images, split 50/50 with seed 42 as in the starting kit).

    Args:
        root: a local copy: an image folder (``train/<class>/*.jpg``, ``test/<class>/*.jpg``) or a
            folder holding torchvision's ``cifar-10-batches-py``. ``None`` downloads with
            torchvision into the cache folder (needs network).
        cache_dir: where decoded tensors and downloads are kept (default
            ``$UNLEARNING_CACHE_DIR`` or ``~/.cache/unlearning``).
        **kwargs: see :class:`ImageDataModule` and :class:`UnlearningDataModule`.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.cache_dir = cache_dir
        self._arrays: ImageArrays | None = None

    def load_arrays(self) -> ImageArrays:
        """Load (and cache) CIFAR-10."""
        if self._arrays is None:
            self._arrays = load_cifar10(self.root, self.cache_dir)
        return self._arrays


class SyntheticImageDataModule(ImageDataModule):
    """Synthetic CIFAR-shaped images (see :func:`~unlearning.data.sources.make_synthetic_images`):
    learnable class signal plus per-image noise a small model memorises in seconds. For tests and
    quick experiments; no file is read or written.

    Args:
        num_train: training images (split into retain and forget).
        num_heldout: held-out images (split into val and test).
        num_classes: number of classes.
        signal: weight of the class prototype in each image, in (0, 1].
        data_seed: seed of the images.
        image_size: height and width of the images (smaller is faster for tests).
        **kwargs: see :class:`ImageDataModule` and :class:`UnlearningDataModule`.
    """

    def __init__(
        self,
        num_train: int = 512,
        num_heldout: int = 256,
        num_classes: int = 10,
        signal: float = 0.35,
        data_seed: int = 0,
        image_size: int = 32,
        **kwargs,
    ) -> None:
        kwargs.setdefault("augment", False)
        super().__init__(**kwargs)
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self._arrays = make_synthetic_images(num_train, num_heldout, num_classes, image_size, signal, data_seed)

    def load_arrays(self) -> ImageArrays:
        """Return the synthetic images."""
        return self._arrays
