"""Image data modules: the shared base (normalisation, size, augmentation), CIFAR-10 and a
synthetic CIFAR-shaped source for tests (the other datasets are in :mod:`unlearning.data.datasets`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unlearning.data.base import UnlearningDataModule
from unlearning.data.sizing import as_size, fit_size
from unlearning.data.sources import SourceArrays, load_cifar10, make_synthetic_images
from unlearning.data.transforms import CIFAR10_MEAN, CIFAR10_STD, ImageTransform

__all__ = ["CIFAR10DataModule", "ImageDataModule", "LocalImageDataModule", "SyntheticImageDataModule"]


class ImageDataModule(UnlearningDataModule):
    """An :class:`UnlearningDataModule` of uint8 images, augmented and normalised in batches.

    The input normalisation and size belong to the model, so both are set here, from config:
    each batch is brought to ``image_size`` (if set), then augmented (training only), then
    normalised. The augmentation works at any size.

    Args:
        augment: random crop (pad 4) and horizontal flip on training batches (the starting kit's
            recipe). Turn it off to get an original model that memorises its training set.
        mean: per-channel normalisation mean (CIFAR-10's by default).
        std: per-channel normalisation standard deviation (CIFAR-10's by default).
        image_size: the size the model takes (``int`` or ``[height, width]``); ``None`` keeps the
            dataset's own size (32x32 for CIFAR and SVHN, 64x64 for Tiny-ImageNet).
        resize_mode: how images are brought to ``image_size``: ``resize`` (bilinear, antialiased)
            or ``pad`` (zeros around the image; ``image_size`` must be at least the images' size).
        **kwargs: the split and loader arguments of :class:`UnlearningDataModule`.
    """

    def __init__(
        self,
        augment: bool = True,
        mean: tuple[float, float, float] = CIFAR10_MEAN,
        std: tuple[float, float, float] = CIFAR10_STD,
        image_size: int | Sequence[int] | None = None,
        resize_mode: str = "resize",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.image_size = as_size(image_size, resize_mode)
        self.resize_mode = resize_mode
        self._train_tf = ImageTransform(mean, std, augment=augment)
        self._eval_tf = ImageTransform(mean, std, augment=False)

    def setup(self, stage: str | None = None) -> None:
        """As :meth:`UnlearningDataModule.setup`; then checks that the images can be padded to
        ``image_size`` (in ``pad`` mode), so that a bad size fails before training starts."""
        super().setup(stage)
        if self.image_size is not None and self.arrays is not None:
            try:
                fit_size(self.arrays.train_x[:1], self.image_size, self.resize_mode)
            except ValueError as err:
                where = f" at {str(self.root)!r}" if getattr(self, "root", None) else ""
                raise ValueError(f"{type(self).__name__}{where}: {err}") from None

    def sized(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 batch brought to :attr:`image_size` (as it is when that is ``None``)."""
        return x if self.image_size is None else fit_size(x, self.image_size, self.resize_mode)

    def train_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Size, augment (if enabled) and normalise a uint8 batch."""
        return self._train_tf(self.sized(x))

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Size and normalise a uint8 batch."""
        return self._eval_tf(self.sized(x))


class LocalImageDataModule(ImageDataModule):
    """An :class:`ImageDataModule` read from files: ``root`` and ``cache_dir``, and the source
    loaded once (by :meth:`read`) however often :meth:`load_arrays` is called.

    Args:
        root: where the dataset's files are (what each subclass accepts, in its docstring).
        cache_dir: where decoded tensors (and downloads) are kept (default
            ``$UNLEARNING_CACHE_DIR`` or ``~/.cache/unlearning``).
        **kwargs: see :class:`ImageDataModule` and :class:`UnlearningDataModule`.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.cache_dir = cache_dir
        self._arrays: SourceArrays | None = None

    def read(self) -> SourceArrays:
        """Load (and cache) the source; subclasses implement it with a loader of
        :mod:`unlearning.data.sources`."""
        raise NotImplementedError

    def load_arrays(self) -> SourceArrays:
        """The source, read once."""
        if self._arrays is None:
            self._arrays = self.read()
        return self._arrays


class CIFAR10DataModule(LocalImageDataModule):
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
        super().__init__(root=root, cache_dir=cache_dir, **kwargs)

    def read(self) -> SourceArrays:
        """Load (and cache) CIFAR-10 with :func:`~unlearning.data.sources.load_cifar10`."""
        return load_cifar10(self.root, self.cache_dir)


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
        augment: random crop and flip of training batches; off by default (a small model should
            memorise the per-image noise).
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
        augment: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(augment=augment, **kwargs)
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self._arrays = make_synthetic_images(num_train, num_heldout, num_classes, image_size, signal, data_seed)

    def load_arrays(self) -> SourceArrays:
        """Return the synthetic images."""
        return self._arrays
