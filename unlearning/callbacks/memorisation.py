"""Learning-event proxies of memorisation, logged as a model trains.

Why a callback and not an extra pass: the training batches do not carry their examples' indices,
but the loader knows them (:attr:`~unlearning.data.loaders.TensorLoader.order`: the rows of the
current pass, batch ``b`` being ``order[b * batch_size : (b + 1) * batch_size]``), and the logits of
the step are read by a forward hook on the module, so the proxies cost no forward pass: a softmax,
an argmax and two ``index_add_`` per step.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["DYNAMICS_FILE", "TrainingDynamics"]

#: the file :class:`TrainingDynamics` writes into the run's log folder
DYNAMICS_FILE = "training_dynamics.npz"


class TrainingDynamics(Callback):
    """Per-example learning events over a fit: the label's probability and whether the model
    predicts the label, at every step the example is in, averaged over the run (RUM's
    "confidence" and "binary accuracy" proxies; high confidence means low memorisation).

    Each step's logits are those of the step's own forward pass (training mode, augmented inputs
    when the data module augments), taken by a forward hook on the module: the first forward call
    of each step is the batch's. The indices come from the training stream's loader: the module
    must train on one stream (``train`` for a :class:`~unlearning.modules.Classifier`, ``retain``
    for an oracle) served by a :class:`~unlearning.data.loaders.TensorLoader`. Under DDP the sums
    are added over ranks at the end. The sums are part of the fit's checkpoints (:meth:`state_dict`):
    a resumed fit goes on from them.

    After the fit, :attr:`confidence`, :attr:`accuracy` and :attr:`count` hold one value per
    example of the source's training set (``NaN`` for examples never trained on), and, unless
    ``filename`` is ``None``, they are written to ``<log dir>/<filename>`` (``trainer.log_dir``:
    the run folder, or ``default_root_dir`` without a logger) with the keys ``index`` (the source
    indices trained on, sorted), ``confidence``, ``accuracy`` and ``count`` (steps, over those
    indices). The means over the training set are logged as ``dynamics/confidence`` and
    ``dynamics/accuracy`` at each epoch's end.

    Args:
        filename: the file to write, in the run's log folder; ``None``: none.
    """

    def __init__(self, filename: str | None = DYNAMICS_FILE) -> None:
        self.filename = filename
        self.init_args = {"filename": filename}
        self.confidence: np.ndarray | None = None
        self.accuracy: np.ndarray | None = None
        self.count: np.ndarray | None = None
        self.path: Path | None = None
        self._sums: torch.Tensor | None = None  # 3 x N: confidence, correct, count
        self._logits: torch.Tensor | None = None
        self._armed = False
        self._handle: Any = None
        self._warned = False
        self._restored: torch.Tensor | None = None

    # ---- capture ------------------------------------------------------------------------------
    def _hook(self, _module: Any, _args: Any, output: Any) -> None:
        if self._armed and isinstance(output, torch.Tensor):
            self._logits = output.detach()
            self._armed = False

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Allocate the sums over the source's training set and hook the module's forward."""
        dm = trainer.datamodule
        arrays = getattr(dm, "arrays", None)
        if arrays is None:
            raise ValueError(f"TrainingDynamics needs an UnlearningDataModule (its source's training set), "
                             f"got {type(dm).__name__}")
        n = int(arrays.train_y.shape[0])
        if self._restored is not None:  # a resumed fit goes on adding to the sums of its checkpoint
            if self._restored.shape != (3, n):
                raise ValueError(f"TrainingDynamics: the checkpoint's sums cover {self._restored.shape[1]} examples, "
                                 f"the data's training set {n}: resume on the same data")
            self._sums, self._restored = self._restored.to(pl_module.device), None
        else:
            self._sums = torch.zeros(3, n, dtype=torch.float64, device=pl_module.device)
        self._handle = pl_module.register_forward_hook(self._hook)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        """Arm the hook: the step's first forward call is recorded."""
        self._armed, self._logits = True, None

    def _stream(self, trainer: Trainer) -> tuple[str, Any]:
        loaders = trainer.train_dataloader
        loaders = getattr(loaders, "iterables", loaders)
        if not isinstance(loaders, dict) or len(loaders) != 1:
            names = list(loaders) if isinstance(loaders, dict) else type(loaders).__name__
            raise ValueError(f"TrainingDynamics needs a module that trains on one stream, got {names}")
        (name, loader), = loaders.items()
        if getattr(loader, "order", None) is None:
            raise ValueError(f"TrainingDynamics needs the {name!r} stream served by a TensorLoader "
                             f"(its pass order), got {type(loader).__name__}")
        return name, loader

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Add the step's label probabilities and hits to its examples' sums."""
        self._armed = False
        logits, self._logits = self._logits, None
        if logits is None:
            if not self._warned:
                warnings.warn(f"TrainingDynamics: {type(pl_module).__name__}'s step {batch_idx} made no forward "
                              "call; steps without one are not counted", stacklevel=2)
                self._warned = True
            return
        name, loader = self._stream(trainer)
        bs = loader.batch_size
        idx = loader.order[batch_idx * bs : (batch_idx + 1) * bs].to(logits.device)
        y = batch[name][1] if isinstance(batch, dict) else batch[1]
        if idx.numel() != logits.shape[0] or not torch.equal(loader.y[idx].to(y.device), y):
            raise RuntimeError(f"TrainingDynamics: step {batch_idx}'s batch does not match its loader's order "
                               f"({logits.shape[0]} logits, {idx.numel()} indices)")
        prob = torch.softmax(logits.float(), 1).gather(1, y.view(-1, 1)).squeeze(1)
        hit = (logits.argmax(1) == y).float()
        assert self._sums is not None
        self._sums.index_add_(1, idx.to(self._sums.device),
                              torch.stack([prob, hit, torch.ones_like(prob)]).to(self._sums))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the running means over the examples seen so far."""
        assert self._sums is not None
        seen = self._sums[2] > 0
        if seen.any():
            means = self._sums[:2, seen] / self._sums[2, seen]
            pl_module.log_dict({"dynamics/confidence": means[0].mean().float(),
                                "dynamics/accuracy": means[1].mean().float()}, sync_dist=True)

    def state_dict(self) -> dict[str, Any]:
        """The sums so far (saved in a fit's checkpoints, so that a resumed fit keeps them)."""
        return {"sums": self._sums.cpu()} if self._sums is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the sums of a checkpoint, for the resumed fit."""
        if "sums" in state_dict:
            self._restored = state_dict["sums"]

    # ---- results ------------------------------------------------------------------------------
    def _release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Remove the hook."""
        self._release()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Add the sums over ranks, take the means and write the file."""
        self._release()
        assert self._sums is not None
        sums = trainer.strategy.reduce(self._sums, reduce_op="sum").cpu().numpy()
        count = sums[2]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.confidence = np.where(count > 0, sums[0] / count, np.nan)
            self.accuracy = np.where(count > 0, sums[1] / count, np.nan)
        self.count = count.astype(np.int64)
        if self.filename is None or not trainer.is_global_zero:
            return
        index = np.flatnonzero(count > 0)
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, index=index, confidence=self.confidence[index], accuracy=self.accuracy[index],
                 count=self.count[index])
