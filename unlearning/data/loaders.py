"""Batches straight from tensors held on the training device.

Why not ``torch.utils.data.DataLoader``: on CIFAR-sized images the per-image work of a
``Dataset`` (indexing, PIL transforms, collation, worker IPC) costs more than the network's step on
a GPU, and on a 2-core CPU the workers compete with the model for the cores. Here the whole split is
one uint8 tensor; a batch is one index operation and one batched transform on the device.

DDP: each rank reads its own shard of the same seeded permutation (training) or of the fixed order
(evaluation), so no sampler injection is needed. Training shards are padded to equal length like
``DistributedSampler``; evaluation shards are not padded, so metrics synchronised over ranks count
every example exactly once and equal a single-process run's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist

__all__ = ["TensorLoader"]


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TensorLoader:
    """An iterable of ``(inputs, labels)`` batches drawn from in-memory tensors.

    Args:
        x: all inputs of the source (e.g. uint8 images), on any device.
        y: all labels of the source, on the same device as ``x``.
        indices: which rows of ``x``/``y`` this loader covers.
        batch_size: examples per batch (per rank).
        transform: applied to each batch of inputs (augmentation, normalisation).
        shuffle: draw a new seeded permutation at every pass (training) or keep ``indices``' order.
        seed: seed of the permutations: with ``epoch``, pass ``k`` of epoch ``e`` uses ``seed``,
            ``e`` and ``k`` (the first pass ``seed`` and ``e``); without, ``seed`` and the count of
            passes so far.
        drop_last: drop a final partial batch.
        drop_single: drop a final batch of a single example when shuffling, since BatchNorm cannot
            train on it (``False`` for modules that must see every example, e.g. with BatchNorm
            frozen).
        epoch: returns the trainer's current epoch (or ``None`` outside a fit), asked at the start
            of every pass: the permutations then depend on the epoch, not on how many passes this
            process made, so that a fit resumed at epoch ``e`` shuffles as the uninterrupted one.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        indices: torch.Tensor,
        batch_size: int,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        drop_single: bool = True,
        epoch: Callable[[], int | None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.indices = indices.to(torch.long)
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.drop_single = drop_single
        self.passes = 0
        self.epoch = epoch
        self._last_epoch: int | None = None
        self._epoch_passes = 0
        #: the rows of ``x`` this rank reads in the current pass, in order (batch ``b`` is
        #: ``order[b * batch_size : (b + 1) * batch_size]``)
        self.order: torch.Tensor | None = None

    def _shard(self, order: torch.Tensor) -> torch.Tensor:
        rank, world = _rank_world()
        if world == 1:
            return order
        if self.shuffle:
            pad = (-order.numel()) % world
            if pad:
                order = torch.cat([order, order[:pad]])
        return order[rank::world]

    def _num_rows(self) -> int:
        rank, world = _rank_world()
        n = self.indices.numel()
        if world == 1:
            return n
        if self.shuffle:
            return -(-n // world)
        return len(range(rank, n, world))

    def __len__(self) -> int:
        rows = self._num_rows()
        full, rest = divmod(rows, self.batch_size)
        if rest and not self.drop_last and not (self.shuffle and self.drop_single and rest == 1):
            full += 1
        return full

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            epoch = self.epoch() if self.epoch is not None else None
            if epoch != self._last_epoch:
                self._last_epoch, self._epoch_passes = epoch, 0
            if epoch is None:
                key: tuple[int, ...] = (self.seed, self.passes)
            else:  # an epoch's first pass is keyed as pass e of a loader that makes one pass per epoch
                key = (self.seed, int(epoch)) if self._epoch_passes == 0 else (self.seed, int(epoch), self._epoch_passes)
            self._epoch_passes += 1
            g = torch.Generator().manual_seed(hash(key) & 0x7FFF_FFFF_FFFF_FFFF)
            order = self.indices[torch.randperm(self.indices.numel(), generator=g)]
        else:
            order = self.indices
        self.passes += 1
        order = self._shard(order).to(self.x.device)
        self.order = order
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            xb = self.x[idx]
            if self.transform is not None:
                xb = self.transform(xb)
            yield xb, self.y[idx]
