"""Training the original model and the retrain-from-scratch oracle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback
from torch import nn

from unlearning.modules.base import EvaluatedModule
from unlearning.modules.checkpoint import cli_net_spec
from unlearning.nets import KitResNet18, build_net, net_num_classes
from unlearning.nets.weights import load_weights

__all__ = ["Classifier", "RetrainOracle", "classes_of", "make_optimizer", "norm_bias_groups", "piecewise_factor"]


def make_optimizer(
    module: EvaluatedModule,
    params: Any,
    lr: float,
    momentum: float,
    weight_decay: float,
    scheduler: Literal["cosine", "none", "piecewise"],
    nesterov: bool = False,
    lr_points: Sequence[Sequence[float]] | None = None,
    steps_per_batch: int = 1,
) -> Any:
    """SGD with an optional schedule stepped every optimiser step over the whole run: ``cosine``
    (to zero) or ``piecewise`` (linear between the ``(fraction of the run, factor of lr)`` points
    ``lr_points``, see :func:`piecewise_factor`). A module that takes ``steps_per_batch``
    optimiser steps per training batch (manual optimisation, stepping the schedule itself) gives
    that number, so that the schedule spans all of its steps."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if scheduler == "none":
        return opt
    total = max(1, int(module.trainer.estimated_stepping_batches) * steps_per_batch)
    if scheduler == "piecewise":
        points = check_lr_points(lr_points)
        sched: Any = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: piecewise_factor(points, step / total))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def check_lr_points(points: Sequence[Sequence[float]] | None) -> list[tuple[float, float]]:
    """Validate a piecewise-linear schedule: at least two ``(fraction, factor)`` points, the
    fractions rising strictly from 0 to 1, the factors >= 0.

    Raises:
        ValueError: naming what is wrong with the points.
    """
    if points is None:
        raise ValueError("scheduler 'piecewise' needs lr_points, e.g. [[0, 0.2], [0.23, 1.0], [1, 0.07]]")
    pts = [tuple(float(v) for v in p) for p in points]
    if len(pts) < 2 or any(len(p) != 2 for p in pts):
        raise ValueError(f"lr_points must be at least two [fraction, factor] pairs, got {list(points)}")
    fracs = [p[0] for p in pts]
    if fracs[0] != 0.0 or fracs[-1] != 1.0 or any(b <= a for a, b in zip(fracs, fracs[1:])):
        raise ValueError(f"lr_points' fractions must rise strictly from 0 to 1, got {fracs}")
    if any(p[1] < 0 for p in pts):
        raise ValueError(f"lr_points' factors must be >= 0, got {[p[1] for p in pts]}")
    return pts  # type: ignore[return-value]


def piecewise_factor(points: Sequence[tuple[float, float]], frac: float) -> float:
    """The factor of the learning rate at ``frac`` of the run: linear between the points,
    constant beyond the last."""
    frac = min(max(frac, 0.0), 1.0)
    for (f0, v0), (f1, v1) in zip(points, points[1:]):
        if frac <= f1:
            return v0 + (v1 - v0) * (frac - f0) / (f1 - f0)
    return points[-1][1]


def norm_bias_groups(net: nn.Module, lr: float, weight_decay: float, scale: float) -> list[dict[str, Any]]:
    """SGD parameter groups in which the biases of the normalisation layers (BatchNorm, GroupNorm,
    LayerNorm) get ``scale`` times the learning rate and ``1 / scale`` times the weight decay (so
    that the decay of each step, ``lr * weight_decay``, stays that of the other parameters)."""
    norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    biases = {id(m.bias) for m in net.modules() if isinstance(m, norms) and isinstance(m.bias, nn.Parameter)}
    params = list(net.parameters())
    return [
        {"params": [p for p in params if id(p) in biases], "lr": lr * scale, "weight_decay": weight_decay / scale},
        {"params": [p for p in params if id(p) not in biases]},
    ]


