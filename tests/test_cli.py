"""The command line: help, documented arguments, one-line errors, devices and precision."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import quick_args, read_csv_metrics, run_cli, run_cli_here


def test_a_run_prints_nothing_that_is_not_the_users_business(tmp_path: Path) -> None:
    """Lightning's advertising tip, its warning about modules in eval mode (an unlearning module's
    frozen original is, on purpose) and its LeafSpec deprecation stay out of a run's output."""
    fit = run_cli("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path, "orig"))
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "orig" / "checkpoints" / "last.ckpt"
    un = run_cli("fit", "-c", "configs/toy/unlearn/finetune.yaml", *quick_args(tmp_path, "un"),
                 "--model.init_args.original", str(ckpt))
    assert un.returncode == 0, un.stderr[-3000:]
    for r in (fit, un):
        out = r.stdout + r.stderr
        for noise in ("💡", "Tip:", "eval mode", "LeafSpec", "to estimate number of stepping batches"):
            assert noise not in out, (noise, out[-2000:])


@pytest.mark.slow
def test_verbose_brings_lightnings_own_output_back(tmp_path: Path) -> None:
    """``-v``, anywhere on the command line, keeps what the filter hides (the filter is what hid it)."""
    loud = run_cli("fit", "-c", "configs/toy/original.yaml", "-v", *quick_args(tmp_path, "loud"))
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "LeafSpec" in loud.stdout + loud.stderr, loud.stderr[-2000:]


def test_model_help_shows_documented_arguments() -> None:
    r = run_cli_here("fit", "--model.help", "Classifier")
    assert r.returncode == 0, r.stderr
    assert "--model.lr" in r.stdout
    assert "learning rate" in r.stdout.lower()
    assert "weight_decay" in r.stdout


def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    r = run_cli_here("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path),
                "--data.init_args.forget_fraction", "1.5")
    assert r.returncode != 0
    assert "unlearning: error: forget_fraction must be in (0, 1), got 1.5" in r.stderr
    assert "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())


def test_missing_dataset_error_says_how_to_point_at_local_copy(tmp_path: Path) -> None:
    r = run_cli_here("fit", "-c", "configs/cpu/original.yaml", *quick_args(tmp_path),
                "--data.init_args.root", str(tmp_path / "missing"))
    assert r.returncode != 0
    assert "--data.init_args.root" in r.stderr or "cifar10-jpeg" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # about 75 s on 2 cores; .ci/run runs the slow tests after the default ones
def test_ddp_two_processes_log_the_same_accuracies_as_one(tmp_path: Path) -> None:
    """2-process DDP on CPU: evaluation metrics equal a single-process run's on the same model."""
    fit = run_cli("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path, "orig"),
                  "--trainer.strategy", "ddp", "--trainer.devices", "2")
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "orig" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    metrics = {}
    for devices, strategy in ((1, "auto"), (2, "ddp")):
        out = tmp_path / f"val{devices}"
        r = run_cli("validate", "-c", "configs/toy/original.yaml", "--ckpt_path", str(ckpt),
                    "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
                    "--trainer.strategy", strategy, "--trainer.enable_progress_bar", "false",
                    "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                    "--trainer.logger.save_dir", str(out), "--trainer.logger.name", "m",
                    "--trainer.logger.version", "0")
        assert r.returncode == 0, r.stderr[-3000:]
        (csv_file,) = out.rglob("metrics.csv")
        metrics[devices] = read_csv_metrics(csv_file)
    keys = [k for k in metrics[1] if k.startswith("val/") and k.endswith(("_acc", "_loss", "simple_mia"))]
    assert {"val/retain_acc", "val/forget_acc", "val/val_acc", "val/test_acc", "val/simple_mia"} <= set(keys)
    for k in keys:
        assert metrics[2][k] == pytest.approx(metrics[1][k], abs=1e-6), k


def test_bf16_mixed_from_the_command_line_computes_in_bf16(tmp_path: Path) -> None:
    """``--trainer.precision bf16-mixed`` reaches the trainer, the layers compute in bf16 in the
    training steps, and the weights stay float32."""
    import torch

    from unlearning.cli import main

    cli = main(["-c", "configs/toy/original.yaml", *quick_args(tmp_path), "--trainer.precision", "bf16-mixed"],
               run=False, save_config=False)
    assert cli.trainer.precision == "bf16-mixed"
    seen: list[torch.dtype] = []
    first = next(m for m in cli.model.net.modules() if isinstance(m, torch.nn.Linear))
    first.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if cli.trainer.training else None)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert seen and set(seen) == {torch.bfloat16}, seen
    assert all(p.dtype == torch.float32 for p in cli.model.parameters())
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_one_line_keeps_leading_dashes_of_a_plain_message() -> None:
    from unlearning.cli import _one_line

    assert _one_line(ValueError("--seeds must be START:STOP, got '4:2'")) == "--seeds must be START:STOP, got '4:2'"
    nested = ValueError("Parser key 'data':\n  Does not validate\n  - Problem with given class_path\n  - bad split, got 2")
    assert _one_line(nested) == "bad split, got 2"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--model.init_args.lrr", "0.1"], "--model (unlearning.modules.Classifier): Option 'lrr' is not accepted"),
        (["--model.init_args.scheduler", "cos"], "--model.init_args.scheduler (unlearning.modules.Classifier): Expected a typing.Literal['cosine', 'none', 'piecewise']. Got value: cos"),
        (["--trainer.max_epochs", "abc"], "--trainer.max_epochs: expected int or null, got 'abc'"),
        (["--trainer.max_epochz", "3"], "unrecognized arguments: --trainer.max_epochz 3"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(tmp_path: Path, override: list[str], expected: str) -> None:
    r = run_cli_here("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path), *override)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"unlearning: error: {expected} (see --help)", r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) <= 2 and "usage:" not in r.stderr  # no usage dump
    assert not any(tmp_path.iterdir())
