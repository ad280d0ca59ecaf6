"""The evaluated base of every LightningModule in the project.

It owns the Lightning hooks that all stages share, so that a stage only says how it trains:
- the network (a plain ``nn.Module``) and the spec that rebuilds it from a checkpoint (read back
  by :mod:`unlearning.modules.checkpoint`);
- evaluation on the retain, forget, val and test streams (and the healing streams of corrupted
  data): accuracies (torchmetrics, synchronised over DDP ranks) and per-example outputs gathered
  from all ranks (:func:`~unlearning.modules.distributed.gather_rows`), of the model and of a
  reference (oracle) network when one is attached, measured at the end of the epoch by
  :func:`~unlearning.metrics.measure` (the attacks, the gaps, the KL divergence to the reference);
- cost accounting (training wall time without validation, images processed; see
  :mod:`unlearning.modules.cost`), stored in every checkpoint so later stages can compare costs;
- the NaN guard of training and checkpoints, and the random generators' states for a resume;
- TensorBoard distributions through :class:`~unlearning.callbacks.DistributionLogger`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from unlearning.data.base import EVAL_STREAMS, HEALING_STREAMS
from unlearning.data.contract import StreamDeclarations
from unlearning.metrics.evaluation import measure, stream_outputs
from unlearning.modules.checkpoint import (  # the checkpoint functions' former home: importable from here as before
    META_KEY,
    RNG_KEY,
    cli_net_spec,
    load_checkpoint_meta,
    load_net,
    read_checkpoint,
)
from unlearning.modules.cost import CostAccounting, CostClock
from unlearning.modules.distributed import gather_rows
from unlearning.modules.resume import rng_states, set_rng_states
from unlearning.nets import net_spec
from unlearning.utils import versions

__all__ = ["EvaluatedModule", "cli_net_spec", "gather_rows", "load_checkpoint_meta", "load_net", "read_checkpoint"]

class EvaluatedModule(StreamDeclarations, CostAccounting, LightningModule):
    """Base class: a network, evaluation against the split's streams, cost accounting.

    Subclasses set ``self.net`` (and optionally ``self.reference``, a frozen network evaluated
    beside it, e.g. the retrain oracle), and write ``training_step``. What the module trains on
    is declared, for the data module, by the attributes of
    :class:`~unlearning.data.contract.StreamDeclarations` (``train_streams``, ``stream_mode``,
    ``stream_options``), which a subclass overrides.

    Args:
        num_classes: number of classes of the data.
        log_distributions: write per-example distribution histograms and figures (forget vs
            test) to TensorBoard at every evaluation.
        mia_seed: seed of the attacks' subsampling and cross-validation splits.
    """

    #: streams the module reads only through :meth:`stream` or :meth:`cycle` (a pre-pass, a pool
    #: of reference batches), not delivered at every step
    extra_streams: ClassVar[tuple[str, ...]] = ()
    #: whether evaluation measures a classifier (``False`` for a stage that trains something else,
    #: e.g. a hypernetwork)
    evaluated: ClassVar[bool] = True
    #: whether an interrupted fit may continue from its last checkpoint (``--ckpt_path last``).
    #: ``False`` for a module whose ``on_train_start`` changes the weights or keeps state outside
    #: the checkpoint (a re-initialisation, a first stage of its own, anchors taken from the
    #: weights): resumed, it would run that again on half-trained weights, so the fit refuses and
    #: the run is started over
    resumable: ClassVar[bool] = True

    def __init__(self, num_classes: int = 10, log_distributions: bool = True, mia_seed: int = 0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        #: where ``num_classes`` came from, named when the data has another number of classes
        self.num_classes_source = "the model"
        self.log_distributions = log_distributions
        self.mia_seed = mia_seed
        self.net: nn.Module
        # The reference (oracle) network is evaluated beside the model but is not part of it: it
        # is kept out of the module's parameters, state_dict and checkpoints.
        object.__setattr__(self, "reference", None)
        self.reference_name = "oracle"
        #: the reference's training cost (from its checkpoint): the denominator of cost fractions
        self.reference_cost: dict[str, float] = {}
        self.net_spec: dict[str, Any] = {}
        streams = (*EVAL_STREAMS, *HEALING_STREAMS)  # the healing streams: only when the data is corrupted
        self.acc = nn.ModuleDict({s: MulticlassAccuracy(num_classes, average="micro") for s in streams})
        self.loss_mean = nn.ModuleDict({s: MeanMetric() for s in streams})
        self.ref_acc = nn.ModuleDict({s: MulticlassAccuracy(num_classes, average="micro") for s in streams})
        self.init_cost()
        self.last_eval: dict[str, Any] = {}
        self._outputs: dict[str, dict[str, list[torch.Tensor]]] = {}
        self._ref_cache: dict[tuple[str, int], torch.Tensor] = {}

    # ---- network --------------------------------------------------------------------------
    def set_net(self, net: nn.Module, spec: dict[str, Any] | None = None) -> None:
        """Attach the trained network and remember how to rebuild it."""
        self.net = net
        self.net_spec = spec if spec is not None else net_spec(net)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Hook applied to every input before the network (identity by default)."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network. While training, counts the images it sees (the cost)."""
        if self.training and self._trainer is not None and self.trainer.training:
            self.count_images(x.shape[0])
        return self.net(self.prepare_input(x))

    def setup(self, stage: str) -> None:
        """Refuse data with another number of classes than the model, before any step (the
        data module is set up first): a model of more classes would train and report on it
        silently, one of fewer would fail deep inside a loss.

        Raises:
            ValueError: naming where the model's classes came from (e.g. the original checkpoint)
                and the data's classes.
        """
        dm = self.trainer.datamodule if self._trainer is not None else None
        classes = getattr(getattr(dm, "arrays", None), "classes", None)
        if classes is not None and len(classes) != self.num_classes:
            names = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
            raise ValueError(f"{type(self).__name__}: {self.num_classes_source} has {self.num_classes} classes: "
                             f"expected the data's {len(classes)} ({names})")

    def configure_callbacks(self) -> list[Callback]:
        """The training clock, and the distribution logger (TensorBoard) unless disabled."""
        from unlearning.callbacks import DistributionLogger

        return [CostClock(), *([DistributionLogger()] if self.log_distributions else [])]

    # ---- data the module declared ---------------------------------------------------------
    def _declared_loader(self, name: str, train: bool, batch_size: int | None) -> Any:
        if name not in (*self.train_streams, *self.extra_streams):
            raise ValueError(
                f"{type(self).__name__} did not declare stream {name!r} in train_streams "
                f"{self.train_streams} or extra_streams {self.extra_streams}"
            )
        return self.trainer.datamodule.stream_loader(name, train=train, batch_size=batch_size)

    def stream(
        self, name: str, batch_size: int | None = None, train: bool = True
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate once over a declared stream, on the module's device.

        Args:
            name: a stream of :attr:`train_streams` or :attr:`extra_streams`.
            batch_size: batch size (default: the data module's training or evaluation size).
            train: shuffled and augmented as in training; ``False``: the stream's fixed order,
                without augmentation (e.g. to precompute per-example features).

        Raises:
            ValueError: if ``name`` was not declared (the module may only see the data it
                declared).
        """
        for x, y in self._declared_loader(name, train, batch_size):
            yield x.to(self.device), y.to(self.device)

    def cycle(self, name: str, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training batches of a declared stream without end: a new seeded shuffle at every pass.

        Raises:
            ValueError: as :meth:`stream`.
        """
        loader = self._declared_loader(name, True, batch_size)
        while True:
            for x, y in loader:
                yield x.to(self.device), y.to(self.device)

    # ---- checkpoint metadata --------------------------------------------------------------
    def checkpoint_meta(self) -> dict[str, Any]:
        """What later stages need to know about this model without its config."""
        cls = type(self)
        return {
            "net": self.net_spec,
            "cost": dict(self.cost),
            "num_classes": self.num_classes,
            "module": f"{cls.__module__}.{cls.__qualname__}",
            "train_streams": list(self.train_streams),
            "reference_cost": dict(self.reference_cost),
            "versions": versions(),
        }

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop a run whose training loss (the step's output or any ``train/...`` value it logged)
        became NaN or infinite, naming the step and the value; checked every ``log_every_n_steps``
        steps (a checkpoint of non-finite weights is refused in any case, see :meth:`on_save_checkpoint`).

        Raises:
            FloatingPointError: on a non-finite loss; no checkpoint of the diverged weights is written.
        """
        if self.global_step % max(1, self.trainer.log_every_n_steps):
            return  # checked when the values are logged: no device sync in every step
        values = {}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            values["loss"] = loss.detach()
        for key, value in self.trainer.callback_metrics.items():
            if key.startswith("train/") and isinstance(value, torch.Tensor) and value.numel() == 1:
                values[key] = value.detach()
        if values and not bool(torch.isfinite(torch.stack([v.float().reshape(()) for v in values.values()])).all()):
            bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
            raise FloatingPointError(
                f"{type(self).__name__}: the training loss became non-finite at step {self.global_step} "
                f"(epoch {self.current_epoch}): {', '.join(f'{k} = {v}' for k, v in bad.items())}; stopped, "
                "no checkpoint of these weights was written (try a lower learning rate)"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the network spec and cost beside the weights.

        Raises:
            FloatingPointError: if a weight is NaN or infinite (such a checkpoint is never written).
        """
        bad = [k for k, v in checkpoint.get("state_dict", {}).items()
               if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            step = f" at step {self.trainer.global_step}" if self._trainer is not None else ""
            raise FloatingPointError(f"{type(self).__name__}: {len(bad)} weight tensor(s) are not finite "
                                     f"(e.g. {bad[0]}){step}; no checkpoint written")
        self._tick()
        checkpoint[META_KEY] = self.checkpoint_meta()
        if self.trainer.training:
            checkpoint[RNG_KEY] = rng_states()
            self._start_clock()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the cost of a resumed run, the reference's cost and the random generators.

        Raises:
            ValueError: when a fit would resume a module that is not :attr:`resumable`.
        """
        meta = checkpoint.get(META_KEY, {})
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if fitting and not self.resumable:
            raise ValueError(
                f"{type(self).__name__} cannot resume an interrupted fit: its on_train_start changes the "
                "weights or keeps state outside the checkpoint; start the run over with --overwrite true"
            )
        self.cost.update(meta.get("cost", {}))
        self.reference_cost.update(meta.get("reference_cost", {}))
        if fitting and RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])

    # ---- evaluation -----------------------------------------------------------------------
    def _eval_streams(self) -> tuple[str, ...]:
        dm = self.trainer.datamodule if self._trainer is not None else None
        return tuple(getattr(dm, "eval_streams", EVAL_STREAMS))

    def set_reference(self, net: nn.Module | None, name: str = "oracle", cost: dict[str, float] | None = None) -> None:
        """Evaluate ``net`` (frozen) beside the model and log the gaps to it, as ``<name>_...``;
        ``cost`` (the reference's recorded training cost) gives the cost fractions."""
        if net is not None:
            net = net.eval().requires_grad_(False)
        object.__setattr__(self, "reference", net)
        self.reference_name = name
        self._ref_cache = {}
        if cost is not None:
            self.reference_cost = dict(cost)

    def _reference_logits(self, stream: str, batch_idx: int, x: torch.Tensor) -> torch.Tensor:
        key = (stream, batch_idx)
        cached = self._ref_cache.get(key)
        if cached is None or cached.shape[0] != x.shape[0]:
            assert self.reference is not None
            self.reference.to(x.device)
            with torch.no_grad():
                cached = self.reference(x).float()
            self._ref_cache[key] = cached
        return cached

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int) -> None:
        x, y = batch
        stream = self._eval_streams()[dataloader_idx]
        logits = self(x).float()
        ref = self._reference_logits(stream, batch_idx, x) if self.reference is not None else None
        outputs = stream_outputs(logits, y, ref, features=stream in ("forget", "test") and self.trainer.testing)
        self.acc[stream].update(logits, y)
        self.loss_mean[stream].update(outputs["loss"])
        if ref is not None:
            self.ref_acc[stream].update(ref, y)
        store = self._outputs.setdefault(stream, defaultdict(list))
        for k, v in outputs.items():
            store[k].append(v)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate evaluation statistics of one batch of one stream."""
        self._eval_step(batch, batch_idx, dataloader_idx)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate evaluation statistics of one batch of one stream."""
        self._eval_step(batch, batch_idx, dataloader_idx)

    def _eval_epoch_end(self, prefix: str) -> None:
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for stream, store in self._outputs.items():
            outputs[stream] = {k: gather_rows(self, torch.cat(v)).cpu().numpy() for k, v in store.items()}
        self._outputs = {}
        streams = [s for s in self._eval_streams() if s in outputs]
        accuracy = {s: float(self.acc[s].compute()) for s in streams}
        mean_loss = {s: float(self.loss_mean[s].compute()) for s in streams}
        reference_accuracy = None
        if self.reference is not None:
            reference_accuracy = {s: float(self.ref_acc[s].compute()) for s in streams}
        for m in (*self.acc.values(), *self.loss_mean.values(), *self.ref_acc.values()):
            m.reset()
        scalars = measure(outputs, accuracy, mean_loss, reference_accuracy, self.reference_name, seed=self.mia_seed,
                          predictive=prefix == "test")  # a few seconds per evaluation on CPU: at test time only
        scalars.update(self.cost_scalars())
        if prefix == "test" or not self.trainer.sanity_checking:
            for k, v in scalars.items():
                self.log(f"{prefix}/{k}", v, add_dataloader_idx=False, sync_dist=False, rank_zero_only=False)
        self.last_eval = {"prefix": prefix, "scalars": scalars, "outputs": outputs}

    def on_validation_epoch_end(self) -> None:
        """Log accuracies, losses, attacks and gaps as ``val/...``."""
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        """Log accuracies, losses, attacks and gaps as ``test/...``."""
        self._eval_epoch_end("test")
