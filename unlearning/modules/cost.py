"""Cost accounting: the training wall time (validation excluded) and the images processed.

The competition's cost limit and every cost fraction in the reports rest on these two numbers, so
they live in one small module: a callback that runs the clock (:class:`CostClock`) and a mixin that
keeps the counts (:class:`CostAccounting`), both stored in every checkpoint by
:class:`~unlearning.modules.base.EvaluatedModule`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from lightning.pytorch import Callback, LightningModule

__all__ = ["CostAccounting", "CostClock", "world_size"]


def world_size(module: LightningModule) -> int:
    """Processes training together (1 outside a trainer)."""
    return module.trainer.world_size if module._trainer is not None else 1


class CostClock(Callback):
    """Times training (pre-passes in ``on_train_start`` included; validation and the sanity check
    excluded).

    A callback rather than module hooks, so that subclasses overriding ``on_train_start`` and
    friends cannot stop the clock; callback hooks run before the module's own.
    """

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        pl_module._start_clock()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        pl_module._start_clock()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        pl_module._tick()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.training:
            pl_module._start_clock()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        pl_module._tick()


class CostAccounting:
    """The counts of a module's training cost, ``self.cost``: ``train_time_s`` (wall time while
    :class:`CostClock` runs) and ``images_seen`` (every image through the network in training mode,
    over all ranks, plus what :meth:`count_images` adds), and their fractions of a reference's."""

    cost: dict[str, float]
    reference_cost: dict[str, float]

    def init_cost(self) -> None:
        """Start from zero, the clock stopped."""
        self.cost = {"train_time_s": 0.0, "images_seen": 0}
        self._clock: float | None = None

    def _tick(self) -> None:
        """Add the time since the clock was started to the cost and stop the clock."""
        if self._clock is not None:
            self.cost["train_time_s"] += time.perf_counter() - self._clock
            self._clock = None

    def _start_clock(self) -> None:
        if self._clock is None:
            self._clock = time.perf_counter()

    @contextlib.contextmanager
    def clock_paused(self) -> Iterator[None]:
        """Leave the time spent inside this block out of the training cost (e.g. an evaluation
        that a callback runs between training steps)."""
        running = self._clock is not None
        self._tick()
        try:
            yield
        finally:
            if running:
                self._start_clock()

    def count_images(self, n: int) -> None:
        """Add ``n`` images (per rank) to the cost, for passes that do not go through the
        module's ``forward`` in training mode (a pre-pass through a frozen copy, say)."""
        self.cost["images_seen"] += int(n) * world_size(self)  # type: ignore[arg-type]

    def cost_scalars(self) -> dict[str, float]:
        """Cost of the training so far: ``cost_time_s`` (wall time without validation),
        ``cost_images`` (images processed) and, when the reference's cost is known, their
        fractions of it (``cost_time_fraction``, ``cost_images_fraction``)."""
        out = {"cost_time_s": float(self.cost["train_time_s"]), "cost_images": float(self.cost["images_seen"])}
        for key, name in (("train_time_s", "cost_time_fraction"), ("images_seen", "cost_images_fraction")):
            if self.reference_cost.get(key):
                out[name] = float(self.cost[key]) / float(self.reference_cost[key])
        return out
