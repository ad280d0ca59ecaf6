"""A small convolutional network for the CPU presets."""

from __future__ import annotations

import torch
from torch import nn

from unlearning.nets.base import Net

__all__ = ["SmallCNN"]


class SmallCNN(Net):
    """Four 3x3 conv layers (width, width, 2*width, 2*width) with BatchNorm and ReLU, max-pools
    down to 4x4, then a fully connected head (``2*width*16 -> hidden -> num_classes``).

    With ``width=16`` it trains at roughly twice the speed of ResNet-18 on CPU and, without
    augmentation, memorises a 10k-image CIFAR-10 subset in about ten epochs: an original model
    with a clear train/test gap, which is what makes unlearning measurable on small machines.

    Args:
        num_classes: number of output classes.
        width: channels of the first two conv layers; the last two have twice as many.
        hidden: width of the hidden fully connected layer.
        in_channels: channels of the input images (32x32 pixels).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, hidden: int = 256, in_channels: int = 3) -> None:
        super().__init__()
        if width < 1 or hidden < 1:
            raise ValueError(f"SmallCNN width and hidden must be >= 1, got width={width}, hidden={hidden}")
        self._record(num_classes=num_classes, width=width, hidden=hidden, in_channels=in_channels)
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, w),
            *block(w, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            *block(2 * w, 2 * w),
            nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(2 * w * 16, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        return self.head(self.features(x))
