"""CF-k: catastrophic forgetting of the last k layers (Goel et al., 2022), and the "last k layers"
logic that EU-k (:mod:`unlearning.methods.eu_k`) shares with it."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unlearning.modules.classifier import make_optimizer
from unlearning.modules.unlearn import UnlearnModule

__all__ = ["NORM_TYPES", "CFk", "last_layers", "weight_layers"]

#: normalisation layers: they belong to the weight layer before them
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _has_own_parameters(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False))


def weight_layers(net: nn.Module) -> list[list[nn.Module]]:
    """The network's layers in forward order, each a weight layer with its norm layers.

    A *weight layer* is a leaf module with parameters of its own that is not a normalisation
    layer (``Conv2d``, ``Linear``, ...). The normalisation layers (BatchNorm, GroupNorm, LayerNorm,
    with or without affine parameters) after it, up to the next weight layer, belong to it; one
    before the first weight layer belongs to that first layer. This is how Goel et al.'s code
    counts layers: convolutions and linear layers, each unfrozen with the BatchNorm that follows.

    The order is the order in which ``net.modules()`` registers the leaves. For the project's
    networks (``SmallCNN``, ``KitResNet18``, ``CifarResNet``, ``MLP``) that is the order in which
    the forward pass calls them (``tests/test_layer_methods.py`` checks it against a traced forward
    pass); a residual block's projection shortcut comes after the block's two convolutions, as in
    torchvision. Parameters that sit on a non-leaf module belong to no layer.

    Args:
        net: the network.

    Returns:
        One list per layer: the weight layer first, then its norm layers.
    """
    layers: list[list[nn.Module]] = []
    pending_norms: list[nn.Module] = []
    for m in net.modules():
        if any(True for _ in m.children()):
            continue
        if isinstance(m, NORM_TYPES):  # with or without affine parameters (running statistics)
            (layers[-1] if layers else pending_norms).append(m)
        elif _has_own_parameters(m):
            layers.append([m, *pending_norms])
            pending_norms = []
    return layers


def last_layers(net: nn.Module, k: int, owner: str = "the method") -> tuple[list[nn.Module], list[nn.Module]]:
    """Split the network's modules into the frozen front and the last ``k`` layers.

    Args:
        net: the network.
        k: how many layers (see :func:`weight_layers`) from the output to keep trainable.
        owner: the name used in the error message.

    Returns:
        ``(frozen, trainable)``: the modules (weight and norm layers) of the layers before the
        last ``k``, and those of the last ``k``.

    Raises:
        ValueError: if ``k`` is not between 1 and the number of layers.
    """
    layers = weight_layers(net)
    if not 1 <= k <= len(layers):
        raise ValueError(f"{owner}: k must be between 1 and the network's {len(layers)} layers, got {k}")
    frozen = [m for layer in layers[:-k] for m in layer]
    trainable = [m for layer in layers[-k:] for m in layer]
    return frozen, trainable


class CFk(UnlearnModule):
    """Catastrophic forgetting of the last k layers: fine-tune only the last ``k`` layers on the
    retain set, everything before them frozen.

    Goel, Prabhu, Sanyal, Lim, Torr, Kumaraguru, "Towards Adversarial Evaluation of Inexact
    Machine Unlearning" (arXiv 2201.06640, 2022; code ``shash42/Evaluating-Inexact-Unlearning``,
    ``cat_forget_finetune``). Published setting (CIFAR-10, ResNet-20, not ResNet-18; the paper
    has no ResNet-18 recipe): SGD momentum 0.9, weight decay 5e-5, batch 64, gradient norm
    clipped at 10, learning rate 0.1 cosine-annealed with warm restarts (``T_0`` 1 epoch, doubling,
    floor 0.005), 30 epochs of CF-k (62 for the original), k in {1, 3, 5, 7}. Here the schedule is
    the framework's cosine over the run (``scheduler``), with the configs' budgets.

    Layers are those of :func:`weight_layers`: each convolution or linear layer with the norm
    layers after it, in forward order; the last ``k`` of them train. The frozen layers are really
    frozen: no gradients, left out of the optimiser, and their norm layers stay in eval mode, so
    their running statistics do not drift either (the front of the network is bit-identical to
    the original's; in the authors' code the frozen BatchNorms keep updating their statistics).

    Args:
        k: number of layers, counted from the output, that are fine-tuned.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.

    Raises:
        ValueError: if ``k`` is not between 1 and the network's number of layers.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain",)

    def __init__(self, k: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1 (layers counted from the output), got {k}")
        self.k = k
        frozen, trainable = last_layers(self.net, k, type(self).__name__)
        # plain lists (not submodules): the modules are registered once, under self.net
        self.frozen_layers, self.trainable_layers = frozen, trainable
        self.net.requires_grad_(False)
        for m in trainable:
            m.requires_grad_(True)
        self.train(self.training)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters of the last ``k`` layers."""
        return [p for m in self.trainable_layers for p in m.parameters()]

    def train(self, mode: bool = True) -> CFk:
        """Set train/eval mode; the frozen layers always stay in eval mode."""
        super().train(mode)
        for m in getattr(self, "frozen_layers", ()):
            m.eval()
        return self

    def configure_optimizers(self) -> Any:
        """SGD (+ cosine) over the last ``k`` layers only."""
        return make_optimizer(self, self.trainable_parameters(), self.lr, self.momentum, self.weight_decay, self.scheduler)

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on a retain batch (only the last ``k`` layers get gradients)."""
        x, y = batch["retain"]
        loss = F.cross_entropy(self(x), y)
        self.log_dict({"train/loss": loss}, prog_bar=True)
        return loss
