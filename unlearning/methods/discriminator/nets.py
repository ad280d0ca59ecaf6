"""The discriminator: a plain ``nn.Module`` that plays a membership attacker."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unlearning.metrics.outputs import attack_features

__all__ = ["FEATURE_GROUPS", "MembershipDiscriminator", "feature_columns"]

#: The groups of columns of :func:`~unlearning.metrics.attack_features`, in their order: the
#: logit-scaled confidence of the label, the loss, the entropy (one column each), then the sorted
#: probability vector (``num_classes`` columns).
FEATURE_GROUPS: tuple[str, ...] = ("lsc", "loss", "entropy", "probs")


def feature_columns(features: Sequence[str], num_classes: int) -> list[int]:
    """The columns of :func:`~unlearning.metrics.attack_features` that hold the groups ``features``.

    Args:
        features: names among :data:`FEATURE_GROUPS`, each at most once, at least one.
        num_classes: classes of the classifier (the width of the ``probs`` group).

    Returns:
        The column indices, in the order of the attack features (not of ``features``).

    Raises:
        ValueError: on an empty selection, an unknown name or a repeated one.
    """
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise ValueError(f"features must be a list of names among {list(FEATURE_GROUPS)}, got {features!r}")
    if len(features) == 0:
        raise ValueError(f"features must name at least one of {list(FEATURE_GROUPS)}, got []")
    for name in features:
        if name not in FEATURE_GROUPS:
            raise ValueError(f"unknown discriminator feature {name!r}: expected some of {list(FEATURE_GROUPS)}")
    if len(set(features)) != len(features):
        raise ValueError(f"features must name each group once, got {list(features)}")
    groups = {"lsc": [0], "loss": [1], "entropy": [2], "probs": list(range(3, 3 + num_classes))}
    return [c for name in FEATURE_GROUPS if name in features for c in groups[name]]


class MembershipDiscriminator(nn.Module):
    """A small MLP that tells a classifier's outputs on training members from outputs on unseen
    examples, from the features of :func:`~unlearning.metrics.attack_features` (logit-scaled
    confidence, loss, entropy, sorted probability vector), or from the groups of them it is given.

    Args:
        num_classes: classes of the classifier whose outputs it reads (with every feature group,
            its input has ``num_classes + 3`` features).
        hidden: width of its two hidden layers.
        dropout: dropout after each hidden layer (a weaker, noisier attacker).
        features: the feature groups it reads, among :data:`FEATURE_GROUPS` (default: all); the
            other columns never reach it.
    """

    def __init__(self, num_classes: int = 10, hidden: int = 64, dropout: float = 0.0,
                 features: Sequence[str] = FEATURE_GROUPS) -> None:
        super().__init__()
        if num_classes < 2 or hidden < 1:
            raise ValueError(f"MembershipDiscriminator needs num_classes >= 2 and hidden >= 1, got {num_classes}, {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        columns = feature_columns(features, num_classes)
        self.features = tuple(name for name in FEATURE_GROUPS if name in features)
        # not in the state dict: checkpoints written before the selection existed still load
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(len(columns), hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The member logit of each example (positive: "seen in training"), shape ``(n,)``."""
        return self.mlp(self.select(attack_features(logits, labels))).squeeze(1)

    def select(self, features: torch.Tensor) -> torch.Tensor:
        """The columns of a full attack-feature matrix ``(n, num_classes + 3)`` that it reads."""
        return features.index_select(1, self.columns)
