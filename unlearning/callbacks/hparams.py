"""TensorBoard's HPARAMS view: each run's hyperparameters beside its final metrics.

Lightning writes the hyperparameters at the start of a run, with a placeholder ``hp_metric = -1``,
so the HPARAMS view of many runs shows one column of -1. :class:`FinalHparams` writes them at the
end of ``fit`` (with the last validation's metrics) and of ``test`` (with the test metrics),
pointing the view at the scalars the module already logged (``val/forget_acc``, ...), so no value
is logged twice. :func:`write_hparams` is the same for any ``SummaryWriter`` (a score run's).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

__all__ = ["FINAL_METRICS", "FinalHparams", "flat_hparams", "write_hparams"]

#: the evaluation scalars shown in the HPARAMS view, when the run logged them
FINAL_METRICS = (
    "test_acc", "retain_acc", "forget_acc", "val_acc", "simple_mia", "predictive_mia", "mia_efficacy",
    "forget_acc_gap", "simple_mia_gap", "cost_time_fraction", "cost_images_fraction",
)


def flat_hparams(values: Mapping[str, Any], prefix: str = "") -> dict[str, float | int | str | bool]:
    """``values`` flattened to dotted keys, each a number, string or bool (TensorBoard's types);
    ``None`` becomes ``"None"`` and a list its string; private keys (``_class_path``, which
    Lightning's CLI adds) are left out."""
    out: dict[str, float | int | str | bool] = {}
    for key, value in values.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def write_hparams(writer: Any, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Write the HPARAMS summaries of one run into ``writer`` (a ``SummaryWriter``).

    Args:
        writer: the run's ``torch.utils.tensorboard.SummaryWriter``.
        params: the hyperparameters (flattened by :func:`flat_hparams`).
        metrics: ``{scalar tag: final value}``; the tags must be scalars of the same run (the view
            reads their last value from there).
    """
    from torch.utils.tensorboard.summary import hparams

    exp, ssi, sei = hparams(flat_hparams(params), {k: float(v) for k, v in metrics.items()})
    file_writer = writer._get_file_writer()  # torch's SummaryWriter.add_hparams would open a second run folder
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    writer.flush()


class FinalHparams(Callback):
    """Log a run's hyperparameters with its final metrics to TensorBoard (the HPARAMS view).

    The hyperparameters are the module's (``method`` = its class, ``model.*``), the data module's (``data.*``),
    the Trainer's budget (``trainer.*``) and the seed; the metrics are the scalars of
    :data:`FINAL_METRICS` that the last evaluation logged (``val/...`` after ``fit``, ``test/...``
    after ``test``). The ``unlearning`` command adds it to every Trainer; without a TensorBoard
    logger it does nothing.
    """

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")

    @staticmethod
    def _log(trainer: Trainer, pl_module: LightningModule, prefix: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        evaluation = getattr(pl_module, "last_eval", None) or {}
        if not loggers or not trainer.is_global_zero or evaluation.get("prefix") != prefix:
            return
        scalars = evaluation.get("scalars", {})
        metrics = {f"{prefix}/{k}": scalars[k] for k in FINAL_METRICS
                   if k in scalars and isinstance(scalars[k], (int, float)) and math.isfinite(scalars[k])}
        if not metrics:
            return
        params: dict[str, Any] = {"method": type(pl_module).__name__, "model": dict(pl_module.hparams)}
        if trainer.datamodule is not None:
            params["data"] = {"class": type(trainer.datamodule).__name__, **dict(trainer.datamodule.hparams)}
        params["trainer"] = {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
                             "limit_train_batches": trainer.limit_train_batches, "precision": trainer.precision,
                             "world_size": trainer.world_size}
        params["seed"] = os.environ.get("PL_GLOBAL_SEED", "None")
        for lg in loggers:
            write_hparams(lg.experiment, params, metrics)
