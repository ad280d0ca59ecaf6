"""Recording and rebuilding network architectures.

A checkpoint written by this project must be enough to rebuild its network, with no config file
beside it. Every network therefore has a *spec*: a plain dict ``{"class_path": ..., "init_args":
{...}}`` made only of strings, numbers, lists and dicts, so that checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from unlearning.registry import SHORT_NAMES, find_object

__all__ = ["Net", "build_net", "net_num_classes", "net_spec", "weights_module"]


class Net(nn.Module):
    """Base of the project's networks: a plain ``nn.Module`` that remembers its init arguments.

    Subclasses call :meth:`_record` at the start of ``__init__`` with their arguments; the
    resulting :attr:`init_args` is what :func:`net_spec` writes into checkpoints.
    """

    init_args: dict[str, Any]
    #: the attribute holding another library's model that this net wraps (e.g. ``"model"`` for a
    #: torchvision model), whose ``state_dict`` a weights file saved from the plain library model
    #: matches; ``None``: the net's own ``state_dict`` (see :func:`weights_module`)
    wrapped: ClassVar[str | None] = None

    def _record(self, **kwargs: Any) -> None:
        self.init_args = dict(kwargs)


def net_spec(net: nn.Module) -> dict[str, Any]:
    """Return the spec that rebuilds ``net``'s architecture (not its weights).

    Args:
        net: a network that has an ``init_args`` dict attribute (all :class:`Net` subclasses do).

    Returns:
        ``{"class_path": "package.module.Class", "init_args": {...}}``.

    Raises:
        TypeError: if the network does not say how it was built.
    """
    init_args = getattr(net, "init_args", None)
    if not isinstance(init_args, dict):
        raise TypeError(
            f"cannot record how to rebuild network {type(net).__qualname__}: expected an "
            "`init_args` dict attribute (subclass unlearning.nets.Net and call self._record(...))"
        )
    cls = type(net)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(init_args)}


def build_net(spec: dict[str, Any]) -> nn.Module:
    """Instantiate a network from a spec made by :func:`net_spec` (or a LightningCLI config).

    Args:
        spec: ``{"class_path": ..., "init_args": {...}}``; a bare class name is looked up in
            :mod:`unlearning.nets`.

    Returns:
        The network, freshly initialised.

    Raises:
        ValueError: if the class cannot be found or is not an ``nn.Module``.
    """
    class_path = spec.get("class_path")
    if not isinstance(class_path, str) or not class_path:
        raise ValueError(f"network spec has no class_path: {spec!r}")
    try:
        cls = find_object(class_path, SHORT_NAMES["net"])
    except ImportError as err:
        raise ValueError(f"network class {class_path!r} cannot be imported: {err}") from err
    if cls is None:
        module_name = class_path.rpartition(".")[0] or SHORT_NAMES["net"][0]
        raise ValueError(f"network class {class_path!r} cannot be imported: "
                         f"module {module_name!r} has no attribute {class_path.rpartition('.')[2]!r}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"network class {class_path!r} is not an nn.Module subclass")
    return cls(**dict(spec.get("init_args") or {}))


def net_num_classes(net: nn.Module) -> int | None:
    """The number of classes a network says it outputs: its recorded ``num_classes`` init argument.

    Args:
        net: any network; the project's nets (and :class:`~unlearning.nets.TorchvisionNet`,
            :class:`~unlearning.nets.TimmNet`) record it.

    Returns:
        The number, or ``None`` when the network does not record one (guessing it from the last
        ``nn.Linear`` would be wrong for a convolutional head).
    """
    value = (getattr(net, "init_args", None) or {}).get("num_classes")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def weights_module(net: nn.Module) -> nn.Module:
    """The module whose ``state_dict`` a weights file of ``net``'s architecture holds: the wrapped
    library model of a net that wraps one (:attr:`Net.wrapped`), else the net itself.

    Args:
        net: the network.

    Returns:
        ``net`` or its wrapped model.
    """
    name = getattr(type(net), "wrapped", None)
    return getattr(net, name) if isinstance(name, str) else net
