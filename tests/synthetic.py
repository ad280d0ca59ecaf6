"""The synthetic unlearning problem shared by the method tests, and its reference models.

The reference models (the original, the oracle, the class-forgetting oracle and a hypernetwork
stage) are shipped as small checkpoints under ``tests/fixtures/synthetic/``, so that every machine
starts the method tests from the same weights: trained anew, 15 epochs of SGD grow the last-bit
differences between CPUs (vector unit, thread count) into visibly different models, and a check
tuned on one machine's original fell on the wrong side on another's. ``test_reference_models.py``
trains them again and checks that they land in the same accuracy band. Regenerate them (after a
change of the problem, the nets or the checkpoint format) with ``python -m tests.synthetic``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from unlearning.modules.checkpoint import META_KEY
from unlearning.runfolder import safe_load

from unlearning.data import SyntheticImageDataModule, UnlearningDataModule
from unlearning.data.sources import SourceArrays
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


def evaluate(module: L.LightningModule, tmp: Path, **data_kw) -> dict[str, float]:
    """Test metrics of ``module`` on the synthetic problem (``data_kw``: its variant)."""
    res = trainer(tmp, 1).test(module, datamodule(**data_kw), verbose=False)[0]
    return {k.removeprefix("test/"): float(v) for k, v in res.items()}


#: Where the shipped reference models live (see the module's docstring).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "synthetic"

#: The reference models: ``name: (module class, seed, data overrides)``. The original (seed 0)
#: trains on retain + forget, the oracle (seed 1) on retain only, the class oracle (seed 1) on the
#: class-forgetting variant's retain set.
REFERENCE_MODELS: dict[str, tuple[type[Classifier], int, dict]] = {
    "original": (Classifier, 0, {}),
    "oracle": (RetrainOracle, 1, {}),
    "class_oracle": (RetrainOracle, 1, CLASS_FORGET),
}

#: The hypernetwork stage shipped beside them (init args, optimiser steps), trained for the original.
HYPERNET_STAGE: tuple[dict, int] = ({"patched_layers": 2, "rank": 8, "hidden": 64, "distill_weight": 3.0}, 400)

#: Checkpoint entries that a reference model needs to be loaded as an original, an oracle or a
#: module; the rest (optimiser state, loops, callbacks) would only make the files bigger.
KEPT_ENTRIES = ("state_dict", "hyper_parameters", "pytorch-lightning_version", META_KEY)


def reference_models() -> dict[str, Path]:
    """The shipped reference models, ``{"original", "oracle", "class_oracle", "hypernet"}`` ->
    checkpoint path (read-only: copy one before changing it)."""
    paths = {name: FIXTURES / f"{name}.ckpt" for name in (*REFERENCE_MODELS, "hypernet")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"reference models missing: {missing}; run `python -m tests.synthetic`")
    return paths


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


def write_simulated_oracles(path: Path, index: np.ndarray, lsc: np.ndarray, members: np.ndarray | None = None,
                            val_lsc_mean: np.ndarray | None = None) -> Path:
    """A ``memorisation.npz`` holding only what the hypernetwork's simulated oracles read: K subset
    models' ``lsc`` (``K x N``) on the examples ``index`` (sorted), their ``members`` (default: none
    trained on anything) and their mean on val (default 0)."""
    k = lsc.shape[0]
    np.savez(path, index=np.asarray(index), lsc=lsc,
             members=np.zeros(lsc.shape, dtype=bool) if members is None else members,
             val_lsc_mean=np.zeros(k) if val_lsc_mean is None else val_lsc_mean)
    return path


def fit_hypernet_stage(original: Path, tmp: Path, steps: int, seed: int = 0, stage_kw: dict | None = None,
                       **data_kw):
    """Fit the hypernetwork stage of :data:`HYPERNET_STAGE`'s init args (updated by ``stage_kw``)
    for ``original`` (``steps`` optimiser steps, ``data_kw``: overrides of the problem);
    ``(module, trainer)``."""
    from unlearning.methods import HypernetTrainer

    L.seed_everything(seed)
    module = HypernetTrainer(original=str(original), **{**HYPERNET_STAGE[0], **(stage_kw or {})})
    t = trainer(tmp, -1, max_steps=steps, enable_checkpointing=False, limit_val_batches=0)
    t.fit(module, datamodule(**data_kw))
    return module, t


def train_hypernet_stage(original: Path, out: Path) -> Path:
    """The shipped hypernetwork stage (:data:`HYPERNET_STAGE`) for ``original``, saved as ``out / "hypernet.ckpt"``."""
    _, t = fit_hypernet_stage(original, out / "hypernet", HYPERNET_STAGE[1])
    path = out / "hypernet.ckpt"
    t.save_checkpoint(path)
    return path


def train_reference_models(out: Path) -> dict[str, Path]:
    """Train every model of :data:`REFERENCE_MODELS` (and the hypernetwork stage) into ``out``."""
    paths = {name: train_model(out, name, cls, seed, **data_kw)
             for name, (cls, seed, data_kw) in REFERENCE_MODELS.items()}
    paths["hypernet"] = train_hypernet_stage(paths["original"], out)
    return paths


def write_fixtures(out: Path = FIXTURES) -> dict[str, Path]:
    """Train the reference models and write them to ``out`` with only :data:`KEPT_ENTRIES`."""
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in train_reference_models(Path(tmp)).items():
            ckpt = safe_load(path)
            written[name] = out / f"{name}.ckpt"
            torch.save({k: ckpt[k] for k in KEPT_ENTRIES if k in ckpt}, written[name])
    return written


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

    def load_arrays(self) -> SourceArrays:
        return SourceArrays(self._images(self.num_train, False), torch.arange(self.num_train) % 10,
                           self._images(self.num_heldout, True), torch.arange(self.num_heldout) % 10,
                           tuple(str(c) for c in range(10)))


def decode_indices(x: torch.Tensor) -> list[tuple[bool, int]]:
    """``(held_out, index)`` of each image of an :class:`IndexedImages` batch."""
    b = (x[:, :, 0, 0].detach().cpu() * 255).round().long()
    return [(bool(h), int(lo + 256 * hi)) for lo, hi, h in b.tolist()]


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, path in write_fixtures().items():
        print(f"{name}: {path.stat().st_size / 1024:.0f} KiB")
