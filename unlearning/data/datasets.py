"""Data modules of datasets beyond CIFAR-10: CIFAR-100, SVHN, Tiny-ImageNet and any image folder.

Each only reads its files (:mod:`unlearning.data.sources`); the split, the streams, the
forget-by-class and the index files are :class:`~unlearning.data.base.UnlearningDataModule`'s,
and the size, augmentation and normalisation :class:`~unlearning.data.images.ImageDataModule`'s.
See ``docs/datasets.md`` for the layouts and config snippets.
"""

from __future__ import annotations

from unlearning.data.images import LocalImageDataModule
from unlearning.data.sources import (
    SourceArrays,
    load_cifar100,
    load_image_folder,
    load_svhn,
    load_tiny_imagenet,
)

__all__ = ["CIFAR100DataModule", "ImageFolderDataModule", "SVHNDataModule", "TinyImageNetDataModule"]


class CIFAR100DataModule(LocalImageDataModule):
    """CIFAR-100: retain/forget from the 50k training images, val/test from the 10k test images.

    Args:
        root: a folder holding torchvision's ``cifar-100-python/`` (``train``, ``test``, ``meta``),
            or that folder itself; ``None`` downloads with torchvision into the cache folder
            (needs network).
        cache_dir: where decoded tensors and downloads are kept.
        label_kind: ``fine`` (the 100 classes) or ``coarse`` (the 20 superclasses).
        **kwargs: see :class:`~unlearning.data.images.ImageDataModule` and
            :class:`~unlearning.data.base.UnlearningDataModule`.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, label_kind: str = "fine",
                 **kwargs) -> None:
        if label_kind not in ("fine", "coarse"):
            raise ValueError(f"label_kind {label_kind!r} is unknown: expected 'fine' or 'coarse'")
        super().__init__(root=root, cache_dir=cache_dir, **kwargs)
        self.label_kind = label_kind

    def read(self) -> SourceArrays:
        """Load (and cache) CIFAR-100 with :func:`~unlearning.data.sources.load_cifar100`."""
        return load_cifar100(self.root, self.cache_dir, self.label_kind)


class SVHNDataModule(LocalImageDataModule):
    """SVHN's cropped digits: retain/forget from ``train_32x32.mat`` (73,257 images), val/test from
    ``test_32x32.mat`` (26,032); classes ``"0"`` to ``"9"`` (the files' label 10 is digit 0).

    Horizontal flips turn some digits into others' mirror images: consider ``augment: false``.

    Args:
        root: the folder holding ``train_32x32.mat`` and ``test_32x32.mat``; ``None`` downloads
            with torchvision into the cache folder (needs network).
        cache_dir: where decoded tensors and downloads are kept.
        use_extra: train on ``train_32x32.mat`` followed by ``extra_32x32.mat`` (604,388 images;
            indices of index files count in that order, the extra images from 73,257 on).
        **kwargs: see :class:`~unlearning.data.images.ImageDataModule` and
            :class:`~unlearning.data.base.UnlearningDataModule`.
    """

    def __init__(self, root: str | None = None, cache_dir: str | None = None, use_extra: bool = False, **kwargs) -> None:
        super().__init__(root=root, cache_dir=cache_dir, **kwargs)
        self.use_extra = use_extra

    def read(self) -> SourceArrays:
        """Load (and cache) SVHN with :func:`~unlearning.data.sources.load_svhn`."""
        return load_svhn(self.root, self.cache_dir, use_extra=self.use_extra)


class TinyImageNetDataModule(LocalImageDataModule):
    """Tiny-ImageNet (200 classes, 64x64): retain/forget from ``train/`` (500 images a class),
    val/test from the labelled ``val/`` split (10,000 images, split 50/50 as CIFAR-10's test set).

    Args:
        root: the ``tiny-imagenet-200`` folder or a folder holding it (no download: torchvision
            has none for it).
        cache_dir: where decoded tensors are kept.
        class_names: ``words`` (readable names from ``words.txt``) or ``wnids``; labels follow
            the sorted wnids either way.
        **kwargs: see :class:`~unlearning.data.images.ImageDataModule` and
            :class:`~unlearning.data.base.UnlearningDataModule`.
    """

    def __init__(self, root: str, cache_dir: str | None = None, class_names: str = "words", **kwargs) -> None:
        if class_names not in ("words", "wnids"):
            raise ValueError(f"class_names {class_names!r} is unknown: expected 'words' or 'wnids'")
        super().__init__(root=root, cache_dir=cache_dir, **kwargs)
        self.class_names = class_names

    def read(self) -> SourceArrays:
        """Load (and cache) Tiny-ImageNet with :func:`~unlearning.data.sources.load_tiny_imagenet`."""
        return load_tiny_imagenet(self.root, self.cache_dir, self.class_names)


class ImageFolderDataModule(LocalImageDataModule):
    """Any image folder: retain/forget from ``train/<class>/*``, val/test from ``test/<class>/*``
    (both are needed, with the same class folders). Labels follow the sorted class folder names
    (as ``torchvision.datasets.ImageFolder``'s).

    Images of any size: with ``image_size`` set, each is brought to it when decoded (by
    ``resize_mode``, and cached so); without it, all must have one size.

    Args:
        root: the folder holding ``train/`` and ``test/``.
        cache_dir: where decoded tensors are kept.
        **kwargs: see :class:`~unlearning.data.images.ImageDataModule` (``image_size``,
            ``resize_mode``, ``mean``, ``std``, ``augment``) and
            :class:`~unlearning.data.base.UnlearningDataModule`.
    """

    def __init__(self, root: str, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(root=root, cache_dir=cache_dir, **kwargs)

    def read(self) -> SourceArrays:
        """Load (and cache) the folder with :func:`~unlearning.data.sources.load_image_folder`."""
        return load_image_folder(self.root, self.cache_dir, image_size=self.image_size, resize_mode=self.resize_mode)
