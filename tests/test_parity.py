"""Determinism and parity: the same config and seed give the same bits twice on CPU; SCRUB (a
method with a frozen teacher) trained by 2-process DDP on CPU (gloo) ends where 1 process ends."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, last_scalars, quick_args, read_csv_metrics, run_cli
from unlearning.cli import main


def _metrics(folder: Path) -> dict[str, float]:
    return {t: v for t, v in last_scalars(folder).items() if not t.startswith(("val/cost_time", "train/cost_time"))}


@pytest.mark.slow  # about 15 s
def test_the_same_config_and_seed_give_the_same_bits(tmp_path: Path, tiny_cifar: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice the CPU preset's original on images with augmentation (random crops and flips):
    bitwise-identical weights and identical logged metrics (wall time apart)."""
    monkeypatch.chdir(REPO)
    runs = []
    for name in ("first", "second"):
        main(["fit", "-c", "configs/cpu/original.yaml", *quick_args(tmp_path, name),
              "--trainer.limit_train_batches", "4", "--trainer.max_epochs", "2",
              "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
              "--data.init_args.batch_size", "16", "--data.init_args.augment", "true"])
        ckpt = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        runs.append((ckpt["state_dict"], _metrics(tmp_path / name)))
    (a, ma), (b, mb) = runs
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ma and ma == mb
    # and a different seed does change them (the comparison can fail)
    main(["fit", "-c", "configs/cpu/original.yaml", *quick_args(tmp_path, "third"), "--seed_everything", "1",
          "--trainer.limit_train_batches", "4", "--trainer.max_epochs", "2",
          "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
          "--data.init_args.batch_size", "16", "--data.init_args.augment", "true"])
    c = torch.load(tmp_path / "third" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_scrub_under_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    """SCRUB on the two-circles toy, 1 process with batches of 32 against 2 DDP processes with 16
    each: every step sees the same 32 examples (the ranks read alternate rows of one seeded
    permutation) and DDP averages the two half-batch gradients into the full batch's mean, so
    the weights agree up to float rounding (the MLP has no BatchNorm, whose statistics would be
    per rank), and each accuracy within one example of its stream."""
    orig = tmp_path / "orig"
    r = run_cli("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path, "orig"), "--trainer.max_epochs", "5",
                "--trainer.limit_train_batches", "1.0")
    assert r.returncode == 0, r.stderr[-3000:]
    method = ["-c", "configs/toy/unlearn/finetune.yaml", "--model.class_path", "SCRUB",
              "--model.init_args.original", str(orig), "--model.init_args.lr", "0.02",
              "--model.init_args.msteps", "2", "--trainer.max_epochs", "3"]
    ckpts = {}
    for devices, batch in ((1, 32), (2, 16)):
        name = f"scrub{devices}"
        r = run_cli("fit", *method, *quick_args(tmp_path, name), "--trainer.max_epochs", "3",
                    "--trainer.limit_train_batches", "1.0", "--trainer.devices", str(devices),
                    "--trainer.strategy", "ddp" if devices > 1 else "auto", "--data.init_args.batch_size", str(batch))
        assert r.returncode == 0, r.stderr[-3000:]
        ckpts[devices] = tmp_path / name / "checkpoints" / "last.ckpt"
    one, two = (torch.load(ckpts[d], map_location="cpu", weights_only=True) for d in (1, 2))
    assert one["global_step"] == two["global_step"] > 0
    for k, v in one["state_dict"].items():
        assert torch.allclose(v.float(), two["state_dict"][k].float(), rtol=1e-4, atol=1e-5), k
    acc = {}
    for devices in (1, 2):
        out = tmp_path / f"test{devices}"
        r = run_cli("test", *method, "--ckpt_path", str(ckpts[devices]), "--trainer.accelerator", "cpu",
                    "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
                    "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(out),
                    "--trainer.logger.name", "m", "--trainer.logger.version", "0")
        assert r.returncode == 0, r.stderr[-3000:]
        (csv_file,) = out.rglob("metrics.csv")
        acc[devices] = read_csv_metrics(csv_file)
    sizes = {"test/retain_acc": 180, "test/forget_acc": 20, "test/test_acc": 100}
    for key, n in sizes.items():
        assert key in acc[1], sorted(acc[1])
        assert math.isclose(acc[1][key], acc[2][key], abs_tol=1.0 / n + 1e-9), (key, acc[1][key], acc[2][key])
    diff = max(float((v.float() - two["state_dict"][k].float()).abs().max()) for k, v in one["state_dict"].items())
    print({k: (acc[1][k], acc[2][k]) for k in sizes}, "max weight difference", diff)
