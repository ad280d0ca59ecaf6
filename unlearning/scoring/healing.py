"""How much of a data corruption's effect the models of a score still show (the healing numbers).

On a forget scenario that corrupts the training data (:class:`~unlearning.data.CorruptedForget`),
every cached model is tested on the healing streams beside the usual ones (their accuracies are in
its record's metrics). A score summarises them per model group, as ``healing`` in ``score.json``:

- ``corrupted_forget_acc``: accuracy on the true labels of the forgotten corrupted examples;
- ``corrupted_retain_acc``: the same for the undiscovered ones, which stayed in the retain set
  (absent when the discovery rate is 1);
- ``attack_success``: for a trigger, the share of stamped test images of other classes put in
  the target class.

Each with ``method`` (the mean over the N runs) and ``method_std``, ``oracle`` (the mean over the
2N oracles) and ``original``. The original is evaluated here, on this score's split: its cache
entry is shared by every discovery rate, so its own record measured the split of whichever rate
trained it first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.data.base import HEALING_STREAMS
from unlearning.metrics.evaluation import evaluate
from unlearning.modules.base import load_checkpoint_meta
from unlearning.registry import module_class
from unlearning.tables import fmt_number, markdown_table

__all__ = ["HEALING_METRICS", "healing_markdown", "healing_rows", "healing_summary", "original_healing"]

#: the healing numbers of ``score.json``: ``{name: the record's metric}``
HEALING_METRICS = {
    "corrupted_forget_acc": "corrupted_forget_acc",
    "corrupted_retain_acc": "corrupted_retain_acc",
    "attack_success": "trigger_acc",
}
#: (name, title) of the healing numbers in tables
_TITLES = (
    ("corrupted_forget_acc", "forgotten: true-label acc"),
    ("corrupted_retain_acc", "undiscovered: true-label acc"),
    ("attack_success", "trigger: attack success"),
)


def original_healing(checkpoint: str | Path, datamodule: Any) -> dict[str, Any]:
    """The healing metrics of one model, evaluated on a data module's healing streams.

    Args:
        checkpoint: the model's checkpoint (a module of the project).
        datamodule: the score's data module (:func:`~unlearning.scoring.cached_model.score_datamodule`).

    Returns:
        ``{metric: value}`` (the record's names, e.g. ``trigger_acc``) and ``examples``, the size
        of each healing stream; no metric when the data is not corrupted.
    """
    datamodule.setup("test")
    streams = [s for s in datamodule.eval_streams if s in HEALING_STREAMS]
    if not streams:
        return {}
    cls = module_class(load_checkpoint_meta(checkpoint)["module"])
    module = cls.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True).eval()
    evaluation = evaluate(module, {s: datamodule.stream_loader(s, train=False) for s in streams}, predictive=False)
    return {**evaluation["scalars"], "examples": {s: int(evaluation["outputs"][s]["loss"].size) for s in streams}}


def healing_summary(oracle_records: Sequence[dict[str, Any]], method_records: Sequence[dict[str, Any]],
                    original: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``healing`` section of ``score.json``.

    Args:
        oracle_records: the records of the 2N oracles.
        method_records: the records of the N method runs.
        original: :func:`original_healing` of the original (``None``: not evaluated).

    Returns:
        ``{name: {"method", "method_std", "oracle", "original"}}`` for each healing number the
        method runs were measured on (see the module docstring), and ``examples`` when the
        original was evaluated; empty when the data is not corrupted.
    """
    out: dict[str, Any] = {}
    for name, metric in HEALING_METRICS.items():
        if not all(metric in rec["metrics"] for rec in method_records) or not method_records:
            continue
        method = np.array([rec["metrics"][metric] for rec in method_records], dtype=np.float64)
        oracle = [rec["metrics"].get(metric, math.nan) for rec in oracle_records]
        out[name] = {"method": float(method.mean()), "method_std": float(method.std(ddof=1)) if method.size > 1 else 0.0,
                     "oracle": float(np.mean(oracle)) if oracle else math.nan,
                     "original": float((original or {}).get(metric, math.nan))}
    if out and original and "examples" in original:
        out["examples"] = dict(original["examples"])
    return out


def healing_rows(healing: dict[str, Any]) -> dict[str, float]:
    """A leaderboard row's healing columns: ``healing_<name>`` (the method's mean),
    ``healing_<name>_oracle`` and ``healing_<name>_original``; none when there is no healing."""
    row: dict[str, float] = {}
    for name, _ in _TITLES:
        if name in healing:
            h = healing[name]
            row[f"healing_{name}"], row[f"healing_{name}_oracle"] = h["method"], h["oracle"]
            row[f"healing_{name}_original"] = h["original"]
    return row


def healing_markdown(rows: Sequence[dict[str, Any]], column: str = "method") -> str:
    """A Markdown table of the healing columns of leaderboard or matrix rows: one row per
    method, and the original's and the oracles', one column per healing number; with
    ``column="scenario"`` (matrix rows) one column per scenario instead, each cell the numbers
    joined by `` / `` in the order forgotten, undiscovered, attack success. Empty when no row
    has healing columns.
    """
    rows = [r for r in rows if any(k.startswith("healing_") for k in r)]
    if not rows:
        return ""
    names = [n for n, _ in _TITLES if any(f"healing_{n}" in r for r in rows)]

    def cells(r: dict[str, Any], suffix: str) -> dict[str, Any]:
        return {n: r.get(f"healing_{n}{suffix}", math.nan) for n in names}

    if column == "method":
        table = {"original": cells(rows[0], "_original"), "oracle": cells(rows[0], "_oracle")}
        table.update({r["method"]: cells(r, "") for r in rows})
        return markdown_table(table, [t for t in _TITLES if t[0] in names], first="model")
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    table = {}
    for label, suffix, pick in (("original", "_original", None), ("oracle", "_oracle", None), *(
            (m, "", m) for m in dict.fromkeys(r["method"] for r in rows))):
        table[label] = {}
        for s in scenarios:
            match = [r for r in rows if r["scenario"] == s and (pick is None or r["method"] == pick)]
            values = cells(match[0], suffix) if match else {}
            table[label][s] = " / ".join(fmt_number(values.get(n)) for n in names)
    return markdown_table(table, [(s, s) for s in scenarios], first="model")
