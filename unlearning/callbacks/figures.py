"""Writing figures for people and for TensorBoard at once, the starting kit's loss histograms, and
point labels placed without overlap.

Scripts that compare several runs (the examples, benchmarks) draw figures outside any training
run; :class:`FigureWriter` saves each as a PNG file and adds it, with the summary numbers, to a
TensorBoard event file beside them, so that one ``tensorboard --logdir`` shows the runs and the
comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["FigureWriter", "histogram_panels", "place_labels", "text_boxes"]

#: distances (points) from its point tried for a label, nearest first; beyond the second ring a line joins them
LABEL_RADII = (4.0, 9.0, 15.0, 23.0, 33.0, 45.0, 60.0, 80.0, 105.0)
#: directions tried at each radius, in order of preference (right of the point first)
LABEL_DIRECTIONS = ((1, 0), (1, 1), (1, -1), (0, 1), (0, -1), (-1, 0), (-1, 1), (-1, -1))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


class FigureWriter:
    """Save figures as PNG files in a folder and add them (and scalars) to TensorBoard.

    Args:
        out_dir: folder of the PNG files (created if missing).
        tensorboard: also write the figures and scalars to a TensorBoard event file in
            ``out_dir / tensorboard_dir``.
        tensorboard_dir: sub-folder of the TensorBoard events.
        dpi: resolution of the PNG files.

    Raises:
        ValueError: if ``dpi`` is not positive.
    """

    def __init__(
        self, out_dir: str | Path, tensorboard: bool = True, tensorboard_dir: str = "summary", dpi: int = 100
    ) -> None:
        if dpi < 1:
            raise ValueError(f"dpi must be >= 1, got {dpi}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.dpi = dpi
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / tensorboard_dir))

    def add_figure(self, name: str, fig: Any, step: int = 0) -> Path:
        """Save ``fig`` as ``out_dir/<name>.png``, add it to TensorBoard under ``name``, close it.

        Returns:
            The path of the PNG file.
        """
        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=self.dpi, bbox_inches="tight")
        if self.writer is not None:
            self.writer.add_figure(name, fig, step, close=False)
        _pyplot().close(fig)
        return path

    def add_scalars(self, values: Mapping[str, float], step: int = 0, prefix: str = "") -> None:
        """Add each ``values[key]`` to TensorBoard as the scalar ``<prefix>/<key>`` at ``step``."""
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}" if prefix else key, float(value), step)

    def close(self) -> None:
        """Flush and close the TensorBoard file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> FigureWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def histogram_panels(
    panels: Mapping[str, Mapping[str, np.ndarray]],
    xlabel: str = "cross-entropy loss",
    log_y: bool = True,
    title: str = "",
    bins: int = 40,
) -> Any:
    """One panel per model, each overlaying histograms of a per-example statistic on several sets
    (the starting kit's plot: losses of members vs non-members), on shared bins and axes.

    Args:
        panels: ``{panel title: {series label: values}}``; the series of every panel share colours
            by position (first red, second blue, then green, orange, purple).
        xlabel: label of the x axes.
        log_y: log-scaled densities (the starting kit's choice for losses).
        title: figure title.
        bins: number of bins, spread over the 0.5th to 99.5th percentile of all values.

    Returns:
        A matplotlib figure.

    Raises:
        ValueError: if ``panels`` is empty or holds no finite value.
    """
    if not panels:
        raise ValueError("histogram_panels needs at least one panel")
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for p in panels.values() for v in p.values()])
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("histogram_panels got no finite value to draw")
    lo, hi = np.percentile(values, [0.5, 99.5])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    plt = _pyplot()
    colors = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.6, 3.2), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (name, series) in zip(axes[0], panels.items()):
        for i, (label, v) in enumerate(series.items()):
            v = np.asarray(v, dtype=np.float64).ravel()
            ax.hist(np.clip(v[np.isfinite(v)], edges[0], edges[-1]), bins=edges, density=True, alpha=0.5,
                    color=colors[i % len(colors)], label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        if log_y:
            ax.set_yscale("log")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _crosses(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]) -> bool:
    """Whether the segments ab and cd cross (touching at an end does not count)."""

    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0


