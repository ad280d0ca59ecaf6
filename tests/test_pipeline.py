"""Pipeline helpers: evaluation with per-example outputs, pooled accuracy, the scripts' entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearning.pipeline import (
    evaluate_with_outputs,
    evaluation_setup,
    pooled_accuracy,
    require_positive,
    run_script,
    script_parser,
)


def test_evaluate_with_outputs_matches_the_metrics(tiny_cifar: Path, tiny_checkpoints: dict[str, Path]) -> None:
    overrides = ["--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
                 "--trainer.accelerator", "cpu"]
    setup = evaluation_setup("configs/cpu/original.yaml", overrides)
    metrics, outputs = evaluate_with_outputs(tiny_checkpoints["original"], "configs/cpu/original.yaml",
                                             oracle=tiny_checkpoints["oracle"], setup=setup)
    split = setup[1].split
    assert len(outputs["forget"]["loss"]) == len(split.forget) and len(outputs["test"]["loss"]) == len(split.test)
    for stream in ("retain", "forget", "val", "test"):
        assert np.isclose(np.mean(outputs[stream]["loss"]), metrics[f"{stream}_loss"], rtol=1e-4)
        assert np.allclose(outputs[stream]["confidence"], np.exp(-outputs[stream]["loss"]), rtol=1e-4)
    assert "ref_loss" in outputs["forget"] and "oracle_forget_acc" in metrics


def test_pooled_accuracy_weights_streams_by_size() -> None:
    metrics = {"retain_acc": 1.0, "forget_acc": 0.0}
    outputs = {"retain": {"loss": np.zeros(3)}, "forget": {"loss": np.zeros(1)}}
    assert pooled_accuracy(metrics, outputs) == 0.75
    assert pooled_accuracy(metrics, outputs, ["forget"]) == 0.0
    with pytest.raises(ValueError, match="stream 'test' was not evaluated"):
        pooled_accuracy(metrics, outputs, ["retain", "test"])


def test_run_script_prints_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    def bad() -> None:
        raise ValueError("--depths must be 6n+2, got 10")

    with pytest.raises(SystemExit) as exit_info:
        run_script(bad, "capacity")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "capacity: error: --depths must be 6n+2, got 10\n"


def test_script_parser_passes_unknown_arguments_on(capsys: pytest.CaptureFixture) -> None:
    parser = script_parser("""A script.\n\nMore text.""", "runs/x", cifar_root=True)
    parser.add_argument("--epochs", type=int, default=3)
    args, extra = parser.parse_known_args(["--root", "data", "--epochs", "0", "--trainer.max_epochs", "2"])
    assert (args.root, args.out, args.epochs) == ("data", "runs/x", 0)
    assert extra == ["--trainer.max_epochs", "2"]
    with pytest.raises(ValueError, match="^--epochs must be >= 1, got 0$"):
        require_positive(args, "epochs")
    args.epochs = None
    require_positive(args, "epochs")  # not given: nothing to check
    with pytest.raises(SystemExit):
        parser.parse_known_args(["--help"])
    help_text = capsys.readouterr().out
    assert "A script." in help_text and "passed to every `unlearning fit` stage" in help_text
    assert "--root" not in script_parser("Doc.", "o").format_help()
