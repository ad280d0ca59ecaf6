"""ResNets: the starting kit's torchvision ResNet-18 and the CIFAR ResNets by depth."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from unlearning.nets.base import Net

__all__ = ["CifarResNet", "KitResNet18"]


class KitResNet18(Net):
    """The NeurIPS 2023 starting kit's network: ``torchvision.models.resnet18(num_classes=10)``.

    It keeps torchvision's ImageNet stem (7x7 stride-2 conv and max-pool) exactly as the kit does,
    so results are comparable with the competition's.

    Args:
        num_classes: number of output classes.
    """

    wrapped = "model"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self._record(num_classes=num_classes)
        self.model = torchvision.models.resnet18(weights=None, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        return self.model(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(Net):
    """The CIFAR ResNets of He et al. (2016): depth = 6n + 2 (8, 20, 32, 44, 56, 110, ...).

    Three stages of ``n`` basic blocks with ``width``, ``2*width`` and ``4*width`` channels, a
    3x3 stem and no max-pool, as in the paper's CIFAR-10 experiments.

    Args:
        depth: total number of weighted layers; must be 6n + 2 for an integer n >= 1.
        num_classes: number of output classes.
        width: channels of the first stage (16 in the paper).
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet depth must be 6n+2 with n >= 1 (8, 20, 32, 56, ...), got {depth}")
        if width < 1:
            raise ValueError(f"CifarResNet width must be >= 1, got {width}")
        self._record(depth=depth, num_classes=num_classes, width=width)
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(_BasicBlock(cin, cout, stride=2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
