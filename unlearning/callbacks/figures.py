"""Writing figures for people and for TensorBoard at once, and the starting kit's loss histograms.

Scripts that compare several runs (the examples, benchmarks) draw figures outside any training
run; :class:`FigureWriter` saves each as a PNG file and adds it, with the summary numbers, to a
TensorBoard event file beside them, so that one ``tensorboard --logdir`` shows the runs and the
comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["FigureWriter", "histogram_panels"]


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