def callback_spec(cb: Callback) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of a callback (its ``init_args`` attribute, if it has one)."""
    cls = type(cb)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(getattr(cb, "init_args", {}) or {})}


def classes_of(net: nn.Module | None, num_classes: int | None) -> int:
    """The number of classes of a classifier: ``num_classes`` if given, else what the network
    records (:func:`~unlearning.nets.net_num_classes`), else 10 (the default network's).

    Raises:
        ValueError: if both are known and differ, naming both.
    """
    recorded = net_num_classes(net) if net is not None else None
    if num_classes is not None and recorded is not None and recorded != num_classes:
        raise ValueError(f"num_classes is {num_classes} but the network {type(net).__name__} outputs {recorded} "
                         "classes: give the same number to both (or leave the model's num_classes out)")
    if num_classes is not None:
        return int(num_classes)
    return recorded if recorded is not None else 10


class Classifier(EvaluatedModule):
    """Trains the original model on retain + forget (the ``train`` stream).

    Defaults follow the NeurIPS 2023 starting kit: SGD, lr 0.1, momentum 0.9, weight decay 5e-4,
    cosine schedule (stepped per batch over the whole run); the data module's ``augment`` gives the
    kit's random crop and flip.

    Args:
        net: the network (any ``nn.Module`` with an ``init_args`` dict, e.g. the project's
            ``SmallCNN``, ``CifarResNet``, ``KitResNet18``, ``FastCifarNet``, ``MLP``, or another
            library's model by name: ``TorchvisionNet``, ``TimmNet``); default the starting
            kit's ResNet-18.
        num_classes: number of classes; ``None``: the network's recorded ``num_classes``
            (10 for the default network, or a network that records none). Must match the
            network's when both are known.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        scheduler: ``cosine`` (to zero over the run), ``none``, or ``piecewise`` (linear between
            the points of ``lr_points``).
        label_smoothing: label smoothing of the cross-entropy.
        channels_last: use channels-last memory format for 4-D inputs and weights (faster
            convolutions on CPUs and tensor-core GPUs).
        log_distributions: see :class:`~unlearning.modules.base.EvaluatedModule`.
        mia_seed: see :class:`~unlearning.modules.base.EvaluatedModule`.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        lr_points: the ``piecewise`` schedule, ``[fraction of the run, factor of lr]`` pairs from
            0 to 1, e.g. ``[[0, 0.2], [0.23, 1], [1, 0.07]]`` (warm-up, then decay).
        norm_bias_lr_scale: factor of the normalisation biases' learning rate (their weight
            decay is divided by it); 1: plain SGD.
        train_callbacks: callbacks of the recipe that change the trained model (e.g.
            :class:`~unlearning.callbacks.WhiteningInit`): part of the module's settings, so of
            the score's cache key, unlike the trainer's callbacks.
        init_weights: pretrained weights the network starts from (a ``state_dict`` file, see
            docs/own_model.md; the oracle of a fine-tuned original needs the same file), read
            when training starts and keyed by content in the score's cache.
        init_skip: ``init_weights`` key prefixes left at random initialisation (``[fc.]``).
        init_strip_prefix: key prefixes stripped from ``init_weights`` first (``[module.]``).

    Raises:
        ValueError: on a ``num_classes`` other than the network's, ``lr <= 0``, Nesterov without momentum, ``lr_points`` without the
            ``piecewise`` scheduler (or bad points with it), or ``norm_bias_lr_scale <= 0``.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("train",)
    #: files the recipe reads, keyed by content in the score's cache (see
    #: :func:`~unlearning.scoring.cached_model.stage_recipe`)
    content_args: ClassVar[tuple[str, ...]] = ("init_weights",)

    def __init__(
        self,
        net: nn.Module | None = None,
        num_classes: int | None = None,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        scheduler: Literal["cosine", "none", "piecewise"] = "cosine",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        log_distributions: bool = True,
        mia_seed: int = 0,
        nesterov: bool = False,
        lr_points: list[tuple[float, float]] | None = None,
        norm_bias_lr_scale: float = 1.0,
        train_callbacks: list[Callback] | None = None,
        init_weights: str | None = None,
        init_skip: list[str] | None = None,
        init_strip_prefix: list[str] | None = None,
    ) -> None:
        if isinstance(net, dict):  # a spec, as stored in the hparams of a checkpoint being reloaded
            net = build_net(net)
        num_classes = classes_of(net, num_classes)
        super().__init__(num_classes=num_classes, log_distributions=log_distributions, mia_seed=mia_seed)
        self.num_classes_source = "the model (--model.init_args.num_classes)"
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if nesterov and momentum <= 0:
            raise ValueError(f"nesterov needs momentum > 0, got momentum={momentum}")
        if scheduler == "piecewise":
            check_lr_points(lr_points)
        elif lr_points is not None:
            raise ValueError(f"lr_points is the 'piecewise' scheduler's: set scheduler: piecewise (got {scheduler!r})")
        if norm_bias_lr_scale <= 0:
            raise ValueError(f"norm_bias_lr_scale must be > 0, got {norm_bias_lr_scale}")
        self.save_hyperparameters(ignore=["net", "train_callbacks"])
        self.hparams["num_classes"] = num_classes
        if net is None:
            net = KitResNet18(num_classes=num_classes)
        self.set_net(net, cli_net_spec(net))
        self.hparams["net"] = self.net_spec
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.scheduler, self.label_smoothing, self.channels_last = scheduler, label_smoothing, channels_last
        self.nesterov, self.lr_points, self.norm_bias_lr_scale = nesterov, lr_points, norm_bias_lr_scale
        self.train_callbacks = list(train_callbacks or [])
        if self.train_callbacks:  # recorded as specs: a checkpoint's hyperparameters hold no objects
            self.hparams["train_callbacks"] = [callback_spec(cb) for cb in self.train_callbacks]
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.init_weights = init_weights
        self.init_skip, self.init_strip_prefix = list(init_skip or []), list(init_strip_prefix or [])

    def setup(self, stage: str) -> None:
        """The base's setup; at the start of training, the ``init_weights`` file loaded into the
        network (before a resumed run's checkpoint is restored over it; not when a trained model
        is reloaded for evaluation, which needs no file)."""
        super().setup(stage)
        if stage == "fit" and self.init_weights is not None:
            load_weights(self.net, self.init_weights, self.init_strip_prefix, self.init_skip,
                         strip_flag="--model.init_args.init_strip_prefix")

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

    def configure_callbacks(self) -> list[Callback]:
        """The base's callbacks, then the recipe's ``train_callbacks``."""
        return [*super().configure_callbacks(), *self.train_callbacks]

    def configure_optimizers(self) -> Any:
        """SGD (+ schedule), with the normalisation biases' own learning rate if scaled."""
        params: Any = self.net.parameters()
        if self.norm_bias_lr_scale != 1.0:
            params = norm_bias_groups(self.net, self.lr, self.weight_decay, self.norm_bias_lr_scale)
        return make_optimizer(self, params, self.lr, self.momentum, self.weight_decay, self.scheduler,
                              nesterov=self.nesterov, lr_points=self.lr_points)


class RetrainOracle(Classifier):
    """The gold standard: the same recipe as :class:`Classifier`, from a fresh seeded
    initialisation, on the retain stream only (the forget set is never seen).

    Args: as :class:`Classifier`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)
