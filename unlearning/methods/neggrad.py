"""Gradient ascent (NegGrad, "GA"): maximise the loss on the forget set, with no retain data."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["NegGrad"]


class NegGrad(UnlearnModule):
    """Gradient ascent on the forget set: loss ``-CE(forget)``, nothing else.

    The plain baseline of the unlearning literature (e.g. Golatkar, Achille, Soatto, "Eternal
    Sunshine of the Spotless Net", CVPR 2020, arXiv 1911.04933; recipe of the SalUn and l1-sparse
    benchmarks: Fan et al., ICLR 2024, arXiv 2310.12508, and Jia et al., NeurIPS 2023,
    arXiv 2304.04934, code ``OPTML-Group/Unlearn-Sparse``, ``GA``). Retain-free: it declares only
    the forget stream, so no retain example ever reaches it. The ascent is unbounded by default, as
    published; ``max_forget_loss`` caps each example's maximised cross-entropy (an example past the
    cap gives no more gradient), which keeps a longer run from destroying utility.

    Published recipe (CIFAR-10, ResNet-18): SGD lr 1e-4, momentum 0.9, weight decay 5e-4, 5 epochs
    over the forget set, batch 256, constant learning rate. Known weakness: on random forget sets
    ascent degrades test accuracy ("Ascent Fails to Forget", arXiv 2509.26427).

    Args:
        lr: learning rate (published 1e-4).
        max_forget_loss: cap of each forget example's cross-entropy (``None``: no cap, as published); > 0.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)

    def __init__(self, lr: float = 1e-4, max_forget_loss: float | None = None, **kwargs) -> None:
        super().__init__(lr=lr, **kwargs)
        if max_forget_loss is not None and max_forget_loss <= 0:
            raise ValueError(f"max_forget_loss must be > 0 or null, got {max_forget_loss}")
        self.max_forget_loss = max_forget_loss

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Ascend the cross-entropy of a forget batch."""
        x, y = batch["forget"]
        losses = F.cross_entropy(self(x), y, reduction="none")
        maximised = losses if self.max_forget_loss is None else losses.clamp(max=self.max_forget_loss)
        self.log_dict({"train/forget_loss": losses.mean().detach()}, prog_bar=True)
        return -maximised.mean()
