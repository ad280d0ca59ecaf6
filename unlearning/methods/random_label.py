"""Random labels: relabel the forget set with wrong classes and train on it beside retain."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["RandomLabel"]


def random_wrong_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A uniformly random label different from each true label (fresh draws on every call)."""
    shift = torch.randint(1, num_classes, y.shape, device=y.device)
    return (y + shift) % num_classes


class RandomLabel(UnlearnModule):
    """Cross-entropy on retain batches plus cross-entropy on forget batches whose labels are
    redrawn, wrong, every time (SG-Unlearn's labels; SalUn's schedule of one forget pass per
    epoch beside the retain pass). A forget term is added on every k-th step, k =
    ``forget_every()``, so each epoch sweeps the forget set once.

    Args:
        forget_weight: weight of the random-label term.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")

    def __init__(self, forget_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.forget_weight = forget_weight

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Retain CE + random-label CE on forget."""
        (xr, yr), (xf, yf) = batch["retain"], batch["forget"]
        loss = F.cross_entropy(self(xr), yr)
        self.log("train/retain_loss", loss, prog_bar=True)
        if batch_idx % self.forget_every() == 0:
            forget_loss = F.cross_entropy(self(xf), random_wrong_labels(yf, self.num_classes))
            self.log("train/forget_loss", forget_loss)
            loss = loss + self.forget_weight * forget_loss
        return loss
