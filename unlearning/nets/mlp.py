"""A multilayer perceptron for 2-D toy data."""

from __future__ import annotations

import torch
from torch import nn

from unlearning.nets.base import Net

__all__ = ["MLP"]


class MLP(Net):
    """Fully connected ReLU network.

    Args:
        in_features: input dimension (2 for the two-circles data).
        num_classes: number of output classes.
        hidden: width of each hidden layer.
        depth: number of hidden layers (0 gives a linear model).
    """

    def __init__(self, in_features: int = 2, num_classes: int = 2, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        if depth < 0 or hidden < 1:
            raise ValueError(f"MLP needs depth >= 0 and hidden >= 1, got depth={depth}, hidden={hidden}")
        self._record(in_features=in_features, num_classes=num_classes, hidden=hidden, depth=depth)
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        return self.layers(x.flatten(1))
