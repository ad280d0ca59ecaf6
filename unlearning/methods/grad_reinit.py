"""Gradient-based re-initialisation, then retraining on retain: a top NeurIPS 2023 unlearning
competition entry (Kookmin University's write-up; "MSG" in the DeepUnlearn benchmark)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearning.modules.unlearn import UnlearnModule

__all__ = ["GradientReinit"]


class GradientReinit(UnlearnModule):
    """Re-initialise the conv weights that matter least, then retrain on retain.

    1. Accumulate gradients of ``CE`` on a random retain subset as large as the forget set plus
       ``-CE`` on the forget set.
    2. Over all ``Conv2d`` weights together, re-draw the ``reinit_fraction`` (30%) entries with the
       smallest gradient magnitude from Kaiming normal (fan_out, ReLU).
    3. Train on retain (SGD lr 1e-3, momentum 0.9, weight decay 5e-4, linear warm-up then linear
       decay, 5 epochs) with the gradient of every untouched weight scaled by ``untouched_scale``
       (0.1: a ten times smaller learning rate).

    The random retain subset and the re-drawn values differ per seed: per-run randomness, which
    the competition's metric rewards.

    Args:
        reinit_fraction: share of conv weights re-initialised, in (0, 1).
        untouched_scale: gradient scale of the weights not re-initialised.
        warmup_fraction: share of the steps spent warming up the learning rate.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule` (``lr`` defaults to 1e-3).
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)
    #: its on_train_start re-initialises weights and installs gradient masks: a resumed fit would do it again
    resumable: ClassVar[bool] = False
    extra_streams: ClassVar[tuple[str, ...]] = ("forget",)

    def __init__(
        self,
        reinit_fraction: float = 0.3,
        untouched_scale: float = 0.1,
        warmup_fraction: float = 0.1,
        lr: float = 1e-3,
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, **kwargs)
        if not 0.0 < reinit_fraction < 1.0:
            raise ValueError(f"reinit_fraction must be in (0, 1), got {reinit_fraction}")
        self.reinit_fraction, self.untouched_scale, self.warmup_fraction = reinit_fraction, untouched_scale, warmup_fraction
        self._hooks: list[Any] = []

    def _accumulate_gradients(self) -> None:
        self.net.zero_grad()
        n_forget = 0
        for x, y in self.stream("forget"):
            (-F.cross_entropy(self(x), y, reduction="sum")).backward()
            n_forget += int(x.shape[0])
        n_retain = 0
        for x, y in self.stream("retain"):
            x, y = x[: n_forget - n_retain], y[: n_forget - n_retain]
            F.cross_entropy(self(x), y, reduction="sum").backward()
            n_retain += int(x.shape[0])
            if n_retain >= n_forget:
                break

    def on_train_start(self) -> None:
        """Score, re-initialise, and install the gradient scaling."""
        convs = [m for m in self.net.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{type(self).__name__} needs a network with Conv2d layers")
        self.net.train()
        self._accumulate_gradients()
        grads = torch.cat([m.weight.grad.abs().flatten() for m in convs])
        k = max(1, int(self.reinit_fraction * grads.numel()))
        threshold = torch.kthvalue(grads.cpu(), k).values.item()
        for m in convs:
            mask = m.weight.grad.abs() <= threshold
            fresh = torch.empty_like(m.weight)
            nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu")
            with torch.no_grad():
                m.weight[mask] = fresh[mask]
            scale = torch.where(mask, 1.0, self.untouched_scale).to(m.weight.dtype)
            self._hooks.append(m.weight.register_hook(lambda g, s=scale: g * s))
        reinit = set(id(m.weight) for m in convs)
        for p in self.net.parameters():
            if id(p) not in reinit:
                self._hooks.append(p.register_hook(lambda g: g * self.untouched_scale))
        self.net.zero_grad()

    def on_train_end(self) -> None:
        """Remove the gradient hooks."""
        super().on_train_end()
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def configure_optimizers(self) -> Any:
        """SGD with linear warm-up then linear decay, per step."""
        opt = torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = max(1, int(self.warmup_fraction * total))

        def factor(step: int) -> float:
            return (step + 1) / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on retain (the forget set is read once, for scoring, at the start)."""
        x, y = batch["retain"]
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss
