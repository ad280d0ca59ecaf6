"""The cost clock: training time counts, validation and sanity checks do not; a resumed run keeps
its cost."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch

from unlearning.data import SyntheticImageDataModule
from unlearning.modules import Classifier
from unlearning.nets import SmallCNN

TRAIN_SLEEP, EVAL_SLEEP = 0.05, 0.25


class _Timed(Classifier):
    """Sleeps a known time in every training step and every evaluation step."""

    def training_step(self, batch, batch_idx):
        time.sleep(TRAIN_SLEEP)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        time.sleep(EVAL_SLEEP)
        return super().validation_step(batch, batch_idx, dataloader_idx)


def _dm() -> SyntheticImageDataModule:
    return SyntheticImageDataModule(num_train=200, num_heldout=100, image_size=16, batch_size=32, eval_batch_size=64)


def test_validation_and_sanity_checks_are_not_training_cost(tmp_path: Path) -> None:
    L.seed_everything(0)
    module = _Timed(net=SmallCNN(width=4, hidden=16), log_distributions=False)
    # 2 epochs of 3 steps; each validation and the sanity check read 1 batch of each of 4 streams
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=1,
                        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, _dm())
    trained, evaluated = 6 * TRAIN_SLEEP, 3 * 4 * EVAL_SLEEP  # 0.3 s of training, 3 s of evaluation
    cost = module.cost["train_time_s"]
    assert cost >= trained, cost  # every training step counts
    assert cost < trained + 0.5 * evaluated, cost  # no evaluation does (with room for the steps' own work)
    assert module.cost["images_seen"] == 6 * 32


def test_a_resumed_run_keeps_its_cost(tmp_path: Path) -> None:
    """Stopped after one epoch and resumed from its checkpoint: the images and the time of both
    epochs, counted once each."""
    def fit(epochs: int, ckpt: str | None) -> Classifier:
        L.seed_everything(0)
        root = tmp_path / f"run{epochs}"
        module = Classifier(net=SmallCNN(width=4, hidden=16), log_distributions=False)
        t = L.Trainer(max_epochs=epochs, limit_train_batches=3, limit_val_batches=0, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
        t.fit(module, _dm(), ckpt_path=ckpt)
        if ckpt is None:
            t.save_checkpoint(tmp_path / "one.ckpt")
        return module

    one = fit(1, None)
    two = fit(2, str(tmp_path / "one.ckpt"))
    assert one.cost["images_seen"] == 3 * 32 and two.cost["images_seen"] == 6 * 32
    assert two.cost["train_time_s"] > one.cost["train_time_s"]


def test_outside_a_trainer_a_module_is_one_process() -> None:
    """Counting images needs the world size also before a trainer is attached (a module built in a
    script): one process, not an error and not a guess."""
    from unlearning.modules.cost import world_size

    module = Classifier(net=SmallCNN(width=4, hidden=16), log_distributions=False)
    assert world_size(module) == 1
    module.count_images(5)  # a pre-pass counted by hand, before any trainer
    assert module.cost["images_seen"] == 5
    module.train()
    module(torch.zeros(3, 3, 16, 16))  # a forward pass outside a trainer's training is no training cost
    assert module.cost["images_seen"] == 5
