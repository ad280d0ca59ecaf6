"""Faster training steps for any module of the project: ``torch.compile`` and channels-last.

Both act on the module's network (``pl_module.net``), so they apply to the original, the oracle,
every unlearning method and the one-time stages alike, from a config::

    trainer:
      callbacks:
        - class_path: unlearning.callbacks.CompileNetwork
        - class_path: unlearning.callbacks.ChannelsLast

Neither changes what is trained or saved: ``nn.Module.compile`` compiles the network's forward in
place, so its parameters, state-dict keys and checkpoints stay those of the plain network, and the
channels-last layout is a memory format, not a change of the weights' values. Why callbacks and not
an argument of every module: one place serves every module, including a user's own.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import nn

__all__ = ["ChannelsLast", "CompileNetwork"]


def _network(pl_module: L.LightningModule, who: str) -> nn.Module:
    net = getattr(pl_module, "net", None)
    if not isinstance(net, nn.Module):
        raise ValueError(f"{who} needs a module with a `net` network; {type(pl_module).__name__} has none")
    return net


class CompileNetwork(L.Callback):
    """Compile the module's network with ``torch.compile`` before fitting, testing or predicting.

    The frozen copies some methods keep (``original_net``, teachers) are compiled too when
    ``include_frozen`` is set. The first steps are slower (compilation); the gain shows on long
    runs of one shape.

    Args:
        mode: ``torch.compile``'s mode (``default``, ``reduce-overhead``, ``max-autotune``).
        dynamic: ``torch.compile``'s ``dynamic`` (``None``: decided by torch).
        fullgraph: fail on a graph break instead of falling back to eager for that part.
        include_frozen: also compile the module's other ``nn.Module`` attributes named
            ``original_net`` or ``teacher``.
        backend: ``torch.compile``'s backend (``inductor`` generates fused kernels; ``eager`` and
            ``aot_eager`` only trace, for debugging).
    """

    def __init__(self, mode: Literal["default", "reduce-overhead", "max-autotune"] = "default",
                 dynamic: bool | None = None, fullgraph: bool = False, include_frozen: bool = False,
                 backend: str = "inductor") -> None:
        known = torch.compiler.list_backends(exclude_tags=())
        if backend not in known:
            raise ValueError(f"CompileNetwork backend must be one of {', '.join(sorted(known))}, got {backend!r}")
        self.mode, self.dynamic, self.fullgraph, self.include_frozen = mode, dynamic, fullgraph, include_frozen
        self.backend = backend

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Compile (once) the network and, optionally, the frozen copies."""
        nets = [_network(pl_module, type(self).__name__)]
        if self.include_frozen:
            nets += [m for name in ("original_net", "teacher") if isinstance(m := getattr(pl_module, name, None), nn.Module)]
        for net in nets:
            if not getattr(net, "_unlearning_compiled", False):
                net.compile(backend=self.backend, mode=None if self.mode == "default" or self.backend != "inductor" else self.mode,
                            dynamic=self.dynamic, fullgraph=self.fullgraph)
                net._unlearning_compiled = True


class ChannelsLast(L.Callback):
    """Keep the module's 4-D weights in channels-last memory format (faster convolutions on recent
    GPUs, and with some CPU kernels). The batches need no conversion: a convolution with
    channels-last weights returns channels-last outputs, so every layer after the first runs in
    that layout."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Convert the network (and any other ``nn.Module`` attribute of the module) once."""
        _network(pl_module, type(self).__name__)
        pl_module.to(memory_format=torch.channels_last)