def _hits(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each box ``(x0, y0, x1, y1)`` of ``boxes``, how many of ``others`` it overlaps (strictly)."""
    if len(others) == 0:
        return np.zeros(len(boxes), dtype=int)
    b, o = boxes[:, None, :], others[None, :, :]
    apart = (b[..., 0] >= o[..., 2]) | (o[..., 0] >= b[..., 2]) | (b[..., 1] >= o[..., 3]) | (o[..., 1] >= b[..., 3])
    return (~apart).sum(1)


def _cuts(a: tuple[float, float], b: tuple[float, float], boxes: np.ndarray) -> int:
    """How many of ``boxes`` the segment ab passes through (sampled at 32 points)."""
    if len(boxes) == 0:
        return 0
    t = np.linspace(0.0, 1.0, 32)[:, None]
    x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
    inside = (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])
    return int(inside.any(0).sum())


def _extents(boxes: Sequence[Any]) -> np.ndarray:
    return np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], dtype=float).reshape(-1, 4)


def _best_place(
    cands: np.ndarray,
    lined: np.ndarray,
    at: tuple[float, float],
    hard: np.ndarray,
    soft: np.ndarray,
    markers: np.ndarray,
    lines: Sequence[tuple[tuple[float, float], tuple[float, float]]],
    limit: int = 300,
) -> tuple[int, tuple[int, int]]:
    """The best of the candidate boxes of a label, in their order of preference.

    Args:
        cands: the candidate boxes, ``(x0, y0, x1, y1)`` rows, all inside the axes.
        lined: whether each candidate gets a line to its point.
        at: the point, in display coordinates.
        hard: boxes a label must not overlap (the labels placed so far).
        soft: boxes it should not overlap (markers, error bars, lines).
        markers: boxes its line should not cross (the other points' markers), besides ``hard``.
        lines: the lines drawn so far, which its line should not cross.
        limit: how many candidates clear of ``hard`` are weighed when none is clear of everything.

    Returns:
        The index of the chosen candidate and its ``(hard, soft)`` clashes: the first with none;
        else, of the first ``limit`` clear of ``hard``, the one with the fewest soft clashes; else
        the one with the fewest clashes of either kind.
    """
    hard_hits, soft_hits = _hits(cands, hard), _hits(cands, soft)
    best: tuple[int, tuple[int, int]] | None = None
    for k in np.flatnonzero(hard_hits == 0)[:limit]:
        n = int(soft_hits[k])
        if lined[k]:
            centre = ((cands[k, 0] + cands[k, 2]) / 2, (cands[k, 1] + cands[k, 3]) / 2)
            n += sum(_crosses(at, centre, *line) for line in lines) + _cuts(at, centre, np.concatenate([hard, markers]))
        if n == 0:
            return int(k), (0, 0)
        if best is None or n < best[1][1]:
            best = (int(k), (0, n))
    if best is not None:
        return best
    if len(cands) == 0:
        return -1, (1 << 30, 0)
    k = int(np.lexsort((soft_hits, hard_hits))[0])
    return k, (int(hard_hits[k]), int(soft_hits[k]))


def place_labels(
    ax: Any,
    points: Sequence[tuple[float, float]],
    labels: Sequence[str],
    obstacles: Sequence[Any] = (),
    fontsize: float = 8.0,
    pad: float = 1.5,
    marker: float = 4.0,
) -> list[Any]:
    """Label points of an axes so that no two labels overlap, and labels keep off the obstacles.

    Greedy and deterministic: in the given order, each label takes the first offset of
    :data:`LABEL_RADII` x :data:`LABEL_DIRECTIONS` (nearest first) where its box lies inside the axes
    and clear of the labels placed so far, the obstacles and the other points' markers; failing
    that, the free place of a grid over the axes nearest its point. A label set further off than the
    second ring gets a thin line to its point, which should not cross another such line, a label or
    another point's marker. Where no place is clear of everything (points drawn on top of each
    other), labels still do not overlap each other: the place clear of the other labels with the
    fewest other clashes is taken. Draw everything else first and fix the layout (limits,
    ``tight_layout``): boxes are measured in display coordinates, and offsets are in points, so the
    placement holds at any dpi.

    Args:
        ax: the axes, with its final limits and position.
        points: the points to label, in data coordinates, in order of placement (the most
            important first: it gets the nearest place).
        labels: one text per point.
        obstacles: display-coordinate boxes (``matplotlib.transforms.Bbox``) labels should avoid,
            besides the markers: error bars, lines, a legend.
        fontsize: font size of the labels.
        pad: margin (points) kept around each label.
        marker: half the size (points) of the square around each point that is its marker.

    Returns:
        The annotations, in the order of ``points``.

    Raises:
        ValueError: if ``points`` and ``labels`` differ in length.
    """
    if len(points) != len(labels):
        raise ValueError(f"place_labels got {len(points)} points and {len(labels)} labels")
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer).padded(-pad * px)
    centres = [tuple(ax.transData.transform(p)) for p in points]
    markers = np.array([[cx - marker * px, cy - marker * px, cx + marker * px, cy + marker * px]
                        for cx, cy in centres]).reshape(-1, 4)
    fixed = _extents(obstacles)
    boxes = np.zeros((0, 4))  # the labels placed so far (padded)
    lines: list[tuple[tuple[float, float], tuple[float, float]]] = []  # and their lines
    placed = []
    for i, ((x, y), label) in enumerate(zip(points, labels)):
        probe = ax.text(0, 0, label, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h, at = extent.width + 2 * pad * px, extent.height + 2 * pad * px, centres[i]
        others = np.delete(markers, i, axis=0)
        # candidates: lower-left corner of the padded box; offset of the text's anchor (points), ha, va, lined
        ring = []
        for radius in LABEL_RADII:
            r = radius * px
            for cx, cy in LABEL_DIRECTIONS:
                sx, sy = at[0] + cx * r * (0.75 if cx and cy else 1.0), at[1] + cy * r * (0.75 if cx and cy else 1.0)
                ring.append((sx - (pad * px if cx > 0 else w - pad * px if cx < 0 else w / 2),
                             sy - (pad * px if cy > 0 else h - pad * px if cy < 0 else h / 2),
                             (sx - at[0]) / px, (sy - at[1]) / px,
                             "left" if cx > 0 else "right" if cx < 0 else "center",
                             "bottom" if cy > 0 else "top" if cy < 0 else "center", radius > LABEL_RADII[1]))
        chosen, cands = None, ring
        while True:
            corners = np.array([c[:2] for c in cands], dtype=float).reshape(-1, 2)
            cand_boxes = np.column_stack([corners, corners + [w, h]])
            inside = np.flatnonzero((cand_boxes[:, 0] >= frame.x0) & (cand_boxes[:, 2] <= frame.x1)
                                    & (cand_boxes[:, 1] >= frame.y0) & (cand_boxes[:, 3] <= frame.y1))
            k, clashes = _best_place(cand_boxes[inside], np.array([cands[j][6] for j in inside], dtype=bool), at,
                                     boxes, np.concatenate([fixed, others]), others, lines)
            chosen = cands[inside[k]] if k >= 0 else None
            if clashes == (0, 0) or len(cands) > len(ring):
                break
            # no ring place is clear of everything: add a grid over the axes, nearest places first
            gx, gy = np.meshgrid(np.arange(frame.x0, frame.x1 - w, 3 * px), np.arange(frame.y0, frame.y1 - h, 3 * px))
            gx, gy = gx.ravel(), gy.ravel()
            near = np.argsort((gx + w / 2 - at[0]) ** 2 + (gy + h / 2 - at[1]) ** 2, kind="stable")
            cands = ring + [(gx[k], gy[k], (gx[k] + w / 2 - at[0]) / px, (gy[k] + h / 2 - at[1]) / px, "center",
                             "center", True) for k in near]
        _, _, dx, dy, ha, va, lined = chosen or (0, 0, LABEL_RADII[0], 0.0, "left", "center", False)
        arrow = dict(arrowstyle="-", color="0.55", lw=0.6, shrinkA=0, shrinkB=3) if lined else None
        ann = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                          fontsize=fontsize, arrowprops=arrow)
        box = text_boxes([ann], renderer)[0].padded(pad * px)
        boxes = np.vstack([boxes, _extents([box])])
        if lined:
            lines.append((at, ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)))
        placed.append(ann)
    return placed


def text_boxes(texts: Sequence[Any], renderer: Any) -> list[Any]:
    """The display-coordinate boxes of texts, without the line of an annotation.

    Args:
        texts: ``matplotlib.text.Text`` objects (annotations included).
        renderer: the figure's renderer (``fig.canvas.get_renderer()``).

    Returns:
        One ``matplotlib.transforms.Bbox`` per text.
    """
    from matplotlib.text import Annotation, Text

    for t in texts:
        if isinstance(t, Annotation):
            t.update_positions(renderer)  # its transform depends on the axes' current position
    return [Text.get_window_extent(t, renderer) for t in texts]
