"""Networks of other libraries by name: torchvision's model factory and timm's.

Both wrap the library's model as ``self.model`` (:attr:`~unlearning.nets.Net.wrapped`), so that a
``state_dict`` saved from the plain library model (``torch.save(model.state_dict(), ...)`` in a
user's own training code) loads into it (see :mod:`unlearning.importing`), and record their
arguments as plain values, so that a checkpoint rebuilds them under ``weights_only`` loading as
it does the project's own networks. Pretrained weights are never downloaded by default: tests and
clusters have no network, and the weights of an original come from its checkpoint or from
``unlearning import``.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
import torchvision
from torch import nn

from unlearning.nets.base import Net

__all__ = ["MissingExtraError", "TimmNet", "TorchvisionNet", "use_cifar_stem"]


class MissingExtraError(ImportError, ValueError):
    """An optional dependency of the project is not installed (a ``ValueError`` too, so that the
    command line prints it as one line)."""


def use_cifar_stem(model: nn.Module, name: str) -> None:
    """Replace a ResNet-style stem (``conv1`` 7x7 stride 2, then ``maxpool``) by the CIFAR stem:
    a 3x3 stride-1 ``conv1`` of the same channels and no max-pool, as usually trained on 32x32
    images.

    Args:
        model: the model, changed in place.
        name: its name, for the error message.

    Raises:
        ValueError: if the model has no ``conv1`` convolution and ``maxpool`` to replace.
    """
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(getattr(model, "maxpool", None), nn.Module):
        raise ValueError(f"cifar_stem needs a ResNet-style model (a `conv1` nn.Conv2d and a `maxpool`), "
                         f"got {name!r} ({type(model).__name__})")
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def _check_kwargs(owner: str, kwargs: dict[str, Any] | None, reserved: tuple[str, ...]) -> dict[str, Any]:
    kwargs = dict(kwargs or {})
    clash = sorted(set(kwargs) & set(reserved))
    if clash:
        raise ValueError(f"{owner} kwargs must not set {clash}: they are arguments of {owner} itself")
    return kwargs


class TorchvisionNet(Net):
    """A torchvision classification model by name, built by ``torchvision.models.get_model``
    without pretrained weights.

    Config: ``class_path: TorchvisionNet``, ``init_args: {name: resnet18, num_classes: 10,
    cifar_stem: true}``.

    Args:
        name: a name of ``torchvision.models.list_models()`` (``resnet18``, ``vgg11_bn``, ...).
        num_classes: number of output classes (the model's last layer).
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (ResNet-style models only),
            as usually trained on 32x32 images; ``False`` keeps torchvision's ImageNet stem.
        kwargs: further keyword arguments of the model's builder (e.g. ``{dropout: 0.2}``).

    Raises:
        ValueError: on an unknown name, pretrained weights asked for, or ``cifar_stem`` on a
            model without a ResNet-style stem.
    """

    wrapped = "model"

    def __init__(self, name: str, num_classes: int, cifar_stem: bool = False, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._record(name=name, num_classes=num_classes, cifar_stem=cifar_stem, kwargs=dict(kwargs or {}))
        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"torchvision has no classification model {name!r}{hint}: expected a name of "
                             "torchvision.models.list_models(), e.g. resnet18")
        if num_classes < 2:
            raise ValueError(f"TorchvisionNet num_classes must be >= 2, got {num_classes}")
        extra = _check_kwargs("TorchvisionNet", kwargs, ("num_classes", "weights", "weights_backbone"))
        self.model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)
        if cifar_stem:
            use_cifar_stem(self.model, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        return self.model(x)


class TimmNet(Net):
    """A timm model by name, built by ``timm.create_model`` (needs ``pip install 'unlearning[timm]'``).

    Config: ``class_path: TimmNet``, ``init_args: {name: resnet18, num_classes: 10}``.

    Args:
        name: a timm model name (``timm.list_models()``).
        num_classes: number of output classes (timm replaces the classifier head).
        pretrained: start from timm's pretrained weights (downloaded by timm, or read from a local
            file given as ``kwargs: {pretrained_cfg_overlay: {file: PATH}}``). Off by default:
            an original's weights come from its checkpoint or ``unlearning import``; a retrain
            oracle of a fine-tuned original must start from the same pretrained weights.
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (ResNet-style models only).
        kwargs: further keyword arguments of ``timm.create_model`` (``in_chans``, ``drop_rate``, ...).

    Raises:
        MissingExtraError: if timm is not installed.
        ValueError: on an unknown model name.
    """

    wrapped = "model"

    def __init__(self, name: str, num_classes: int, pretrained: bool = False, cifar_stem: bool = False,
                 kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._record(name=name, num_classes=num_classes, pretrained=pretrained, cifar_stem=cifar_stem,
                     kwargs=dict(kwargs or {}))
        try:
            import timm
        except ImportError:
            raise MissingExtraError("TimmNet needs timm, which is not installed: pip install 'unlearning[timm]'") from None
        if num_classes < 2:
            raise ValueError(f"TimmNet num_classes must be >= 2, got {num_classes}")
        extra = _check_kwargs("TimmNet", kwargs, ("num_classes", "pretrained", "model_name"))
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"timm has no model {name!r}{hint}: expected a name of timm.list_models()")
        self.model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **extra)
        if cifar_stem:
            use_cifar_stem(self.model, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(batch, num_classes)``."""
        return self.model(x)
