"""The synthetic unlearning problem shared by the method tests (a fixture in conftest trains its
original and oracle once per session)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from unlearning.data import SyntheticImageDataModule, UnlearningDataModule
from unlearning.data.sources import ImageArrays
from unlearning.modules import Classifier, RetrainOracle
from unlearning.nets import SmallCNN

#: 16x16 images, so that it is fast: 2,000 training images, 15% of them (300) forgotten; 800 held
#: out (400 val, 400 test). The original memorises its training set; the oracle, retrained without
#: the forget set, does not know it. Measured: original forget acc 1.00, simple MIA 0.69, test acc
#: 0.77; oracle 0.75, 0.57, 0.67; both retain acc 1.00.
SYNTHETIC = dict(num_train=2000, num_heldout=800, signal=0.13, forget_fraction=0.15, image_size=16,
                 batch_size=64, eval_batch_size=512)
NUM_FORGET = 300

#: The class-forgetting variant of the same problem: every training image of class 0 (about 200)
#: is forgotten instead of a random 15%. Same training images, so the same original; only the
#: oracle differs (retrained without class 0, it never predicts it).
CLASS_FORGET = dict(forget_classes=[0])


def datamodule(**kw) -> SyntheticImageDataModule:
    """The synthetic problem's data module (``kw`` overrides its settings)."""
    return SyntheticImageDataModule(**{**SYNTHETIC, **kw})


def trainer(tmp: Path, epochs: int, **kw) -> L.Trainer:
    """A quiet CPU trainer without logger or progress bar."""
    kw.setdefault("logger", False)
    return L.Trainer(max_epochs=epochs, accelerator="cpu", default_root_dir=tmp, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kw)


def train_models(out: Path) -> dict[str, Path]:
    """The original (seed 0, retain + forget) and the oracle (seed 1, retain only): 15 epochs each."""
    return {name: train_model(out, name, cls, seed)
            for name, cls, seed in (("original", Classifier, 0), ("oracle", RetrainOracle, 1))}


def train_model(out: Path, name: str, cls: type[Classifier], seed: int, **data_kw) -> Path:
    """One model of the synthetic problem (15 epochs), saved as ``out / f"{name}.ckpt"``;
    ``data_kw``: overrides of the problem (e.g. :data:`CLASS_FORGET`)."""
    L.seed_everything(seed)
    module = cls(net=SmallCNN(width=8, hidden=64), lr=0.05, log_distributions=False)
    t = trainer(out / name, 15, enable_checkpointing=False, limit_val_batches=0)
    t.fit(module, datamodule(**data_kw))
    path = out / f"{name}.ckpt"
    t.save_checkpoint(path)
    return path


class IndexedImages(UnlearningDataModule):
    """Images that carry their identity: pixel (0, 0) holds the example's index (low byte in
    channel 0, high byte in channel 1, each as ``byte / 255``) and whether it is held out
    (channel 2); the rest is zero. Labels are ``index % 10``. For tests of which examples reach a
    module (decode a batch with :func:`decode_indices`)."""

    def __init__(self, num_train: int = 500, num_heldout: int = 200, **kwargs) -> None:
        kwargs.setdefault("forget_fraction", 0.2)
        kwargs.setdefault("batch_size", 32)
        super().__init__(**kwargs)
        self.num_train, self.num_heldout = num_train, num_heldout

    @staticmethod
    def _images(n: int, heldout: bool) -> torch.Tensor:
        x = torch.zeros(n, 3, 16, 16)
        i = torch.arange(n)
        x[:, 0, 0, 0], x[:, 1, 0, 0], x[:, 2, 0, 0] = (i % 256) / 255, (i // 256) / 255, float(heldout)
        return x

    def load_arrays(self) -> ImageArrays:
        return ImageArrays(self._images(self.num_train, False), torch.arange(self.num_train) % 10,
                           self._images(self.num_heldout, True), torch.arange(self.num_heldout) % 10,
                           tuple(str(c) for c in range(10)))


def decode_indices(x: torch.Tensor) -> list[tuple[bool, int]]:
    """``(held_out, index)`` of each image of an :class:`IndexedImages` batch."""
    b = (x[:, :, 0, 0].detach().cpu() * 255).round().long()
    return [(bool(h), int(lo + 256 * hi)) for lo, hi, h in b.tolist()]
