"""The evaluated base of every LightningModule in the project.

It owns what all stages share, so that a stage only says how it trains:
- the network (a plain ``nn.Module``) and the spec that rebuilds it from a checkpoint;
- evaluation on the retain, forget, val and test streams: accuracies (torchmetrics, synchronised
  over DDP ranks), per-example output statistics gathered from all ranks, the simple MIA,
  MIA-efficacy and, at test time, the predictive-distribution attack, and, when a reference (oracle) network is attached, the same for it plus the gaps;
- cost accounting (training wall time without validation, images processed; see
  :mod:`unlearning.modules.cost`), stored in every checkpoint so later stages can compare costs;
- TensorBoard distributions through :class:`~unlearning.callbacks.DistributionLogger`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from unlearning.data.base import EVAL_STREAMS
from unlearning.metrics import (
    attack_features,
    mia_efficacy,
    per_example_stats,
    predictive_mia,
    simple_mia,
)
from unlearning.modules.cost import CostAccounting, CostClock, world_size
from unlearning.modules.resume import rng_states, set_rng_states
from unlearning.nets import build_net, net_spec
from unlearning.runfolder import resolve_checkpoint, safe_load

__all__ = ["EvaluatedModule", "cli_net_spec", "gather_rows", "load_checkpoint_meta", "load_net", "read_checkpoint"]

META_KEY = "unlearning"
#: the checkpoint entry of the random generators' states (:mod:`unlearning.modules.resume`)
RNG_KEY = "unlearning_rng"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of this project, loaded safely (``weights_only``) on the CPU.

    Args:
        path: a ``.ckpt`` file, or the run folder of ``unlearning fit`` (its ``checkpoints/last.ckpt``).

    Raises:
        FileNotFoundError: if the file (or the folder's ``last.ckpt``) does not exist.
        ValueError: if it was not written by a module of this project.
    """
    path = resolve_checkpoint(path)
    ckpt = safe_load(path)
    if META_KEY not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {str(path)!r} was not written by an unlearning module (no {META_KEY!r} entry)")
    return ckpt


def load_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The project's metadata of a checkpoint: network spec, cost, module class, classes."""
    return dict(read_checkpoint(path)[META_KEY])


def load_net(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a checkpoint's network from the checkpoint alone and load its weights.

    Args:
        path: a checkpoint written by any module of this project.

    Returns:
        ``(network, metadata)``; the network is in eval mode.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt[META_KEY]
    net = build_net(meta["net"])
    prefix = "net."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    net.load_state_dict(state)
    return net.eval(), dict(meta)


def cli_net_spec(net: nn.Module, key: str = "net") -> dict[str, Any]:
    """The spec of ``net``: from the LightningCLI config when the CLI built it, else from the net.

    LightningCLI records each init argument as parsed (``{"class_path", "init_args"}`` for a
    network); using that record lets any ``nn.Module`` chosen in a config be rebuilt, not only
    the project's :class:`~unlearning.nets.Net` subclasses. Lightning keeps it in a context
    variable while the CLI instantiates the module (there is no public accessor).
    """
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        given = (_given_hyperparameters.get() or {}).get(key)
    except ImportError:  # pragma: no cover - older/newer Lightning
        given = None
    if isinstance(given, dict) and isinstance(given.get("class_path"), str):
        cls = type(net)
        if given["class_path"] in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(given.get("init_args") or {})}
    return net_spec(net)


def _predictive_attack(members: np.ndarray, nonmembers: np.ndarray, seed: int = 0) -> float:
    """The predictive-distribution attack as every evaluation runs it: 5 splits."""
    return predictive_mia(members, nonmembers, n_splits=5, seed=seed)


