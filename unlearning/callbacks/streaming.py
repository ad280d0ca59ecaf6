"""Evaluation over a stream of forget requests: curves against the request number."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from unlearning.metrics import per_example_stats, simple_mia

__all__ = ["StreamEvaluator", "stream_figure"]

#: the curves, in the order of the figure's legend
CURVES = ("forgotten_acc", "retain_acc", "test_acc", "simple_mia")


def stream_figure(history: list[dict[str, float]], title: str = "") -> Any:
    """Accuracies (forgotten so far, retain sample, test) and the simple MIA (forgotten so far vs
    test) against the request number; the oracle's values dashed where known.

    What is better differs by curve, and each panel's title says so: accuracy on what was forgotten
    and the MIA should follow the oracle's (a model that never saw those examples), retain and test
    accuracy should stay high.

    Args:
        history: one row per evaluation (``request``, ``forgotten_acc``, ``retain_acc``,
            ``test_acc``, ``simple_mia`` and, where known, the same with ``oracle_``), as written to
            ``stream_curves.json``.
        title: the figure's title (none if empty).

    Returns:
        A matplotlib figure.
    """
    from matplotlib.ticker import MaxNLocator

    from unlearning.callbacks.figures import _pyplot

    plt = _pyplot()
    fig, (ax_acc, ax_mia) = plt.subplots(1, 2, figsize=(11, 4.4))
    req = [h["request"] for h in history]
    for key, color in (("forgotten_acc", "tab:red"), ("retain_acc", "tab:green"), ("test_acc", "tab:blue")):
        ax_acc.plot(req, [h[key] for h in history], marker="o", ms=3, color=color, label=key.replace("_acc", ""))
        if any(f"oracle_{key}" in h for h in history):
            ax_acc.plot(req, [h.get(f"oracle_{key}", math.nan) for h in history], ls="--", color=color, lw=1,
                        label=f"{key.replace('_acc', '')} (oracle)")
    ax_acc.set_title("Accuracy: forgotten should follow its oracle (dashed);\nretain and test: higher is better",
                     fontsize=10)
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: off the curves
    ax_mia.plot(req, [h["simple_mia"] for h in history], marker="o", ms=3, color="tab:purple", label="model")
    if any("oracle_simple_mia" in h for h in history):
        ax_mia.plot(req, [h.get("oracle_simple_mia", math.nan) for h in history], ls="--", color="tab:purple",
                    lw=1, label="oracle")
    ax_mia.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance (0.5)")
    ax_mia.set_title("Simple MIA, forgotten so far vs test:\ncloser to the oracle (dashed) is better", fontsize=10)
    ax_mia.set_ylabel("MIA accuracy (0.5 = chance)")
    ax_mia.legend(fontsize=7)
    for ax in (ax_acc, ax_mia):
        ax.set_xlabel("forget requests handled")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class StreamEvaluator(Callback):
    """After every ``every``-th forget request (training batch of the ``forget`` stream), measure
    the model on everything forgotten so far, a fixed retain sample and a fixed test sample:
    accuracies and the simple MIA (forgotten so far vs test), logged as ``stream/...`` against
    the request number; with an oracle attached (``reference``), its values on the same examples
    as ``stream/oracle_...``. At the end of training, a figure of the curves
    (``stream_curves.png``, also in TensorBoard) and the numbers (``stream_curves.json``) in the
    run's log folder.

    It is active only with a logger, and its time is left out of the module's training cost. It
    reads the data module directly: the method under evaluation never receives these examples.

    Args:
        retain_size: size of the retain sample (seeded, fixed over the stream); at 2,000 the
            standard error of an accuracy is about 0.01, so a drop of 0.03 is measurable.
        test_size: size of the test sample.
        every: evaluate after every ``every``-th request (and after the last).
        seed: seed of the samples.
    """

    def __init__(self, retain_size: int = 2000, test_size: int = 2000, every: int = 1, seed: int = 0) -> None:
        if min(retain_size, test_size, every) < 1:
            raise ValueError(f"retain_size, test_size and every must be >= 1, got {retain_size}, {test_size}, {every}")
        self.retain_size, self.test_size, self.every, self.seed = retain_size, test_size, every, seed
        self.active = False
        self.history: list[dict[str, float]] = []

    # ---- data -----------------------------------------------------------------------------
    def _sample(self, dm: Any, name: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, idx = dm.stream_source(name)
        if idx.numel() > size:
            g = torch.Generator().manual_seed(self.seed + 1 + ("retain", "test").index(name))
            idx = torch.sort(idx[torch.randperm(idx.numel(), generator=g)[:size]]).values
        idx = idx.to(x.device)
        return dm.eval_transform(x[idx]), y[idx]

    @staticmethod
    def _stats(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict[str, np.ndarray]:
        out: dict[str, list[torch.Tensor]] = {"loss": [], "correct": []}
        with torch.no_grad():
            for i in range(0, x.shape[0], 512):
                xb, yb = x[i : i + 512].to(device), y[i : i + 512].to(device)
                logits = net(xb).float()
                out["loss"].append(per_example_stats(logits, yb)["loss"].cpu())
                out["correct"].append((logits.argmax(1) == yb).float().cpu())
        return {k: torch.cat(v).numpy() for k, v in out.items()}

    # ---- hooks ----------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Draw the samples and measure the model before the first request (request 0)."""
        self.active = bool(trainer.loggers) and "forget" in getattr(pl_module, "train_streams", ())
        self.history, self._forgotten = [], []
        if not self.active:
            return
        dm = trainer.datamodule
        self._dm = dm
        self._retain = self._sample(dm, "retain", self.retain_size)
        self._test = self._sample(dm, "test", self.test_size)
        fx, fy, fidx = dm.stream_source("forget")
        self._forget_pos = {int(i): k for k, i in enumerate(fidx.tolist())}
        self._forget_x, self._forget_y = fx[fidx.to(fx.device)], fy[fidx.to(fy.device)]
        self._oracle: dict[str, dict[str, np.ndarray]] | None = None
        reference = getattr(pl_module, "reference", None)
        if reference is not None and trainer.is_global_zero:
            with pl_module.clock_paused():
                self._oracle = {
                    "forget": self._stats(reference, dm.eval_transform(self._forget_x), self._forget_y, pl_module.device),
                    "retain": self._stats(reference, *self._retain, pl_module.device),
                    "test": self._stats(reference, *self._test, pl_module.device),
                }
        self._evaluate(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Record the request's examples; evaluate after every ``every``-th request."""
        if not self.active:
            return
        loaders = trainer.train_dataloader
        loader = getattr(loaders, "iterables", loaders)["forget"]
        size = int(batch["forget"][1].shape[0])
        rows = loader.order[batch_idx * loader.batch_size : batch_idx * loader.batch_size + size]
        if trainer.world_size > 1:
            rows = pl_module.all_gather(rows).reshape(-1)
        self._forgotten.extend(self._forget_pos[int(r)] for r in rows.tolist())
        last = batch_idx + 1 >= trainer.num_training_batches
        if (batch_idx + 1) % self.every == 0 or last:
            self._evaluate(trainer, pl_module, batch_idx + 1)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, request: int) -> None:
        if not trainer.is_global_zero:
            return
        with pl_module.clock_paused():
            was_training = pl_module.net.training
            pl_module.net.eval()
            dev = pl_module.device
            test = self._stats(pl_module.net, *self._test, dev)
            retain = self._stats(pl_module.net, *self._retain, dev)
            row: dict[str, float] = {"request": float(request), "forgotten": float(len(set(self._forgotten))),
                                     "retain_acc": float(retain["correct"].mean()),
                                     "test_acc": float(test["correct"].mean())}
            pos = sorted(set(self._forgotten))
            if pos:
                sel = torch.tensor(pos, device=self._forget_x.device)
                forgot = self._stats(pl_module.net, self._dm.eval_transform(self._forget_x[sel]), self._forget_y[sel], dev)
                row["forgotten_acc"] = float(forgot["correct"].mean())
                row["simple_mia"] = _mia(forgot["loss"], test["loss"])
                if self._oracle is not None:
                    row["oracle_forgotten_acc"] = float(self._oracle["forget"]["correct"][pos].mean())
                    row["oracle_simple_mia"] = _mia(self._oracle["forget"]["loss"][pos], self._oracle["test"]["loss"])
            else:  # before the first request: the forget set as a whole
                forgot = self._stats(pl_module.net, self._dm.eval_transform(self._forget_x), self._forget_y, dev)
                row["forgotten_acc"] = float(forgot["correct"].mean())
                row["simple_mia"] = _mia(forgot["loss"], test["loss"])
            if self._oracle is not None:
                row["oracle_retain_acc"] = float(self._oracle["retain"]["correct"].mean())
                row["oracle_test_acc"] = float(self._oracle["test"]["correct"].mean())
                if "oracle_forgotten_acc" not in row:
                    row["oracle_forgotten_acc"] = float(self._oracle["forget"]["correct"].mean())
                    row["oracle_simple_mia"] = _mia(self._oracle["forget"]["loss"], self._oracle["test"]["loss"])
            if was_training:
                pl_module.net.train()
        self.history.append(row)
        for logger in trainer.loggers:
            logger.log_metrics({f"stream/{k}": v for k, v in row.items() if k != "request"}, step=request)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the curves (PNG, TensorBoard, JSON) into the run's log folder."""
        if not self.active or not trainer.is_global_zero or not self.history:
            return
        fig = stream_figure(self.history, f"{type(pl_module).__name__}: {len(self.history) - 1} evaluations")
        out = Path(trainer.log_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "stream_curves.png", dpi=100, bbox_inches="tight")
        for logger in trainer.loggers:
            writer = getattr(logger, "experiment", None)
            if hasattr(writer, "add_figure"):
                writer.add_figure("stream/curves", fig, int(self.history[-1]["request"]), close=False)
        from unlearning.callbacks.figures import _pyplot

        _pyplot().close(fig)
        (out / "stream_curves.json").write_text(json.dumps(self.history, indent=2) + "\n")


def _mia(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    try:
        return simple_mia(member_losses, nonmember_losses)
    except ValueError:  # fewer than 5 forgotten examples
        return math.nan
