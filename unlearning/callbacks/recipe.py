"""Callbacks that are part of a training recipe: the whitening initialisation of the first layer and
lookahead of the weights, both from the fast oracle recipe (``configs/fast/``).

After Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (2024,
https://arxiv.org/abs/2404.00498), who sets the first layer from training-image patches before the
first step and averages the weights with a slowly growing lookahead; implemented anew here for
Lightning.

Unlike the speed callbacks (:mod:`unlearning.callbacks.speed`), these change the trained model, so a
recipe gives them to the module (``Classifier``'s ``train_callbacks`` argument) rather than to the
trainer: the module's settings are what names a model in the score's cache, the trainer's callbacks
are not. They work from ``trainer.callbacks`` too, for a quick experiment.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from unlearning.callbacks.speed import _network as _net

__all__ = ["Lookahead", "WhiteningInit"]


class WhiteningInit(L.Callback):
    """Set the network's whitening layer from training images before the first training step.

    The images are the first ``num_images`` of the stream the module trains on (``train`` for the
    original, ``retain`` for the oracle: the forget set of an oracle is never read), in the stream's
    fixed order and without augmentation, normalised as evaluation batches are; every process of a
    distributed run takes the same ones. It runs at the start of the first training batch, so its
    time is part of the training cost; a network already whitened (a resumed fit, a network loaded
    from a checkpoint) is left as it is.

    Args:
        num_images: how many training images give the patch statistics (5,000 in the paper).
        eps: added to the patch covariance's eigenvalues (see
            :meth:`~unlearning.nets.FastCifarNet.init_whitening`).
        bias_epochs: train the whitening layer's bias for this many epochs, then freeze it (3 in
            the paper); ``None``: it trains throughout. Under DDP, freezing a parameter mid-run needs
            ``strategy: ddp_find_unused_parameters_true`` (or ``None`` here).

    Raises:
        ValueError: (at setup) if the network has no ``init_whitening`` method and ``whiten``
            layer, e.g. a network other than :class:`~unlearning.nets.FastCifarNet`.
    """

    def __init__(self, num_images: int = 5000, eps: float = 5e-4, bias_epochs: int | None = 3) -> None:
        if num_images < 1:
            raise ValueError(f"WhiteningInit num_images must be >= 1, got {num_images}")
        if eps < 0:
            raise ValueError(f"WhiteningInit eps must be >= 0, got {eps}")
        if bias_epochs is not None and bias_epochs < 0:
            raise ValueError(f"WhiteningInit bias_epochs must be >= 0 or null, got {bias_epochs}")
        self.init_args = {"num_images": num_images, "eps": eps, "bias_epochs": bias_epochs}
        self.num_images, self.eps, self.bias_epochs = num_images, eps, bias_epochs
        self._checked = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse a network that cannot be whitened, before any step."""
        net = _net(pl_module, type(self).__name__)
        if not (callable(getattr(net, "init_whitening", None)) and isinstance(getattr(net, "whiten", None), nn.Conv2d)):
            raise ValueError(f"WhiteningInit needs a network with an init_whitening method and a `whiten` conv "
                             f"layer (e.g. unlearning.nets.FastCifarNet), got {type(net).__name__}")
        self._checked = False

    def training_images(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.Tensor:
        """The first ``num_images`` images of the module's first training stream, normalised."""
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "stream_source"):
            raise ValueError("WhiteningInit needs an UnlearningDataModule (it reads the module's training stream)")
        stream = tuple(getattr(pl_module, "train_streams", ("train",)))[0]
        x, _, idx = dm.stream_source(stream)
        return dm.eval_transform(x[idx[: self.num_images].to(x.device)])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Freeze the whitening bias once ``bias_epochs`` epochs have passed."""
        if self.bias_epochs is not None:
            bias = _net(pl_module, type(self).__name__).whiten.bias
            if bias is not None:
                bias.requires_grad_(trainer.current_epoch < self.bias_epochs)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        """Whiten (once) if the network has not been whitened yet."""
        if self._checked:
            return
        self._checked = True
        net = _net(pl_module, type(self).__name__)
        if not bool(getattr(net, "whitened", False)):
            net.init_whitening(self.training_images(trainer, pl_module), eps=self.eps)


class Lookahead(L.Callback):
    """Lookahead of the network's weights (Zhang et al., 2019) with the paper's growing schedule.

    A slow copy of every floating-point entry of the network's state (weights and BatchNorm
    statistics) is kept beside the training. Every ``every`` optimizer steps, at step ``t`` of
    ``T``, the slow copy moves towards the trained weights, ``slow = d * slow + (1 - d) * fast``
    with ``d = decay * (t / T) ** power``, and the trained weights are set to it; after the last
    step the trained weights are set to the slow copy, so the final model (and its checkpoint) is
    the slow one. Early in the run ``d`` is near 0 (plain training); late in the run it approaches
    ``decay``, a strong average. The slow copy is kept in checkpoints, so a resumed fit continues
    it.

    Why a callback written here: Lightning's ``WeightAveraging`` and ``EMAWeightAveraging`` keep
    an average *beside* the trained weights and copy it in only at the end (the training never
    continues from the average, which lookahead does every ``every`` steps), and the lookahead
    optimizer wrappers of third-party optimizer collections see the parameters only, not the
    BatchNorm statistics; no maintained library offers lookahead as a Lightning callback.

    Args:
        every: optimizer steps between two updates of the slow weights (5 in the paper).
        decay: the largest weight of the slow copy, reached at the end (``0.95 ** 5`` in the paper).
        power: how the weight grows with the run's progress (3 in the paper: cubic).

    Raises:
        ValueError: on ``every < 1``, ``decay`` outside [0, 1] or a negative ``power``; at the
            start of a fit whose length in steps is unknown (no ``max_epochs`` or ``max_steps``).
    """

    def __init__(self, every: int = 5, decay: float = 0.95**5, power: float = 3.0) -> None:
        if every < 1:
            raise ValueError(f"Lookahead every must be >= 1, got {every}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"Lookahead decay must be in [0, 1], got {decay}")
        if power < 0:
            raise ValueError(f"Lookahead power must be >= 0, got {power}")
        self.init_args = {"every": every, "decay": decay, "power": power}
        self.every, self.decay, self.power = every, decay, power
        self.slow: dict[str, torch.Tensor] | None = None
        self._total = 0
        self._last_step = -1

    def weight(self, step: int) -> float:
        """The slow copy's weight ``d`` at optimizer step ``step`` of the run."""
        return self.decay * (min(step, self._total) / self._total) ** self.power

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Start without a slow copy (a resumed fit restores its own after this)."""
        _net(pl_module, type(self).__name__)
        self.slow, self._last_step = None, -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Read the run's length in optimizer steps."""
        total = trainer.estimated_stepping_batches
        if not (isinstance(total, int) or float(total).is_integer()) or total < 1:
            raise ValueError(f"Lookahead needs a fit of known length (max_epochs or max_steps), got {total} steps")
        self._total = int(total)

    def _state(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        net = _net(pl_module, type(self).__name__)
        return {k: v for k, v in net.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Update the slow weights every ``every`` steps; after the last step, keep them."""
        step = trainer.global_step
        if step == self._last_step:  # no optimizer step in this batch (gradient accumulation)
            return
        self._last_step = step
        if self.slow is None:
            self.slow = {k: v.detach().clone() for k, v in self._state(pl_module).items()}
            return
        if step % self.every == 0:
            d = self.weight(step)
            for k, v in self._state(pl_module).items():
                self.slow[k].lerp_(v, 1.0 - d)
                v.copy_(self.slow[k])
        elif step >= self._total:
            for k, v in self._state(pl_module).items():
                v.copy_(self.slow[k])

    def state_dict(self) -> dict[str, Any]:
        """The slow copy (saved in checkpoints)."""
        return {"slow": self.slow, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the slow copy of a resumed fit."""
        self.slow = state_dict.get("slow")
        self._last_step = int(state_dict.get("last_step", -1))
