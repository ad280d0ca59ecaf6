"""The examples run end to end on tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import quick_args, read_scalars
from unlearning.cli import main


def test_custom_method_runs_through_the_cli_by_class_path(tiny_cifar: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    main([
        "fit", "-c", "configs/cpu/unlearn/finetune.yaml", *quick_args(tmp_path),
        "--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
        "--model", "examples.custom_method.ForgetEntropy", "--model.init_args.beta", "0.3",
        "--model.init_args.original", str(tiny_checkpoints["original"]),
        "--model.init_args.oracle", str(tiny_checkpoints["oracle"]),
    ])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    import torch

    saved = torch.load(ckpt, weights_only=True)
    assert saved["unlearning"]["module"] == "examples.custom_method.ForgetEntropy"
    assert saved["hyper_parameters"]["beta"] == 0.3
    scalars = read_scalars(tmp_path / "run")
    assert "train/forget_entropy" in scalars and "val/oracle_forget_acc" in scalars


def test_quickstart_pipeline_prints_the_comparison(tiny_cifar: Path, tmp_path: Path, capsys) -> None:
    from examples.quickstart import main as quickstart
    from tests.conftest import REPO

    before = set(REPO.iterdir())
    args = [a for a in quick_args(tmp_path) if a != "--trainer.logger.init_args.name" and a != "run"]
    rows = quickstart(["--root", str(tiny_cifar), "--data.init_args.train_subset", "null", *args])
    assert set(rows) == {"original", "oracle (retrain)", "finetune", "discriminator"}
    for row in rows.values():
        assert {"retain_acc", "forget_acc", "val_acc", "test_acc", "simple_mia", "mia_efficacy", "cost_time_fraction"} <= set(row)
    # the cost fraction is the recorded training times' ratio, read here from the checkpoints themselves
    import torch

    def train_time(stage: str) -> float:
        return torch.load(tmp_path / stage / "checkpoints" / "last.ckpt", weights_only=True)["unlearning"]["cost"]["train_time_s"]

    for stage in ("finetune", "discriminator"):
        assert rows[stage]["cost_time_fraction"] == pytest.approx(train_time(stage) / train_time("retrain"))
    out = capsys.readouterr().out
    assert "| finetune |" in out and "| discriminator |" in out and "simple MIA" in out
    for stage in ("original", "retrain", "finetune", "discriminator"):
        assert (tmp_path / stage / "checkpoints" / "last.ckpt").is_file()
    assert set(REPO.iterdir()) == before, "evaluation wrote into the working directory"
