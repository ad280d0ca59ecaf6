"""NegGrad+: descend on retain while ascending on forget (Kurmanji et al., 2023)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["NegGradPlus"]


class NegGradPlus(UnlearnModule):
    """Loss ``alpha * CE(retain) - (1 - alpha) * CE(forget)`` on a retain and a forget batch per
    step (the forget stream cycles alongside the longer retain stream).

    Published setting (SCRUB repository): alpha 0.95, SGD lr 0.01, 10 epochs. The forget term (the
    batch's mean cross-entropy) is clamped at ``max_mean_forget_loss`` so that ascent cannot run
    away once the forget set is misclassified (an unbounded ascent destroys utility). Unlike
    :class:`~unlearning.methods.NegGrad`'s ``max_forget_loss``, which caps each example, this caps
    the mean: one example far past the cap still pulls the batch's term up.

    Args:
        alpha: weight of the retain term, in (0, 1].
        max_mean_forget_loss: cap of the forget batch's mean cross-entropy being maximised.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")

    def __init__(self, alpha: float = 0.95, max_mean_forget_loss: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.max_mean_forget_loss = alpha, max_mean_forget_loss

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Weighted retain descent and forget ascent."""
        (xr, yr), (xf, yf) = batch["retain"], batch["forget"]
        retain_loss = F.cross_entropy(self(xr), yr)
        forget_loss = F.cross_entropy(self(xf), yf).clamp(max=self.max_mean_forget_loss)
        loss = self.alpha * retain_loss - (1 - self.alpha) * forget_loss
        self.log_dict({"train/retain_loss": retain_loss, "train/forget_loss": forget_loss}, prog_bar=True)
        return loss
