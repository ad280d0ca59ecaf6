"""Bring uint8 image batches to the size a model takes: resize or zero-pad (torchvision's own
functions, on whichever device the batch is on)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["SIZE_MODES", "as_size", "fit_size"]

#: how images are brought to ``image_size``: ``resize`` (bilinear, antialiased) or ``pad`` (zero
#: padding around the image, centred; the image must not be larger than the size)
SIZE_MODES = ("resize", "pad")


def as_size(image_size: int | Sequence[int] | None, resize_mode: str = "resize") -> tuple[int, int] | None:
    """``image_size`` as ``(height, width)`` (``None`` stays ``None``: images keep their size).

    Args:
        image_size: one side (square images), ``[height, width]``, or ``None``.
        resize_mode: one of :data:`SIZE_MODES`; checked here so that a bad config fails at once.

    Raises:
        ValueError: if the size is not one or two integers >= 1, or the mode is unknown.
    """
    if resize_mode not in SIZE_MODES:
        raise ValueError(f"resize_mode {resize_mode!r} is unknown: expected one of {list(SIZE_MODES)}")
    if image_size is None:
        return None
    size = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(f"image_size {image_size!r} is not a size: expected an integer >= 1 or [height, width]")
    return size[0], size[1]


def fit_size(x: torch.Tensor, size: tuple[int, int], resize_mode: str = "resize") -> torch.Tensor:
    """A ``B x C x H x W`` batch brought to ``size`` (returned as is when it has that size already).

    Args:
        x: the images (uint8, or float).
        size: ``(height, width)``.
        resize_mode: ``resize`` (bilinear with antialiasing, as ``torchvision.transforms.v2.Resize``)
            or ``pad`` (zeros around the image, centred, as ``torchvision.transforms.v2.Pad``).

    Raises:
        ValueError: in ``pad`` mode, if the images are larger than ``size``.
    """
    import torchvision.transforms.v2.functional as TF

    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    if resize_mode == "resize":
        return TF.resize(x, list(size), antialias=True)
    if h > size[0] or w > size[1]:
        raise ValueError(f"images of {w}x{h} pixels cannot be padded to image_size {size[1]}x{size[0]}: expected "
                         "an image_size at least as large as the images, or resize_mode 'resize'")
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    return TF.pad(x, [left, top, size[1] - w - left, size[0] - h - top])
