"""FigureWriter writes every figure as a PNG and to TensorBoard; histogram panels share axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearning.callbacks import FigureWriter, histogram_panels


def test_figure_writer_writes_png_and_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rng = np.random.default_rng(0)
    panels = {"small": {"train": rng.exponential(0.1, 200), "test": rng.exponential(1.0, 200)},
              "large": {"train": rng.exponential(0.01, 200), "test": rng.exponential(2.0, 200)}}
    with FigureWriter(tmp_path / "out") as writer:
        fig = histogram_panels(panels, title="losses")
        axes = fig.axes
        assert len(axes) == 2 and axes[0].get_xlim() == axes[1].get_xlim() and axes[0].get_ylim() == axes[1].get_ylim()
        png = writer.add_figure("losses", fig)
        writer.add_scalars({"mia": 0.7, "gap": 0.2}, step=3, prefix="summary")
    assert png == tmp_path / "out" / "losses.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((tmp_path / "out" / "summary").glob("events.out.tfevents.*"))
    ea = EventAccumulator(str(events[0]))
    ea.Reload()
    assert ea.Tags()["images"] == ["losses"]
    assert sorted(ea.Tags()["scalars"]) == ["summary/gap", "summary/mia"]
    assert [(e.step, round(e.value, 3)) for e in ea.Scalars("summary/mia")] == [(3, 0.7)]


def test_figure_writer_without_tensorboard_writes_only_pngs(tmp_path: Path) -> None:
    with FigureWriter(tmp_path, tensorboard=False) as writer:
        writer.add_figure("h", histogram_panels({"m": {"a": np.arange(10.0)}}))
        writer.add_scalars({"x": 1.0})
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dpi must be >= 1, got 0"):
        FigureWriter(tmp_path, dpi=0)
    with pytest.raises(ValueError, match="at least one panel"):
        histogram_panels({})
    with pytest.raises(ValueError, match="no finite value"):
        histogram_panels({"m": {"a": np.array([np.nan])}})
