"""FigureWriter writes every figure as a PNG and to TensorBoard; histogram panels share axes; the
committed figures can be read: a title, axes that say which way is better, labels that do not overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# ---- figures a reader can read: titles, axis labels that say which way is better, no overlap ----

ROOT = Path(__file__).resolve().parents[1]


def _rows(points: list[tuple[str, float, float]], over: float = 0.2) -> list[dict[str, Any]]:
    return [{"method": name, "cost_time_fraction_mean": cost, "cost_time_fraction_std": 0.002,
             "relative_forgetting": f, "relative_forgetting_se": 0.015, "over_cost_limit": cost > over}
            for name, cost, f in points]


def _label_boxes(fig: Any) -> tuple[list[Any], list[Any]]:
    """The texts drawn inside the (first) axes and their display boxes, line of an annotation excluded."""
    from unlearning.callbacks.figures import text_boxes

    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    return texts, text_boxes(texts, renderer)


def _assert_readable_labels(fig: Any, names: list[str]) -> None:
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    texts, boxes = _label_boxes(fig)
    assert sorted(t.get_text() for t in texts) == sorted(names)
    clashes = [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i)
               if boxes[i].overlaps(boxes[j])]
    assert not clashes, f"labels overlap: {clashes}"
    frame, legend = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
    for t, b in zip(texts, boxes):
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1, \
            f"{t.get_text()!r} leaves the axes"
        assert not b.overlaps(legend), f"{t.get_text()!r} covers the legend"


def _assert_says_what_is_better(ax: Any, x: str | None, y: str | None) -> None:
    assert ax.get_title() or ax.figure.get_suptitle(), "no title"
    assert ax.get_xlabel() and ax.get_ylabel(), "an axis has no label"
    for label, direction in ((ax.get_xlabel(), x), (ax.get_ylabel(), y)):
        if direction:
            assert f"{direction} is better" in label, f"{label!r} does not say {direction} is better"


def test_pareto_front_is_the_non_dominated_points() -> None:
    from unlearning.scoring.leaderboard import pareto_front

    cost = [0.3, 0.1, 0.2, 0.2, 0.05, 0.4, 0.1]
    quality = [0.9, 0.5, 0.7, 0.6, 0.2, 0.9, 0.5]
    # 0.05/0.2, 0.1/0.5 (the first of two equal points), 0.2/0.7, 0.3/0.9; 0.4/0.9 is matched at a lower cost
    assert pareto_front(cost, quality) == [4, 1, 2, 0]
    assert pareto_front([], []) == []


def test_committed_pareto_figure_is_readable() -> None:
    """The committed leaderboard's figure (benchmarks/results/score_cpu.json, 26 rows, many of them in
    one corner): a title, axes that say which way is better, the frontier drawn, no two labels
    overlapping, none leaving the axes or covering the legend."""
    import json

    from unlearning.callbacks.figures import _pyplot
    from unlearning.scoring.leaderboard import pareto_figure, pareto_front

    board = json.loads((ROOT / "benchmarks/results/score_cpu.json").read_text())
    rows = board["rows"]
    fig = pareto_figure(rows, board["cost_limit"])
    ax = fig.axes[0]
    _assert_says_what_is_better(ax, "lower", "higher")
    _assert_readable_labels(fig, [r["method"] for r in rows])
    front = pareto_front([r["cost_time_fraction_mean"] for r in rows], [r["relative_forgetting"] for r in rows])
    assert [rows[i]["method"] for i in front] == ["hypernet (one pass)", "cf_k", "finetune"]
    step = next(line for line in ax.get_lines() if line.get_drawstyle() == "steps-post")
    np.testing.assert_allclose(step.get_ydata()[:-1], [rows[i]["relative_forgetting"] for i in front])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("Pareto frontier" in t for t in legend) and any("cost over the limit" in t for t in legend)
    _pyplot().close(fig)


def test_pareto_labels_do_not_overlap_in_a_tight_cluster() -> None:
    """Twelve methods with long names within 1% of each other's cost and F / ceiling, plus outliers
    that stretch the axes: every label still finds its own place."""
    from unlearning.callbacks.figures import _pyplot
    from unlearning.scoring.leaderboard import pareto_figure

    rng = np.random.default_rng(0)
    points = [(f"method_with_a_long_name_{k}", 0.15 + 0.002 * rng.standard_normal(),
               0.6 + 0.01 * rng.standard_normal()) for k in range(12)]
    points += [("cheap", 0.01, 0.05), ("dear", 0.3, 0.95)]
    fig = pareto_figure(_rows(points), 0.2)
    _assert_readable_labels(fig, [p[0] for p in points])
    _pyplot().close(fig)


def test_pareto_figure_leaves_out_rows_without_a_finite_score() -> None:
    """At N = 2 the ceiling is 0 and F / ceiling is NaN: such rows are left out (a leaderboard run
    once failed on them with "Axis limits cannot be NaN or Inf"); with none left, a note is drawn."""
    from unlearning.callbacks.figures import _pyplot
    from unlearning.scoring.leaderboard import pareto_figure

    fig = pareto_figure(_rows([("a", 0.1, 0.5), ("b", 0.12, float("nan"))]), 0.2)
    texts, _ = _label_boxes(fig)
    assert [t.get_text() for t in texts] == ["a"]
    _pyplot().close(fig)
    fig = pareto_figure(_rows([("b", 0.12, float("nan"))]), 0.2)
    assert "no method has a finite F / ceiling" in fig.axes[0].texts[0].get_text()
    _pyplot().close(fig)


def test_stream_and_epsilon_figures_say_what_is_better() -> None:
    from unlearning.callbacks import stream_figure
    from unlearning.callbacks.figures import _pyplot
    from unlearning.scoring.leaderboard import epsilon_distributions_figure

    history = [{"request": float(k), "forgotten": 10.0 * k, "retain_acc": 0.8, "test_acc": 0.6,
                "forgotten_acc": 0.9 - 0.01 * k, "simple_mia": 0.6 - 0.005 * k, "oracle_forgotten_acc": 0.6,
                "oracle_simple_mia": 0.5} for k in range(21)]  # 21 requests: matplotlib's own ticks are 2.5 apart
    fig = stream_figure(history, "stream")
    for ax in fig.axes:
        assert ax.get_title() and "better" in ax.get_title()
        assert ax.get_xlabel() == "forget requests handled" and ax.get_ylabel()
        assert all(float(t).is_integer() for t in ax.get_xticks())  # requests are whole numbers
    _pyplot().close(fig)
    rng = np.random.default_rng(0)
    results = {name: {"n_models": 8, "arrays": {"epsilon": rng.exponential(1.0, 50),
                                                "epsilon_ceiling": rng.exponential(0.5, 50)}} for name in "ab"}
    fig = epsilon_distributions_figure(results)
    _assert_says_what_is_better(fig.axes[0], "lower", "higher")
    _pyplot().close(fig)


def test_redraw_draws_the_committed_figures_from_their_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--redraw`` of the two benchmark scripts trains nothing: each figure comes from its JSON."""
    import json
    import shutil

    from tests.test_benchmarks import _script

    for name in ("score_cpu.json", "streaming_curves.json"):
        shutil.copy(ROOT / "benchmarks/results" / name, tmp_path / name)
    monkeypatch.chdir(ROOT)  # the streaming config names the module in the title
    board = _script("score_cpu").main(["--redraw", "--out", str(tmp_path / "score_cpu")])
    committed = json.loads((ROOT / "benchmarks/results/score_cpu.json").read_text())
    assert [r["method"] for r in board["rows"]] == [r["method"] for r in committed["rows"]]
    _script("unlearn_cpu").main(["--redraw", "--out", str(tmp_path / "unlearn_cpu")])
    for png in ("score_cpu_pareto.png", "streaming_curves.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["score_cpu.json", "score_cpu_pareto.png", "streaming_curves.json", "streaming_curves.png"])
