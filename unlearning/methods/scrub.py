"""SCRUB (Kurmanji et al., NeurIPS 2023): a student kept close to the teacher on retain and
pushed away from it on forget."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unlearning.methods.losses import distill_kl
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["SCRUB"]


class SCRUB(UnlearnModule):
    """Alternate max-steps on forget (``-KL(teacher || student)``) and min-steps on retain
    (``gamma * CE + alpha * KL``), the teacher being the frozen original.

    The published loop makes, each of its first ``msteps`` epochs, one pass over forget then one
    over retain. Here both streams come in every step; a max-step is taken on every k-th step,
    k = ceil(len(retain) / len(forget)), so each epoch still sweeps the forget set about once,
    interleaved with the retain min-steps. Published large-scale defaults: gamma 0.99, alpha
    0.001, T 4, msteps 2, 3 epochs, SGD lr 5e-4, momentum 0.9, weight decay 5e-4.

    Args:
        gamma: weight of the retain cross-entropy.
        alpha: weight of the retain distillation term.
        temperature: distillation temperature.
        msteps: number of epochs with max-steps.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (``lr`` defaults to 5e-4).
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")
    uses_original = True

    def __init__(
        self,
        gamma: float = 0.99,
        alpha: float = 0.001,
        temperature: float = 4.0,
        msteps: int = 2,
        lr: float = 5e-4,
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        self.gamma, self.alpha, self.temperature, self.msteps = gamma, alpha, temperature, msteps
        self.automatic_optimization = False

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> None:
        """One interleaved max-step (some steps) and one min-step."""
        opt = self.optimizers()
        sched = self.lr_schedulers()
        (xr, yr), (xf, _) = batch["retain"], batch["forget"]
        if self.current_epoch < self.msteps and batch_idx % self.forget_every() == 0:
            with torch.no_grad():
                teacher_f = self.original_net(xf)
            max_loss = -distill_kl(self(xf), teacher_f, self.temperature)
            opt.zero_grad()
            self.manual_backward(max_loss)
            opt.step()
            self.log("train/forget_kl", -max_loss)
        with torch.no_grad():
            teacher_r = self.original_net(xr)
        logits = self(xr)
        ce = F.cross_entropy(logits, yr)
        min_loss = self.gamma * ce + self.alpha * distill_kl(logits, teacher_r, self.temperature)
        opt.zero_grad()
        self.manual_backward(min_loss)
        opt.step()
        if sched is not None:
            sched.step()
        self.log("train/retain_loss", ce, prog_bar=True)
