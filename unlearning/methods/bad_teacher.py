"""Bad Teacher: distil the competent original on retain and an incompetent, randomly initialised
teacher on forget (Chundawat et al., AAAI 2023)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from unlearning.methods.losses import distill_kl
from unlearning.modules.classifier import make_optimizer
from unlearning.modules.unlearn import UnlearnModule
from unlearning.nets import build_net

__all__ = ["BadTeacher", "mixed_batch_sizes"]

#: added to the run's seed for the incompetent teacher's initialisation, so that it is not the
#: very draw a network built first under the same seed gets (e.g. an oracle's initial weights)
TEACHER_SEED_OFFSET = 104_729


def mixed_batch_sizes(batch_size: int, n_forget: int, n_retain: int, retain_fraction: float) -> tuple[int, int]:
    """How a mixed batch of ``batch_size`` splits between forget and retain examples so that its
    composition is the expected one of a shuffled union of the whole forget set and a
    ``retain_fraction`` share of the retain set.

    Returns:
        ``(forget_batch, retain_batch)``, each >= 1.
    """
    share = n_forget / (n_forget + retain_fraction * n_retain)
    forget_batch = min(max(1, round(batch_size * share)), max(1, batch_size - 1))
    return forget_batch, max(1, batch_size - forget_batch)


class BadTeacher(UnlearnModule):
    """Knowledge distillation from two teachers: the frozen original (competent) on retain
    examples and a randomly initialised network of the same architecture (incompetent) on forget
    examples.

    Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
    Networks Using an Incompetent Teacher", AAAI 2023, arXiv 2205.08096 (code:
    ``vikram2000b/bad-teaching-unlearning``; re-run in the SSD repository).

    The student starts as the original. Each step takes one mixed batch, part retain and part
    forget, sized as a shuffled union of the whole forget set and a random ``retain_fraction``
    share of the retain set would mix (:func:`mixed_batch_sizes`), and minimises
    ``KL(teacher_T || student_T)`` over it, the teacher being the original on the retain rows and
    the incompetent teacher on the forget rows (the paper's ``l * bad + (1 - l) * good`` with
    ``l = 1`` on forget). The student sees the mixed batch in one forward pass. An epoch ends with
    the forget stream (``stream_mode = "min_size"``), so it sweeps the forget set once and about
    ``retain_fraction`` of the retain set, a fresh random share each epoch: the paper's epoch.
    The loss is :func:`~unlearning.methods.losses.distill_kl` (batch mean, times ``T^2``); the
    published code averages over classes too, a constant factor that Adam does not see.

    The incompetent teacher is built from the original's network spec under its own seed
    (``teacher_seed``, or the run's seed, plus a fixed offset), so a resumed fit rebuilds the same
    one; it is frozen, in eval mode, and not stored in checkpoints. Teacher passes are not
    counted as trained images (as with every teacher of this package).

    Published recipe (CIFAR-10, ResNet-18): temperature 1, Adam lr 1e-4, 1 epoch, batch 256,
    retain = a random 30% of the retain set, all of the forget set.

    Args:
        temperature: distillation temperature, > 0.
        retain_fraction: share of the retain set mixed with the forget set per epoch, in (0, 1].
        teacher_seed: seed of the incompetent teacher's initialisation (``None``: the run's seed,
            ``torch.initial_seed()`` when the module is built, so it differs per run seed).
        optimizer: ``adam`` (published; ``momentum`` is unused) or ``sgd``.
        lr: learning rate (published 1e-4).
        weight_decay: weight decay (published none).
        scheduler: ``none`` (published) or ``cosine``.
        **kwargs: see :class:`~unlearning.modules.UnlearnModule`.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("retain", "forget")
    stream_mode: ClassVar[str] = "min_size"
    uses_original = True

    def __init__(
        self,
        temperature: float = 1.0,
        retain_fraction: float = 0.3,
        teacher_seed: int | None = None,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "none",
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if not 0.0 < retain_fraction <= 1.0:
            raise ValueError(f"retain_fraction must be in (0, 1], got {retain_fraction}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.temperature, self.retain_fraction, self.optimizer_name = temperature, retain_fraction, optimizer
        self.teacher_seed = int(teacher_seed if teacher_seed is not None else torch.initial_seed() + TEACHER_SEED_OFFSET)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.teacher_seed % 2**63)
            teacher = build_net(self.net_spec)
        # kept out of the module's parameters and checkpoints: rebuilt from its seed
        object.__setattr__(self, "bad_teacher", teacher.eval().requires_grad_(False))

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        """Per-stream batch sizes of the mixed batch (see :func:`mixed_batch_sizes`)."""
        if self._trainer is None or self.trainer.datamodule is None:
            return {}
        dm = self.trainer.datamodule
        n_forget = int(dm.stream_source("forget")[2].numel())
        n_retain = int(dm.stream_source("retain")[2].numel())
        forget_batch, retain_batch = mixed_batch_sizes(int(dm.batch_size), n_forget, n_retain, self.retain_fraction)
        return {"forget": {"batch_size": forget_batch}, "retain": {"batch_size": retain_batch}}

    def _teacher_on(self, x: torch.Tensor) -> nn.Module:
        p = next(self.bad_teacher.parameters(), None)
        if p is not None and p.device != x.device:
            self.bad_teacher.to(x.device)
        return self.bad_teacher

    def configure_optimizers(self) -> Any:
        """Adam (or SGD with momentum) over the student, optionally with a per-step cosine schedule."""
        if self.optimizer_name == "sgd":
            return make_optimizer(self, self.net.parameters(), self.lr, self.momentum, self.weight_decay, self.scheduler)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler == "none":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Distil the mixed batch: the original on its retain rows, the bad teacher on its forget rows."""
        (xr, _), (xf, _) = batch["retain"], batch["forget"]
        with torch.no_grad():
            good = self.original_net(self.prepare_input(xr))
            bad = self._teacher_on(xf)(self.prepare_input(xf))
            target = torch.cat([good, bad])
        logits = self(torch.cat([xr, xf]))
        loss = distill_kl(logits, target, self.temperature)
        n = xr.shape[0]
        with torch.no_grad():
            retain_kl = distill_kl(logits[:n], target[:n], self.temperature)
            forget_kl = distill_kl(logits[n:], target[n:], self.temperature)
        self.log_dict({"train/loss": loss, "train/retain_kl": retain_kl, "train/forget_kl": forget_kl}, prog_bar=True)
        return loss
