"""TensorBoard histograms and figures of per-example output distributions."""

from __future__ import annotations

from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["DistributionLogger", "distribution_figure"]

STATS = (
    ("loss", "cross-entropy loss"),
    ("confidence", "true-class confidence"),
    ("lsc", "logit-scaled confidence"),
    ("entropy", "entropy (nats)"),
)


def distribution_figure(outputs: dict[str, dict[str, np.ndarray]], title: str = "", reference_name: str = "oracle") -> Any:
    """One panel per statistic: forget vs test histograms (the starting kit's loss plot, and more).

    Args:
        outputs: ``{stream: {stat: values}}`` as kept by
            :class:`~unlearning.modules.base.EvaluatedModule` (``ref_<stat>`` for the reference).
        title: figure title.
        reference_name: label of the reference model's curves.

    Returns:
        A matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(STATS), figsize=(4.2 * len(STATS), 3.4))
    for ax, (key, label) in zip(axes, STATS):
        series = [(s, outputs[s][key]) for s in ("forget", "test") if s in outputs and key in outputs[s]]
        if not series:
            continue
        values = np.concatenate([v for _, v in series])
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        lo, hi = np.percentile(values, [0.5, 99.5]) if key != "confidence" else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
        for (stream, v), color in zip(series, ("tab:red", "tab:blue")):
            ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, density=True, alpha=0.5, color=color, label=stream)
            ref = outputs[stream].get(f"ref_{key}")
            if ref is not None:
                ax.hist(np.clip(ref, bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                        color=color, linestyle="--", linewidth=1.5, label=f"{stream} ({reference_name})")
        ax.set_xlabel(label)
        ax.set_yscale("log" if key == "loss" else "linear")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class DistributionLogger(Callback):
    """After every evaluation, write forget-vs-test histograms of loss, true-class confidence,
    logit-scaled confidence and entropy to TensorBoard, and one figure with all four.

    Does nothing with loggers that cannot draw (e.g. CSV) and on ranks other than 0.
    """

    def _write(self, trainer: Trainer, pl_module: LightningModule) -> None:
        last = getattr(pl_module, "last_eval", None)
        if not last or trainer.sanity_checking or not trainer.is_global_zero:
            return
        outputs, prefix = last["outputs"], last["prefix"]
        step = trainer.global_step
        for logger in trainer.loggers:
            writer = getattr(logger, "experiment", None)
            if not (hasattr(writer, "add_histogram") and hasattr(writer, "add_figure")):
                continue
            for stream in ("forget", "test"):
                for key, _ in STATS:
                    values = outputs.get(stream, {}).get(key)
                    if values is not None and np.isfinite(values).all() and values.size:
                        writer.add_histogram(f"{prefix}_dist/{key}_{stream}", values, step)
            fig = distribution_figure(outputs, f"{type(pl_module).__name__}, step {step}",
                                      getattr(pl_module, "reference_name", "oracle"))
            writer.add_figure(f"{prefix}_dist/forget_vs_test", fig, step)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the validation distributions."""
        self._write(trainer, pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the test distributions."""
        self._write(trainer, pl_module)
