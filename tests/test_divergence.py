"""A run whose loss becomes NaN or infinite stops with a line naming the step and the loss, and
leaves no checkpoint of the diverged weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import quick_args, run_cli_here


def test_a_diverging_gradient_ascent_stops_naming_the_step(tmp_path: Path, tiny_toy_checkpoints: dict[str, Path]) -> None:
    r = run_cli_here("fit", "-c", "configs/toy/unlearn/finetune.yaml", "--model", "NegGradPlus",
                "--model.init_args.original", str(tiny_toy_checkpoints["original"]),
                "--model.init_args.lr", "1e8", "--model.init_args.alpha", "0.01",
                *quick_args(tmp_path, "diverged"), "--trainer.limit_train_batches", "8", "--trainer.max_epochs", "3")
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("unlearning: error: NegGradPlus: the training loss became non-finite at step ")
    assert "loss = nan" in line or "loss = inf" in line
    assert not list((tmp_path / "diverged").rglob("*.ckpt"))  # no checkpoint of any epoch: it diverged in the first


def test_a_checkpoint_of_non_finite_weights_is_never_written(tiny_toy_checkpoints: dict[str, Path]) -> None:
    from unlearning.methods import Finetune

    module = Finetune(original=str(tiny_toy_checkpoints["original"]))
    state = {f"net.{k}": v.clone() for k, v in module.net.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = math.nan
    with pytest.raises(FloatingPointError, match=f"not finite \\(e.g. {name}\\)"):
        module.on_save_checkpoint({"state_dict": state})
    state[name].view(-1)[0] = torch.inf
    with pytest.raises(FloatingPointError):
        module.on_save_checkpoint({"state_dict": state})
