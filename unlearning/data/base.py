"""The data module every stage shares: one split, several named streams."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader

from unlearning.data.contract import StreamDeclarations
from unlearning.data.loaders import TensorLoader
from unlearning.data.scenarios import ForgetScenario, IndexForget
from unlearning.data.splits import STREAMS, Split, check_forget_fraction, make_split
from unlearning.data.sources import SourceArrays

__all__ = ["UnlearningDataModule"]

EVAL_STREAMS = ("retain", "forget", "val", "test")
#: the streams a scenario that corrupts the training data adds to evaluation (see
#: :class:`~unlearning.data.corruption.CorruptedForget`): the forgotten and the undiscovered
#: corrupted examples with their true labels, and test images of other classes with the trigger
HEALING_STREAMS = ("corrupted_forget", "corrupted_retain", "trigger")
#: what a module that does not derive from :class:`~unlearning.data.contract.StreamDeclarations`
#: is served: the defaults
_UNDECLARED = StreamDeclarations()


class UnlearningDataModule(LightningDataModule):
    """Base data module: a retain/forget/val/test split served as named streams.

    Subclasses implement :meth:`load_arrays` (and may override :meth:`train_transform` and
    :meth:`eval_transform`). The module being trained declares which streams it trains on through
    the attributes of :class:`~unlearning.data.contract.StreamDeclarations` (``train_streams``:
    any of ``train`` = retain + forget, ``retain``, ``forget``, ``val``); :meth:`train_dataloader`
    yields a dict ``{stream: (x, y)}`` holding exactly those streams, combined by the module's
    ``stream_mode`` (a Lightning ``CombinedLoader`` mode, ``max_size_cycle`` by default) and
    batched by its ``stream_options``. Evaluation covers ``retain``, ``forget``, ``val`` and ``test``
    as four loaders in that order, or the streams given as ``eval_streams`` (:attr:`eval_streams`).
    A scenario that corrupts the training data (:class:`~unlearning.data.corruption.CorruptedForget`)
    changes the training arrays at :meth:`setup` and adds its streams of :data:`HEALING_STREAMS`
    to the evaluated ones (:attr:`healing_streams`).

    Args:
        batch_size: training batch size of each stream (per device).
        eval_batch_size: batch size of evaluation.
        forget_fraction: share of the training set to forget, in (0, 1) (starting kit: 0.1).
        forget_classes: forget every example of these classes (ids or names) instead.
        forget_index_file: forget the indices listed in this ``.npy`` or text file instead
            (indices into the source's training set).
        forget_scenario: the rule that picks the forget set (a class of
            :mod:`unlearning.data.scenarios`: random, classes, an index file, a band of a
            memorisation score, ...), instead of ``forget_fraction``, ``forget_classes`` and
            ``forget_index_file``, which are shorthands for the first three.
        train_subset: use a seeded random subset of this many training images (CPU presets).
        heldout_subset: use a seeded random subset of this many held-out images, split 50/50 into
            val and test (all of them if ``None``); makes every evaluation cheaper on small machines.
        split_seed: seed of the subset and of the random forget set.
        retain_eval_size: evaluate retain accuracy on a fixed seeded sample of this size (all of
            the retain set if ``None`` or larger).
        seed: seed of the training shuffles; ``None`` follows the run's ``seed_everything``.
        data_on_device: keep the dataset on the training device (the fast path); if ``False`` it
            stays in host memory and batches are moved by Lightning.
        eval_streams: the streams evaluated (validated, tested, predicted), in this order: some of
            ``retain``, ``forget``, ``val``, ``test``; all four if ``None`` (a score asks for
            ``retain``, ``forget`` and ``test``).
    """

    #: the streams evaluation covers, one loader each, in this order
    eval_streams: tuple[str, ...] = EVAL_STREAMS

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        forget_fraction: float = 0.1,
        forget_classes: list[int | str] | None = None,
        forget_index_file: str | None = None,
        forget_scenario: ForgetScenario | None = None,
        train_subset: int | None = None,
        heldout_subset: int | None = None,
        split_seed: int = 0,
        retain_eval_size: int | None = 5000,
        seed: int | None = None,
        data_on_device: bool = True,
        eval_streams: list[str] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got batch_size={batch_size}, eval_batch_size={eval_batch_size}")
        if forget_scenario is not None and (forget_classes or forget_index_file is not None):
            raise ValueError("give either a forget_scenario or the forget_classes / forget_index_file shorthands, not both")
        if forget_index_file is not None:
            forget_scenario = IndexForget(path=forget_index_file)
        if not forget_classes and forget_scenario is None:
            check_forget_fraction(forget_fraction)
        if retain_eval_size is not None and retain_eval_size < 1:
            raise ValueError(f"retain_eval_size must be >= 1 or null, got {retain_eval_size}")
        if eval_streams is not None and (not eval_streams or any(s not in EVAL_STREAMS for s in eval_streams)):
            raise ValueError(f"eval_streams must be some of {list(EVAL_STREAMS)}, got {eval_streams}")
        self.save_hyperparameters(ignore=["forget_scenario"])  # an object: recorded as its spec
        if forget_scenario is not None:
            self.hparams["forget_scenario"] = forget_scenario.spec()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.forget_fraction = forget_fraction
        self.forget_classes = forget_classes
        self.forget_index_file = forget_index_file
        self.forget_scenario = forget_scenario
        self.train_subset = train_subset
        self.heldout_subset = heldout_subset
        self.split_seed = split_seed
        self.retain_eval_size = retain_eval_size
        self.seed = seed
        self.data_on_device = data_on_device
        if eval_streams is not None:
            self.eval_streams = tuple(eval_streams)
        self.arrays: SourceArrays | None = None
        self.split: Split | None = None
        #: ``{stream: (x, y, indices)}`` of the evaluation streams a corrupting scenario adds
        self.healing_streams: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._device: torch.device | None = None

    # ---- hooks for subclasses -------------------------------------------------------------
    def load_arrays(self) -> SourceArrays:
        """Return the whole source (training and held-out sets) as tensors."""
        raise NotImplementedError

    def train_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Transform a training batch of inputs (identity by default)."""
        return x

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Transform an evaluation batch of inputs (identity by default)."""
        return x

    # ---- Lightning hooks ------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download or decode the source once (rank 0), filling the on-disk cache."""
        self.load_arrays()

    def setup(self, stage: str | None = None) -> None:
        """Load the source, compute the split and place the tensors on the training device."""
        if self.split is not None:
            return
        arrays = self.load_arrays()
        self.split = make_split(
            arrays.train_y,
            int(arrays.heldout_y.shape[0]),
            arrays.classes,
            forget_fraction=self.forget_fraction,
            forget_classes=self.forget_classes,
            forget_scenario=self.forget_scenario,
            train_subset=self.train_subset,
            heldout_subset=self.heldout_subset,
            seed=self.split_seed,
        )
        device = torch.device("cpu")
        if self.data_on_device and self.trainer is not None:
            device = self.trainer.strategy.root_device
        self._device = device
        self.arrays = SourceArrays(
            arrays.train_x.to(device),
            arrays.train_y.to(device),
            arrays.heldout_x.to(device),
            arrays.heldout_y.to(device),
            arrays.classes,
        )
        corrupt = getattr(self.forget_scenario, "corrupt", None)  # a scenario that changes the training data
        if corrupt is not None:
            self.arrays, self.healing_streams = corrupt(self.arrays, self.split)
            self.eval_streams = (*self.eval_streams, *self.healing_streams)

    @property
    def num_classes(self) -> int:
        """Number of classes of the source (after :meth:`setup`)."""
        if self.arrays is None:
            self.setup()
        assert self.arrays is not None
        return len(self.arrays.classes)

    def _seed(self) -> int:
        return int(self.seed) if self.seed is not None else int(torch.initial_seed())

    def stream_source(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(x, y, indices)`` of a stream: which rows of which tensors it covers."""
        if self.split is None or self.arrays is None:
            self.setup()
        assert self.split is not None and self.arrays is not None
        a, s = self.arrays, self.split
        if name in ("train", "retain", "forget"):
            return a.train_x, a.train_y, getattr(s, name)
        if name in ("val", "test"):
            return a.heldout_x, a.heldout_y, getattr(s, name)
        if name in self.healing_streams:
            return self.healing_streams[name]
        raise ValueError(f"unknown stream {name!r}: expected one of {list(STREAMS)}")

    def stream_loader(
        self, name: str, train: bool, batch_size: int | None = None, drop_single: bool = True
    ) -> TensorLoader:
        """A loader over one stream, shuffled and augmented when ``train`` is true.

        Args:
            name: one of :data:`~unlearning.data.STREAMS`, or of :attr:`healing_streams`.
            train: shuffle (seeded) and augment; else the stream's fixed order, not augmented.
            batch_size: batch size (default: ``batch_size`` for training, ``eval_batch_size``).
            drop_single: drop a final one-example training batch (BatchNorm cannot train on it).
        """
        x, y, idx = self.stream_source(name)
        transform: Callable[[torch.Tensor], torch.Tensor] = self.train_transform if train else self.eval_transform
        if not train and name == "retain" and self.retain_eval_size is not None and idx.numel() > self.retain_eval_size:
            g = torch.Generator().manual_seed(self.split_seed + 1)
            idx = torch.sort(idx[torch.randperm(idx.numel(), generator=g)[: self.retain_eval_size]]).values
        return TensorLoader(
            x,
            y,
            idx,
            batch_size or (self.batch_size if train else self.eval_batch_size),
            transform=transform,
            shuffle=train,
            seed=self._seed() + 7919 * (STREAMS.index(name) if name in STREAMS else 0),  # a healing stream is never shuffled
            drop_single=drop_single,
        )

    def _declarations(self) -> tuple[StreamDeclarations, str]:
        """The declarations of the module being trained (the defaults for one that declares none),
        and its class name for messages."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        declared = module if isinstance(module, StreamDeclarations) else _UNDECLARED
        return declared, type(module).__name__

    def requested_streams(self) -> tuple[Sequence[str], str]:
        """The training streams and combine mode declared by the module being trained."""
        declared, owner = self._declarations()
        streams = tuple(declared.train_streams)
        mode = declared.stream_mode
        if not streams:
            raise ValueError(f"{owner}.train_streams is empty: declare at least one stream")
        bad = [s for s in streams if s not in STREAMS or s == "test"]
        if bad:
            raise ValueError(
                f"{owner}.train_streams has {bad[0]!r}: expected some of train, retain, forget, val"
            )
        return streams, mode

    def train_dataloader(self) -> CombinedLoader:
        """Exactly the streams the module declares, as a dict per step, each loader with the
        module's ``stream_options`` (see :class:`~unlearning.data.contract.StreamDeclarations`)."""
        streams, mode = self.requested_streams()
        options = dict(self._declarations()[0].stream_options)
        loaders = {s: self.stream_loader(s, train=True, **options.get(s, {})) for s in streams}
        for loader in loaders.values():  # shuffled by epoch: a resumed fit shuffles as the uninterrupted one
            loader.epoch = self._current_epoch
        return CombinedLoader(loaders, mode=mode)

    def _current_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _eval_loaders(self) -> list[TensorLoader]:
        return [self.stream_loader(s, train=False) for s in self.eval_streams]

    def val_dataloader(self) -> list[TensorLoader]:
        """Retain (sampled), forget, val and test, in :attr:`eval_streams` order."""
        return self._eval_loaders()

    def test_dataloader(self) -> list[TensorLoader]:
        """Retain (sampled), forget, val and test, in :attr:`eval_streams` order."""
        return self._eval_loaders()

    def predict_dataloader(self) -> list[TensorLoader]:
        """Same as :meth:`test_dataloader`."""
        return self._eval_loaders()


