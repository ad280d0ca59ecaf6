"""Pipeline helpers: evaluation with per-example outputs, pooled accuracy, the scripts' entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearning.pipeline import evaluate_with_outputs, evaluation_setup, pooled_accuracy
from unlearning.scripts import require_positive, run_script, script_parser


def test_evaluate_with_outputs_matches_the_metrics(tiny_cifar: Path, tiny_checkpoints: dict[str, Path]) -> None:
    overrides = ["--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null",
                 "--trainer.accelerator", "cpu"]
    setup = evaluation_setup("configs/cpu/original.yaml", overrides)
    metrics, outputs = evaluate_with_outputs(tiny_checkpoints["original"], "configs/cpu/original.yaml",
                                             oracle=tiny_checkpoints["oracle"], setup=setup)
    dm = setup[1]
    split = dm.split
    assert len(outputs["forget"]["loss"]) == len(split.forget) and len(outputs["test"]["loss"]) == len(split.test)
    # a second code path: the network applied by hand to the split's images, cross-entropy by torch
    import torch
    import torch.nn.functional as F

    from unlearning.modules import load_net

    net, _ = load_net(tiny_checkpoints["original"])
    for stream, x_all, y_all in (("forget", dm.arrays.train_x, dm.arrays.train_y),
                                 ("test", dm.arrays.heldout_x, dm.arrays.heldout_y)):
        idx = getattr(split, stream)
        with torch.no_grad():
            logits = net(dm.eval_transform(x_all[idx]))
        losses = F.cross_entropy(logits, y_all[idx], reduction="none").numpy()
        assert np.allclose(np.sort(outputs[stream]["loss"]), np.sort(losses), rtol=1e-4, atol=1e-5)
        assert np.isclose(metrics[f"{stream}_loss"], losses.mean(), rtol=1e-4)
        assert np.isclose(metrics[f"{stream}_acc"], float((logits.argmax(1) == y_all[idx]).float().mean()))
        assert np.allclose(np.sort(outputs[stream]["confidence"]), np.sort(np.exp(-losses)), rtol=1e-4)
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


def test_fit_stage_reuses_a_finished_fit_and_resumes_an_interrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import torch

    from tests.conftest import REPO
    from unlearning.cli import main
    from unlearning.pipeline import fit_stage, stage_finished

    monkeypatch.chdir(REPO)
    config = "configs/toy/original.yaml"
    where = ["--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.logger.init_args.name", "orig",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    ckpt = tmp_path / "orig" / "checkpoints" / "last.ckpt"
    main(["fit", "-c", config, *where, "--trainer.max_epochs", "2"])
    assert stage_finished(ckpt)  # unlearning fit marks the checkpoint of a fit that ran to its end
    # a fit killed after 2 of its 4 epochs leaves that last.ckpt without the mark
    ckpt.with_name("last.ckpt.finished").unlink()
    assert ckpt.is_file() and not stage_finished(ckpt)
    steps_half = torch.load(ckpt, weights_only=False)["global_step"]
    assert fit_stage(config, [*where, "--trainer.max_epochs", "4"]) == ckpt
    assert "resuming" in capsys.readouterr().out
    resumed = torch.load(ckpt, weights_only=False)
    assert resumed["epoch"] == 3 and resumed["global_step"] == 2 * steps_half  # it went on, it did not restart
    assert stage_finished(ckpt)
    mtime = ckpt.stat().st_mtime_ns
    assert fit_stage(config, [*where, "--trainer.max_epochs", "4"]) == ckpt
    assert "reusing" in capsys.readouterr().out and ckpt.stat().st_mtime_ns == mtime
    # a checkpoint replaced after the fit finished is not the one the marker vouches for
    ckpt.write_bytes(ckpt.read_bytes() + b"x")
    assert not stage_finished(ckpt)