def gather_rows(module: LightningModule, t: torch.Tensor) -> torch.Tensor:
    """Gather a per-example tensor from every rank, restoring the single-process order.

    Evaluation shards are ``order[rank::world]`` (see :class:`~unlearning.data.TensorLoader`),
    so interleaving the shards gives back the order of a single-process run.
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


class EvaluatedModule(CostAccounting, LightningModule):
    """Base class: a network, evaluation against the split's streams, cost accounting.

    Subclasses set ``self.net`` (and optionally ``self.reference``, a frozen network evaluated
    beside it, e.g. the retrain oracle), and write ``training_step``.

    Class attributes:
        train_streams: the streams the module trains on (see
            :class:`~unlearning.data.UnlearningDataModule`); the data module hands it exactly
            these, as a dict ``{stream: (x, y)}`` per step.
        stream_mode: how streams of different lengths are combined (a Lightning
            ``CombinedLoader`` mode: ``max_size_cycle``, ``min_size``, ``max_size``).
        extra_streams: streams the module reads only through :meth:`stream` or :meth:`cycle`
            (a pre-pass, a pool of reference batches), not delivered at every step.
        resumable: whether an interrupted fit may continue from its last checkpoint
            (``--ckpt_path last``). ``False`` for a module whose ``on_train_start`` changes the
            weights or keeps state outside the checkpoint (a re-initialisation, a first stage of
            its own, anchors taken from the weights): resumed, it would run that again on
            half-trained weights, so the fit refuses and the run is started over.

    Args:
        num_classes: number of classes of the data.
        log_distributions: write per-example distribution histograms and figures (forget vs
            test) to TensorBoard at every evaluation.
        mia_seed: seed of the attacks' subsampling and cross-validation splits.
    """

    train_streams: ClassVar[tuple[str, ...]] = ("train",)
    stream_mode: ClassVar[str] = "max_size_cycle"
    extra_streams: ClassVar[tuple[str, ...]] = ()
    #: whether evaluation measures a classifier (``False`` for a stage that trains something else,
    #: e.g. a hypernetwork)
    evaluated: ClassVar[bool] = True
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
        self.acc = nn.ModuleDict({s: MulticlassAccuracy(num_classes, average="micro") for s in EVAL_STREAMS})
        self.loss_mean = nn.ModuleDict({s: MeanMetric() for s in EVAL_STREAMS})
        self.ref_acc = nn.ModuleDict({s: MulticlassAccuracy(num_classes, average="micro") for s in EVAL_STREAMS})
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
        import lightning
        import torchvision

        cls = type(self)
        return {
            "net": self.net_spec,
            "cost": dict(self.cost),
            "num_classes": self.num_classes,
            "module": f"{cls.__module__}.{cls.__qualname__}",
            "train_streams": list(self.train_streams),
            "reference_cost": dict(self.reference_cost),
            "versions": {
                "torch": str(torch.__version__),
                "lightning": str(lightning.__version__),
                "torchvision": str(torchvision.__version__),
            },
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
        stats = per_example_stats(logits, y)
        self.acc[stream].update(logits, y)
        self.loss_mean[stream].update(stats["loss"])
        store = self._outputs.setdefault(stream, defaultdict(list))
        for k, v in stats.items():
            store[k].append(v.detach())
        if stream in ("forget", "test") and self.trainer.testing:  # what the predictive attack reads (test only)
            store["features"].append(attack_features(logits, y).detach())
        if self.reference is not None:
            ref = self._reference_logits(stream, batch_idx, x)
            self.ref_acc[stream].update(ref, y)
            for k, v in per_example_stats(ref, y).items():
                store[f"ref_{k}"].append(v)
            log_p, log_q = F.log_softmax(logits, 1), F.log_softmax(ref, 1)
            store["kl_to_ref"].append((log_q.exp() * (log_q - log_p)).sum(1).detach())

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate evaluation statistics of one batch of one stream."""
        self._eval_step(batch, batch_idx, dataloader_idx)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Accumulate evaluation statistics of one batch of one stream."""
        self._eval_step(batch, batch_idx, dataloader_idx)

    def _attack(self, fn: Any, *args: Any) -> float:
        try:
            return fn(*args, seed=self.mia_seed)
        except ValueError:
            return math.nan

    def _eval_epoch_end(self, prefix: str) -> None:
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for stream, store in self._outputs.items():
            outputs[stream] = {k: gather_rows(self, torch.cat(v)).cpu().numpy() for k, v in store.items()}
        self._outputs = {}
        scalars: dict[str, float] = {}
        for stream in self._eval_streams():
            if stream not in outputs:
                continue
            scalars[f"{stream}_acc"] = float(self.acc[stream].compute())
            scalars[f"{stream}_loss"] = float(self.loss_mean[stream].compute())
            if self.reference is not None:
                ref = float(self.ref_acc[stream].compute())
                scalars[f"{self.reference_name}_{stream}_acc"] = ref
                scalars[f"{stream}_acc_gap"] = scalars[f"{stream}_acc"] - ref
        for m in (*self.acc.values(), *self.loss_mean.values(), *self.ref_acc.values()):
            m.reset()
        f, t, r = outputs.get("forget"), outputs.get("test"), outputs.get("retain")
        if f is not None and t is not None:
            scalars["simple_mia"] = self._attack(simple_mia, f["loss"], t["loss"])
            if prefix == "test":  # a few seconds per evaluation on CPU: at test time only
                scalars["predictive_mia"] = self._attack(_predictive_attack, f["features"], t["features"])
            if r is not None:
                scalars["mia_efficacy"] = self._attack(mia_efficacy, r["confidence"], t["confidence"], f["confidence"])
            if self.reference is not None:
                ref_mia = self._attack(simple_mia, f["ref_loss"], t["ref_loss"])
                scalars[f"{self.reference_name}_simple_mia"] = ref_mia
                scalars["simple_mia_gap"] = scalars["simple_mia"] - ref_mia
                if r is not None:
                    scalars[f"{self.reference_name}_mia_efficacy"] = self._attack(
                        mia_efficacy, r["ref_confidence"], t["ref_confidence"], f["ref_confidence"]
                    )
                scalars[f"kl_to_{self.reference_name}_forget"] = float(np.mean(f["kl_to_ref"]))
                scalars[f"kl_to_{self.reference_name}_test"] = float(np.mean(t["kl_to_ref"]))
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
