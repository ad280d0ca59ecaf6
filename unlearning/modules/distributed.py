"""Per-example evaluation outputs under DDP: each rank holds a shard, the metrics need them all."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule

from unlearning.modules.cost import world_size

__all__ = ["gather_rows"]


def gather_rows(module: LightningModule, t: torch.Tensor) -> torch.Tensor:
    """Gather a per-example tensor from every rank, restoring the single-process order.

    Evaluation shards are ``order[rank::world]`` (see :class:`~unlearning.data.TensorLoader`),
    so interleaving the shards gives back the order of a single-process run.

    Args:
        module: the module whose trainer's ranks hold the shards (a single process: ``t`` itself).
        t: this rank's ``(n, ...)`` rows.

    Returns:
        The rows of every rank, ``(sum of n, ...)``, on the module's device.
    """
    world = world_size(module)
    if world == 1:
        return t
    n = torch.tensor([t.shape[0]], device=module.device)
    sizes = module.all_gather(n).view(-1).tolist()
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=module.device)
    padded[: t.shape[0]] = t
    gathered = module.all_gather(padded)
    out = torch.empty((sum(sizes), *t.shape[1:]), dtype=t.dtype, device=module.device)
    for r, size in enumerate(sizes):
        out[r : r + world * size : world][:size] = gathered[r, :size]
    return out
