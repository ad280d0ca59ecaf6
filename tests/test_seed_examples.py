"""The seed's experiments (examples/capacity.py, two_circles.py, starting_kit.py) run end to end
on tiny settings, write non-empty figures, and return sane numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

#: trainer settings for a few-batch run of every stage
FEW_BATCHES = [
    "--trainer.limit_train_batches", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.accelerator", "cpu",
    "--model.init_args.log_distributions", "false",
    "--trainer.limit_val_batches", "0",
    "--checkpoint.save_top_k", "0",
]


def assert_pngs(folder: Path, names: list[str]) -> None:
    """Each figure exists, is a PNG and is not trivially small."""
    for name in names:
        png = folder / f"{name}.png"
        assert png.is_file(), f"{png} was not written"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, f"{png} is not a drawn PNG"
    assert list((folder / "summary").glob("events.out.tfevents.*")), "no TensorBoard summary"


@pytest.mark.slow  # about 20 s
def test_capacity_example(tiny_cifar: Path, tmp_path: Path) -> None:
    from examples.capacity import main

    rows = main(["--root", str(tiny_cifar), "--depths", "8", "14", "--width", "4", "--train-subset", "100",
                 "--heldout-subset", "60", "--epochs", "1", "--unlearn-epochs", "1", "--out", str(tmp_path),
                 *FEW_BATCHES])
    assert sorted(rows) == [8, 14]
    from unlearning.nets import CifarResNet

    for depth, row in rows.items():  # the flags reached the stages
        params = sum(p.numel() for p in CifarResNet(depth=depth, width=4).parameters())
        assert row["params"] * 1e3 == pytest.approx(params)
    for row in rows.values():
        for key in ("train_acc", "test_acc", "mia", "forget_mia", "oracle_forget_mia", "finetune_test_acc"):
            assert 0.0 <= row[key] <= 1.0, (key, row[key])
        assert math.isclose(row["gen_gap"], row["train_acc"] - row["test_acc"], abs_tol=1e-6)
        assert math.isclose(row["mia_gap_original"], row["forget_mia"] - row["oracle_forget_mia"], abs_tol=1e-6)
        assert math.isfinite(row["lsc_gap"]) and math.isfinite(row["mia_gap_finetune"])
    assert_pngs(tmp_path, ["loss_histograms", "capacity", "unlearning"])
    for stage in ("original", "retrain", "finetune"):
        assert (tmp_path / "depth14" / stage / "checkpoints" / "last.ckpt").is_file()


def test_capacity_rejects_bad_depths() -> None:
    from examples.capacity import main

    with pytest.raises(ValueError, match="--depths must be 6n\\+2 .* got 10"):
        main(["--depths", "8", "10"])


@pytest.mark.slow  # about 40 s
def test_two_circles_example(tmp_path: Path) -> None:
    from examples.two_circles import main

    n = 8
    result = main(["--num-train", str(n), "--num-outliers", "2", "--widths", "4", "--depths", "1", "2",
                   "--epochs", "30", "--unlearn-epochs", "10", "--forget-top", "2",
                   "--methods", "finetune", "neggrad_plus", "discriminator",
                   "--out", str(tmp_path)])
    scores = result["influence"]
    assert all(len(v) == n for v in scores.values())
    assert min(scores["param_l2"]) > 0, "leaving a point out changed nothing: was it left out?"
    assert all(0.0 <= v <= 1.0 for v in scores["boundary_flip"] + scores["prob_change"])
    top = result["top"]
    assert len(top) == 5 and len({t["index"] for t in top}) == 5
    flips = [t["boundary_flip"] for t in top]
    assert flips == sorted(flips, reverse=True) and flips[0] == max(scores["boundary_flip"])
    for t in top:
        assert t["param_l2"] == scores["param_l2"][t["index"]]
    # the two outliers (the last points) sit near the other class: removing one moves the model most
    assert top[0]["outlier"]
    assert set(sorted(range(n), key=scores["param_l2"].__getitem__)[-2:]) == {n - 2, n - 1}
    assert set(result["unlearning"]) == {"original", "retrained", "finetune", "neggrad_plus", "discriminator"}
    assert result["unlearning"]["retrained"]["boundary_disagreement"] == 0.0
    # Unlearning moves the boundary towards the retrained one (it does not just run).
    moved = [result["unlearning"][m]["boundary_disagreement"] for m in ("finetune", "neggrad_plus")]
    assert min(moved) < result["unlearning"]["original"]["boundary_disagreement"], result["unlearning"]
    assert set(result["capacity"]) == {"h4_d1", "h4_d2"}
    assert_pngs(tmp_path, ["boundaries", "influence", "unlearning"])


def test_two_circles_rejects_unknown_method() -> None:
    from examples.two_circles import main

    with pytest.raises(ValueError, match="unknown method 'scrub'"):
        main(["--methods", "finetune", "scrub"])


def test_starting_kit_example(tiny_cifar: Path, tmp_path: Path) -> None:
    from examples.starting_kit import main

    out = tmp_path / "out"
    rows = main(["--root", str(tiny_cifar), "--models-dir", str(tmp_path / "models"), "--out", str(out), "--grid", "8",
                 "--data.init_args.train_subset", "null", "--trainer.max_epochs", "1", *FEW_BATCHES])
    assert list(rows) == ["original", "fine-tuned", "retrained"]
    for row in rows.values():
        for key in ("train_acc", "retain_acc", "forget_acc", "test_acc", "simple_mia", "mia_efficacy"):
            assert 0.0 <= row[key] <= 1.0, (key, row[key])
    # the cost fraction is the ratio of the training times recorded in the two checkpoints
    def train_time(ckpt: Path) -> float:
        return torch.load(ckpt, weights_only=True)["unlearning"]["cost"]["train_time_s"]

    finetune_s = train_time(out / "finetune" / "checkpoints" / "last.ckpt")
    oracle_s = train_time(tmp_path / "models" / "retrain" / "checkpoints" / "last.ckpt")
    assert rows["fine-tuned"]["cost_time_fraction"] == pytest.approx(finetune_s / oracle_s)
    for stage in ("original", "retrain"):
        assert (tmp_path / "models" / stage / "checkpoints" / "last.ckpt").is_file()
    assert (out / "finetune" / "checkpoints" / "last.ckpt").is_file()
    assert_pngs(out, ["images", "loss_histograms"])
