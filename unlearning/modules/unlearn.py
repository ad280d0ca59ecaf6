"""The base class of every unlearning algorithm."""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Literal

from torch import nn

from unlearning.modules.base import EvaluatedModule
from unlearning.modules.checkpoint import load_net
from unlearning.modules.classifier import make_optimizer
from unlearning.nets import build_net, net_num_classes

__all__ = ["UnlearnModule", "original_network"]


def original_network(owner: str, original: str | None, net_spec: dict[str, Any] | None) -> tuple[nn.Module, dict[str, Any], int]:
    """The network a module starts from: the original checkpoint's (weights included), or, when a
    saved module is reloaded without it, a fresh one built from the stored spec.

    Returns:
        ``(network, spec, num_classes)``.

    Raises:
        ValueError: if neither is given (``owner`` names the module in the message).
    """
    if original is not None:
        net, meta = load_net(original)
        return net, meta["net"], int(meta["num_classes"])
    if net_spec is not None:
        net = build_net(net_spec)
        num_classes = net_num_classes(net)
        if num_classes is None:
            raise ValueError(f"{owner}: the network spec {net_spec.get('class_path')!r} records no num_classes: "
                             "give `original`, the original model's checkpoint")
        return net, net_spec, num_classes
    raise ValueError(f"{owner} needs `original`: the path of the original model's checkpoint")


class UnlearnModule(EvaluatedModule):
    """Base class of unlearning algorithms: start from a trained original, train on the declared
    streams, and be evaluated against the retrain oracle.

    A subclass sets ``train_streams`` (any of ``retain``, ``forget``, ``val``) and writes
    ``training_step(batch, batch_idx)``, where ``batch`` is ``{stream: (x, y)}`` holding exactly
    the declared streams. Everything else comes from here: loading the original, a frozen copy of
    it (only when ``uses_original = True``), evaluation against the oracle, seeding (the run's
    ``seed_everything`` drives shuffles and any ``torch`` randomness), cost accounting and the
    default optimiser (SGD + cosine; override ``configure_optimizers`` for another).

    Hooks a subclass may use:
        ``self.net``: the network being unlearned (starts as a copy of the original).
        ``self.original_net``: the frozen original (``uses_original = True`` only).
        ``self.stream(name)``: iterate over a declared stream (``train_streams`` or
        ``extra_streams``) outside ``training_step``, e.g. a pre-pass in ``on_train_start``;
        ``self.cycle(name)``: its batches without end (a pool of reference batches).
        Cost counts every image the network sees in training mode, wherever it comes from.

    Args:
        original: path of the original model's checkpoint (written by ``Classifier``); its
            network is rebuilt from the checkpoint alone. Required, except when reloading an
            unlearned checkpoint, which stands alone.
        oracle: path of a retrain oracle's checkpoint to compare with at every evaluation
            (accuracy and MIA gaps, KL divergence, cost fraction). Optional.
        lr: learning rate of the default optimiser.
        momentum: SGD momentum of the default optimiser.
        weight_decay: SGD weight decay of the default optimiser.
        scheduler: ``cosine`` (per step, to zero over the run) or ``none``.
        oracle_train_time_s: one oracle training's wall time, for the cost fraction, when no
            oracle checkpoint is given (or to override the one it records).
        net_spec: the network's spec; filled in automatically (reloading a checkpoint).
        log_distributions: see :class:`~unlearning.modules.base.EvaluatedModule`.
        mia_seed: see :class:`~unlearning.modules.base.EvaluatedModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")
    #: one-time stages the method needs, ``{init argument: class path of the stage's module}``:
    #: a checkpoint trained once per original (e.g. a hypernetwork), passed as that argument.
    stages: ClassVar[dict[str, str]] = {}
    #: keep a frozen copy of the original as ``self.original_net`` (teachers, distillation).
    uses_original: ClassVar[bool] = False

    def __init__(
        self,
        original: str | None = None,
        oracle: str | None = None,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        scheduler: Literal["cosine", "none"] = "cosine",
        oracle_train_time_s: float | None = None,
        net_spec: dict[str, Any] | None = None,
        log_distributions: bool = True,
        mia_seed: int = 0,
    ) -> None:
        net, spec, num_classes = original_network(type(self).__name__, original, net_spec)
        super().__init__(num_classes=num_classes, log_distributions=log_distributions, mia_seed=mia_seed)
        if original is not None:
            self.num_classes_source = f"the original checkpoint {str(original)!r}"
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.save_hyperparameters(ignore=["original", "oracle", "net_spec"])
        self.hparams["net_spec"] = spec
        self.set_net(net.train().requires_grad_(True), spec)
        if self.uses_original:
            self.original_net = copy.deepcopy(net).eval().requires_grad_(False)
        self.lr, self.momentum, self.weight_decay, self.scheduler = lr, momentum, weight_decay, scheduler
        if oracle is not None:
            oracle_net, oracle_meta = load_net(oracle)
            if int(oracle_meta.get("num_classes", num_classes)) != num_classes:
                raise ValueError(f"oracle checkpoint {str(oracle)!r} has {oracle_meta['num_classes']} classes: expected "
                                 f"the {num_classes} of {self.num_classes_source}")
            self.set_reference(oracle_net, "oracle", cost=oracle_meta.get("cost"))
        if oracle_train_time_s is not None:
            self.reference_cost["train_time_s"] = float(oracle_train_time_s)

    def train(self, mode: bool = True) -> UnlearnModule:
        """Set train/eval mode; the frozen original always stays in eval mode."""
        super().train(mode)
        if self.uses_original:
            self.original_net.eval()
        return self

    # ---- hooks ----------------------------------------------------------------------------
    def forget_every(self) -> int:
        """``ceil(len(retain) / len(forget))`` in batches: taking a forget step on every k-th
        step sweeps the forget set about once per epoch while the retain stream drives the epoch
        (the ``max_size_cycle`` combination would otherwise revisit the forget set k times)."""
        loaders = self.trainer.train_dataloader
        iterables = getattr(loaders, "iterables", loaders)
        n_retain, n_forget = len(iterables["retain"]), max(1, len(iterables["forget"]))
        return max(1, math.ceil(n_retain / n_forget))

    def configure_optimizers(self) -> Any:
        """SGD with the module's lr, momentum and weight decay (+ cosine schedule)."""
        return make_optimizer(self, self.net.parameters(), self.lr, self.momentum, self.weight_decay, self.scheduler)
