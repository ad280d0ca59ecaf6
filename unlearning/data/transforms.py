"""Batch-level image transforms that run on the training device.

The per-image torchvision pipeline of the starting kit (``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``) done for a whole uint8 batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "ImageTransform"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and crop it back to its size at a random offset."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # b, h, 1
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # b, 1, w
    batch = torch.arange(b, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class ImageTransform:
    """uint8 images -> (optionally augmented) normalised float images.

    Args:
        mean: per-channel mean of the normalisation.
        std: per-channel standard deviation of the normalisation.
        augment: apply random crop (with ``padding``) and horizontal flip.
        padding: zero padding of the random crop.
    """

    def __init__(
        self,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        augment: bool = False,
        padding: int = 4,
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment
        self.padding = padding

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Transform a ``B x C x H x W`` uint8 batch."""
        if self.augment:
            x = random_hflip(random_crop(x, self.padding))
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x.to(torch.float32) / 255.0 - mean) / std
