"""Training the original model and the retrain-from-scratch oracle."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearning.modules.base import EvaluatedModule, cli_net_spec
from unlearning.nets import KitResNet18, build_net

__all__ = ["Classifier", "RetrainOracle", "make_optimizer"]


def make_optimizer(
    module: EvaluatedModule,
    params: Any,
    lr: float,
    momentum: float,
    weight_decay: float,
    scheduler: Literal["cosine", "none"],
) -> Any:
    """SGD with an optional cosine schedule stepped every batch over the whole run."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if scheduler == "none":
        return opt
    total = max(1, int(module.trainer.estimated_stepping_batches))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class Classifier(EvaluatedModule):
    """Trains the original model on retain + forget (the ``train`` stream).

    Defaults follow the NeurIPS 2023 starting kit: SGD, lr 0.1, momentum 0.9, weight decay 5e-4,
    cosine schedule (stepped per batch over the whole run); the data module's ``augment`` gives the
    kit's random crop and flip.

    Args:
        net: the network (any ``nn.Module`` with an ``init_args`` dict, e.g. the project's
            ``SmallCNN``, ``CifarResNet``, ``KitResNet18``, ``MLP``); default the starting kit's
            ResNet-18.
        num_classes: number of classes (must match the network's output).
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        scheduler: ``cosine`` (to zero over the run) or ``none``.
        label_smoothing: label smoothing of the cross-entropy.
        channels_last: use channels-last memory format for 4-D inputs and weights (faster
            convolutions on CPUs and tensor-core GPUs).
        log_distributions: see :class:`~unlearning.modules.base.EvaluatedModule`.
        mia_seed: see :class:`~unlearning.modules.base.EvaluatedModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("train",)

    def __init__(
        self,
        net: nn.Module | None = None,
        num_classes: int = 10,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        scheduler: Literal["cosine", "none"] = "cosine",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        log_distributions: bool = True,
        mia_seed: int = 0,
    ) -> None:
        super().__init__(num_classes=num_classes, log_distributions=log_distributions, mia_seed=mia_seed)
        self.num_classes_source = "the model (--model.init_args.num_classes)"
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.save_hyperparameters(ignore=["net"])
        if net is None:
            net = KitResNet18(num_classes=num_classes)
        elif isinstance(net, dict):  # a spec, as stored in the hparams of a checkpoint being reloaded
            net = build_net(net)
        self.set_net(net, cli_net_spec(net))
        self.hparams["net"] = self.net_spec
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.scheduler, self.label_smoothing, self.channels_last = scheduler, label_smoothing, channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last layout for 4-D inputs when enabled."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on the declared training stream."""
        (x, y), = batch.values()
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", acc, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        """SGD (+ cosine schedule)."""
        return make_optimizer(self, self.net.parameters(), self.lr, self.momentum, self.weight_decay, self.scheduler)


class RetrainOracle(Classifier):
    """The gold standard: the same recipe as :class:`Classifier`, from a fresh seeded
    initialisation, on the retain stream only (the forget set is never seen).

    Args: as :class:`Classifier`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)
