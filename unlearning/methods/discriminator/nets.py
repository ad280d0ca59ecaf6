"""The discriminator: a plain ``nn.Module`` that plays a membership attacker."""

from __future__ import annotations

import torch
from torch import nn

from unlearning.metrics.outputs import attack_features

__all__ = ["MembershipDiscriminator"]


class MembershipDiscriminator(nn.Module):
    """A small MLP that tells a classifier's outputs on training members from outputs on unseen
    examples, from the features of :func:`~unlearning.metrics.attack_features` (logit-scaled
    confidence, loss, entropy, sorted probability vector).

    Args:
        num_classes: classes of the classifier whose outputs it reads (its input has
            ``num_classes + 3`` features).
        hidden: width of its two hidden layers.
        dropout: dropout after each hidden layer (a weaker, noisier attacker).
    """

    def __init__(self, num_classes: int = 10, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2 or hidden < 1:
            raise ValueError(f"MembershipDiscriminator needs num_classes >= 2 and hidden >= 1, got {num_classes}, {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.mlp = nn.Sequential(
            nn.Linear(num_classes + 3, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The member logit of each example (positive: "seen in training"), shape ``(n,)``."""
        return self.mlp(attack_features(logits, labels)).squeeze(1)
