"""Fine-tuning on the retain set: the NeurIPS 2023 starting kit's baseline."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["Finetune"]


class Finetune(UnlearnModule):
    """Keep training on the retain set only; the forget set fades as the model drifts.

    Starting-kit recipe: 5 epochs, SGD lr 0.1, momentum 0.9, weight decay 5e-4, cosine schedule
    (here stepped per batch), cross-entropy on retain. Never sees the forget set.

    Args:
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (``lr`` defaults to 0.1 here).
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)

    def __init__(self, lr: float = 0.1, **kwargs) -> None:
        super().__init__(lr=lr, **kwargs)

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on a retain batch."""
        x, y = batch["retain"]
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss
