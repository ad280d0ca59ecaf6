"""The seed's experiments (examples/capacity.py, two_circles.py, starting_kit.py) run end to end
on tiny settings, write non-empty figures, and return sane numbers."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
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
    # --redraw trains nothing: the same numbers and figures from results.json and grids.npz
    for png in tmp_path.glob("*.png"):
        png.unlink()
    assert main(["--redraw", "--out", str(tmp_path)]) == json.loads(json.dumps(result))
    assert_pngs(tmp_path, ["boundaries", "influence", "unlearning"])


def test_two_circles_rejects_unknown_method() -> None:
    from examples.two_circles import main

    with pytest.raises(ValueError, match="unknown method 'scrub'"):
        main(["--methods", "finetune", "scrub"])


def _drawn_figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Keep every figure a FigureWriter writes, by name, open (it closes them otherwise)."""
    from unlearning.callbacks import FigureWriter

    figures: dict[str, Any] = {}
    monkeypatch.setattr(FigureWriter, "add_figure", lambda self, name, fig, step=0: figures.setdefault(name, fig))
    return figures


def _assert_labelled(ax: Any) -> None:
    assert ax.get_title() or ax.figure.get_suptitle(), "no title"
    assert ax.get_xlabel() and ax.get_ylabel(), f"an axis of {ax.get_title()!r} has no label"


def test_two_circles_figures_say_what_they_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--redraw from saved results (no training): every panel of the influence figure has a title,
    x1/x2 axes and a colour bar that says higher moves the boundary more, and its five rank labels,
    drawn beside a tight cluster of points, do not overlap; the other figures' outer axes are labelled."""
    from examples.two_circles import GRID_X, GRID_Y, main, save_results
    from unlearning.callbacks.figures import _pyplot, text_boxes

    rng = np.random.default_rng(0)
    n = 40
    x = np.concatenate([rng.normal([-5, 5], 1, (n // 2, 2)), rng.normal([5, 5], 1, (n // 2 - 5, 2)),
                        [-3, 5] + 0.15 * rng.standard_normal((5, 2))])  # the five most influential, in a cluster
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    outliers = np.arange(n) >= n - 5
    order = np.arange(n)[::-1]
    scores = {k: rng.random(n) for k in ("param_l2", "boundary_flip", "prob_change")}
    gx, _ = np.meshgrid(GRID_X, GRID_Y)
    grid = 1 / (1 + np.exp(-gx))
    names = ["original", "retrained", "finetune"]
    unlearning = {m: {"boundary_disagreement": 0.1, "forget_acc": 1.0, "test_acc": 1.0, "retain_acc": 1.0}
                  for m in names}
    capacity = {f"h{w}_d{d}": {"train_acc": 1.0, "test_acc": 1.0} for w in (4, 16) for d in (1, 2)}
    result = {"top": [], "influence": {k: v.tolist() for k, v in scores.items()}, "unlearning": unlearning,
              "capacity": capacity}
    args = argparse.Namespace(out=str(tmp_path), widths=[4, 16], depths=[1, 2], hidden=32, depth=2)
    save_results(args, result, x, y, outliers, order, order[:5], {k: grid for k in capacity}, {k: grid for k in names})
    figures = _drawn_figures(monkeypatch)
    assert main(["--redraw", "--out", str(tmp_path)]) == result
    assert sorted(figures) == ["boundaries", "influence", "unlearning"]

    panels = [ax for ax in figures["influence"].axes if ax.get_label() != "<colorbar>"]
    bars = [ax for ax in figures["influence"].axes if ax.get_label() == "<colorbar>"]
    assert len(panels) == 3 and len(bars) == 3
    renderer = figures["influence"].canvas.get_renderer()
    for ax in panels:
        _assert_labelled(ax)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
        texts = [t for t in ax.texts if t.get_text()]
        assert [t.get_text() for t in texts] == ["#1", "#2", "#3", "#4", "#5"]
        boxes = text_boxes(texts, renderer)
        clashes = [(texts[i].get_text(), texts[j].get_text()) for i in range(5) for j in range(i)
                   if boxes[i].overlaps(boxes[j])]
        assert not clashes, f"rank labels overlap: {clashes}"
    for bar in bars:
        assert "higher: the point moves the" in bar.get_ylabel()
    for name in ("boundaries", "unlearning"):
        axes = figures[name].axes
        assert all(ax.get_title() for ax in axes)
        assert all(ax.get_xlabel() == "x1" for ax in axes[-2:]) and axes[0].get_ylabel() == "x2"
    assert "lower is better" in figures["unlearning"].get_suptitle()
    for fig in figures.values():
        _pyplot().close(fig)


def test_capacity_figures_say_what_is_better(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--redraw from a saved results.json (no training): every panel has a title and axes that say
    which way is better, and the depth labels do not overlap."""
    from examples.capacity import main, save_results
    from unlearning.callbacks.figures import _pyplot, text_boxes

    rng = np.random.default_rng(0)
    keys = ("train_acc", "test_acc", "gen_gap", "mia", "lsc_gap", "forget_mia", "forget_predictive_mia",
            "finetune_predictive_mia", "oracle_forget_mia", "mia_gap_original", "mia_gap_finetune",
            "forget_acc_gap_original", "forget_acc_gap_finetune", "finetune_retain_acc", "finetune_test_acc",
            "finetune_cost")
    rows = {d: {"params": 3.5 * d, **{k: float(rng.random()) for k in keys}} for d in (8, 14, 20)}
    losses = {f"ResNet-{d}": {"train": rng.exponential(0.3, 50), "test": rng.exponential(2.0, 50)} for d in rows}
    save_results(tmp_path, rows, losses)
    figures = _drawn_figures(monkeypatch)
    assert main(["--redraw", "--out", str(tmp_path)]) == rows
    assert sorted(figures) == ["capacity", "loss_histograms", "unlearning"]
    hist = figures["loss_histograms"].axes
    assert hist[0].get_xlabel() == "per-example loss (cross-entropy)" and "share of examples" in hist[0].get_ylabel()
    assert all(ax.get_title() for ax in hist) and figures["loss_histograms"].get_suptitle()
    for name, better in (("capacity", ["closer to 0.5", "lower", "lower"]), ("unlearning", ["closer to 0"] * 2)):
        fig = figures[name]
        renderer = fig.canvas.get_renderer()
        assert len(fig.axes) == len(better)
        for ax, direction in zip(fig.axes, better):
            _assert_labelled(ax)
            assert f"{direction} is better" in ax.get_ylabel(), ax.get_ylabel()
            texts = [t for t in ax.texts if t.get_text()]
            assert sorted(t.get_text() for t in texts) == ["14", "20", "8"]
            boxes = text_boxes(texts, renderer)
            assert not any(boxes[i].overlaps(boxes[j]) for i in range(3) for j in range(i))
    for fig in figures.values():
        _pyplot().close(fig)


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
