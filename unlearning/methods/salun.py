"""SalUn: random labels on the forget set, confined to the weights most salient for forgetting
(Fan et al., ICLR 2024)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from unlearning.modules.classifier import make_optimizer
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["SalUn", "saliency_mask"]


def saliency_mask(grads: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """The global top ``fraction`` of entries by gradient magnitude, as boolean masks.

    One ranking over every entry of every tensor together (not per layer). Exactly
    ``max(1, int(fraction * total))`` entries are selected; ties are broken by position (a stable
    sort), so the mask is a pure function of the gradients.

    Args:
        grads: ``{name: gradient}`` (any shapes).
        fraction: share of entries to select, in (0, 1].

    Returns:
        ``{name: bool tensor of the gradient's shape}``, ``True`` where an entry is salient.
    """
    names = list(grads)
    flat = torch.cat([grads[n].detach().abs().flatten().float() for n in names])
    k = max(1, int(fraction * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[torch.argsort(flat, descending=True, stable=True)[:k]] = True
    out, start = {}, 0
    for n in names:
        size = grads[n].numel()
        out[n] = chosen[start : start + size].view(grads[n].shape)
        start += size
    return out


class SalUn(UnlearnModule):
    """Saliency unlearning: random-label training on the forget set (beside ordinary training on
    retain) that changes only the weights most salient for forgetting.

    Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based
    Weight Saliency", ICLR 2024, arXiv 2310.12508 (code: ``OPTML-Group/Unlearn-Saliency``).

    1. Saliency (once, in :meth:`on_train_start`): the gradient of the forget loss ``-CE`` summed
       over the whole forget set, network in eval mode, unaugmented (the published code sums batch
       means: the same ranking up to a final partial batch); its magnitude is ranked over all
       parameters together and the top ``saliency_fraction`` of the entries form the mask
       (:func:`saliency_mask`). The pre-pass is counted in the cost (one image per forget example).
    2. Unlearning: cross-entropy on retain batches plus cross-entropy on forget batches with labels
       drawn uniformly from all classes (the published CIFAR-10 variant: a draw may hit the true
       label), a forget term on every k-th step, k = ``forget_every()``, so each epoch draws about
       one forget set's worth of forget examples beside the retain pass. Only salient entries move: before each optimiser
       step the gradient of every non-salient entry is set to zero, and weight decay, folded into
       the gradient there, is masked with it (the SGD optimiser itself has no weight decay), so a
       non-salient entry's momentum stays zero and the entry keeps its original bits. The
       published code gets the same result by restoring masked entries and their momentum after
       each step. Buffers (BatchNorm running statistics) are updated by the training-mode
       forward passes, as in the published code; they are not weights.

    Published recipe (CIFAR-10, ResNet-18, 10% random forgetting): mask of the top 50%, SGD lr
    0.013, momentum 0.9, weight decay 5e-4, 10 epochs, batch 256, constant learning rate (the
    repository's multi-step schedule decays only at epochs 91 and 136).

    ``resumable = False``: the mask is computed in :meth:`on_train_start` and kept outside the
    checkpoint, so a resumed fit would rank the gradients of half-unlearned weights.

    Args:
        saliency_fraction: share of all parameter entries that may change, in (0, 1].
        forget_weight: weight of the random-label term, >= 0.
        lr: learning rate (published 0.013).
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")
    resumable: ClassVar[bool] = False

    def __init__(self, saliency_fraction: float = 0.5, forget_weight: float = 1.0, lr: float = 0.013, **kwargs) -> None:
        super().__init__(lr=lr, **kwargs)
        if not 0.0 < saliency_fraction <= 1.0:
            raise ValueError(f"saliency_fraction must be in (0, 1], got {saliency_fraction}")
        if forget_weight < 0:
            raise ValueError(f"forget_weight must be >= 0, got {forget_weight}")
        self.saliency_fraction, self.forget_weight = saliency_fraction, forget_weight
        #: ``{parameter name: bool mask}`` of ``self.net``, set by :meth:`on_train_start`
        self.saliency: dict[str, torch.Tensor] | None = None

    def forget_gradients(self) -> dict[str, torch.Tensor]:
        """The gradient of ``-CE`` summed over the forget set, per parameter of ``self.net``
        (summed over DDP ranks, each of which reads its shard of the forget set)."""
        params = dict(self.net.named_parameters())
        was_training = self.net.training
        self.net.eval()
        self.net.zero_grad(set_to_none=True)
        seen = 0
        for x, y in self.stream("forget", train=False):
            (-F.cross_entropy(self.net(self.prepare_input(x)), y, reduction="sum")).backward()
            seen += int(x.shape[0])
        self.count_images(seen)  # eval mode: not counted by forward
        grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
        self.net.zero_grad(set_to_none=True)
        self.net.train(was_training)
        if self._trainer is not None and self.trainer.world_size > 1:
            grads = {n: self.trainer.strategy.reduce(g, reduce_op="sum") for n, g in grads.items()}
        return grads

    def on_train_start(self) -> None:
        """Compute the saliency mask (the one-time pre-pass)."""
        self.saliency = saliency_mask(self.forget_gradients(), self.saliency_fraction)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Add the weight decay to the gradient, then zero the gradient of non-salient entries."""
        if self.saliency is None:
            return
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                p.grad.copy_(torch.where(self.saliency[name], g, torch.zeros_like(g)))

    def configure_optimizers(self) -> Any:
        """SGD with the module's lr and momentum and no weight decay of its own (it is applied,
        masked, in :meth:`on_before_optimizer_step`), plus the cosine schedule if chosen."""
        return make_optimizer(self, self.net.parameters(), self.lr, self.momentum, 0.0, self.scheduler)

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Retain CE, plus CE on forget with uniformly random labels on every k-th step."""
        (xr, yr), (xf, yf) = batch["retain"], batch["forget"]
        retain_loss = F.cross_entropy(self(xr), yr)
        loss, logs = retain_loss, {"train/retain_loss": retain_loss}
        if batch_idx % self.forget_every() == 0:
            labels = torch.randint(0, self.num_classes, yf.shape, device=yf.device)
            forget_loss = F.cross_entropy(self(xf), labels)
            loss = loss + self.forget_weight * forget_loss
            logs["train/forget_loss"] = forget_loss
        self.log_dict(logs, prog_bar=True)
        return loss
