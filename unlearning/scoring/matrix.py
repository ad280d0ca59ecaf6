"""The method x scenario matrix: one leaderboard per forget scenario, and the matrix of F / ceiling.

``unlearning leaderboard`` with ``scenarios`` (a mapping of names to forget scenarios, see
:mod:`unlearning.data.scenarios`) scores every method on every scenario: the data section is the
same, but its forget set is the scenario's. Each scenario has its own 2N oracles and its own
ceiling (scenarios differ in how much room they leave), and its own leaderboard under
``<output_dir>/<scenario>/``. The matrix is written beside them:

- ``scenarios.json``: ``rows``, one per (scenario, method), with ``scenario``, ``method``,
  ``n_models``, ``ceiling``, ``relative_forgetting``, ``final_score``, ``over_cost_limit`` and the
  per-run accuracies (and, on a corrupted-data scenario, the ``healing_*`` columns of
  :func:`~unlearning.scoring.healing.healing_rows`); ``ceilings`` per scenario; the setting;
- ``scenarios.md``: the matrix of F / ceiling (a method over the cost limit in brackets), the
  ceilings, and the best method within the cost limit per scenario;
- ``scenarios.png``: the matrix as a heatmap, the ceiling of each scenario above its column.

Each row also has its scenario's ``entanglement`` (and ``scenarios.json`` an ``entanglement`` per
scenario): RUM's entanglement score of the forget set against the retain set in the original's
penultimate features (:mod:`unlearning.scoring.entanglement`; higher is harder). The Markdown
shows it under the ceilings, the heatmap under each scenario's ceiling.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

import unlearning.data as data_package
from unlearning.callbacks.figures import FigureWriter
from unlearning.data.scenarios import ForgetScenario
from unlearning.registry import find_object
from unlearning.scoring.cache import write_json_atomic
from unlearning.scoring.healing import healing_markdown
from unlearning.scoring.score import json_ready
from unlearning.tables import fmt_number, markdown_table
from unlearning.utils import atomic_path

__all__ = ["MATRIX_KEYS", "best_within_limit", "fmt_entanglement", "matrix_figure", "matrix_markdown", "matrix_rows",
           "scenario_data", "write_matrix"]

#: the keys of every row of ``scenarios.json``
MATRIX_KEYS = ("scenario", "method", "n_models", "ceiling", "relative_forgetting", "final_score", "over_cost_limit",
               "forget_acc_mean", "retain_acc_mean", "test_acc_mean", "cost_time_fraction_mean", "entanglement")

#: the data module arguments a scenario replaces (the shorthands of the forget set)
_SHORTHANDS = ("forget_fraction", "forget_classes", "forget_index_file")


def scenario_data(data: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """The data section with its forget set chosen by ``scenario`` (a ``class_path``/``init_args``
    section of a :class:`~unlearning.data.scenarios.ForgetScenario`).

    Raises:
        ValueError: if the scenario is not such a section, names no scenario class, or has a bad
            argument.
    """
    if not isinstance(scenario, dict) or not isinstance(scenario.get("class_path"), str):
        raise ValueError(f"a scenario must be a section with a class_path (e.g. ClassForget), got {scenario!r}")
    cls = find_object(scenario["class_path"], ("unlearning.data",))
    if not (isinstance(cls, type) and issubclass(cls, ForgetScenario)):
        known = ", ".join(sorted(n for n, c in vars(data_package).items()
                                 if isinstance(c, type) and issubclass(c, ForgetScenario) and c is not ForgetScenario))
        raise ValueError(f"unknown forget scenario {scenario['class_path']!r}: expected one of {known} "
                         "or the dotted path of a ForgetScenario")
    try:
        cls(**dict(scenario.get("init_args") or {}))  # a bad argument (a share outside (0, 1), ...) fails now
    except TypeError as err:  # an unknown or missing argument
        raise ValueError(f"forget scenario {scenario['class_path']!r}: {err}") from None
    out = copy.deepcopy(data)
    init = {k: v for k, v in dict(out.get("init_args") or {}).items() if k not in _SHORTHANDS}
    init["forget_scenario"] = copy.deepcopy(scenario)
    out["init_args"] = init
    return out


def matrix_rows(boards: dict[str, dict[str, Any]], entanglement: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per (scenario, method) from each scenario's ``leaderboard.json`` payload, with the
    scenario's ``entanglement`` (``NaN`` where ``entanglement`` has none)."""
    rows = []
    for scenario, board in boards.items():
        for row in board["rows"]:
            method = board["methods"][row["method"]]
            rows.append({"scenario": scenario, "method": row["method"], "n_models": board["n_models"],
                         "ceiling": row["ceiling"], "relative_forgetting": row["relative_forgetting"],
                         "final_score": row["final_score"], "over_cost_limit": bool(row["over_cost_limit"]),
                         "num_forget": method.get("num_forget"),
                         **{k: row.get(k, math.nan) for k in MATRIX_KEYS[7:-1]},
                         "entanglement": _entanglement_of(entanglement, scenario),
                         **{k: v for k, v in row.items() if k.startswith("healing_")}})  # corrupted data only
    return rows


def _entanglement_of(entanglement: dict[str, float] | None, scenario: str) -> float:
    value = (entanglement or {}).get(scenario)
    return math.nan if value is None else float(value)


def fmt_entanglement(value: float | None) -> str:
    """An entanglement score for a table or a label: ``-`` when unknown, ``inf`` when the forget and
    retain sets have the same mean, else three significant digits."""
    if value is None or math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3g}"


def best_within_limit(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario, the row of the highest F / ceiling among the methods within the cost limit."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        value = r["relative_forgetting"]
        if r["over_cost_limit"] or value is None or not math.isfinite(value):
            continue
        if r["scenario"] not in best or value > best[r["scenario"]]["relative_forgetting"]:
            best[r["scenario"]] = r
    return best


def _grid(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    methods = sorted(dict.fromkeys(r["method"] for r in rows))
    values = np.full((len(methods), len(scenarios)), np.nan)
    over = np.zeros_like(values, dtype=bool)
    for r in rows:
        i, j = methods.index(r["method"]), scenarios.index(r["scenario"])
        values[i, j] = r["relative_forgetting"] if r["relative_forgetting"] is not None else np.nan
        over[i, j] = r["over_cost_limit"]
    return scenarios, methods, values, over


def matrix_markdown(rows: list[dict[str, Any]]) -> str:
    """The matrix (methods x scenarios, F / ceiling; over the cost limit in brackets), the ceilings
    and the best method within the cost limit per scenario, as Markdown."""
    scenarios, methods, values, over = _grid(rows)
    ceilings = {r["scenario"]: r["ceiling"] for r in rows}
    cells = {}
    for i, m in enumerate(methods):
        cells[m] = {s: (f"({fmt_number(values[i, j])})" if over[i, j] else fmt_number(values[i, j]))
                    for j, s in enumerate(scenarios)}
    cells["ceiling (F)"] = {s: fmt_number(ceilings[s]) for s in scenarios}
    tangled = {r["scenario"]: r.get("entanglement") for r in rows}
    cells["entanglement (ES)"] = {s: fmt_entanglement(tangled[s]) for s in scenarios}
    table = markdown_table(cells, [(s, s) for s in scenarios], first="method")
    best = best_within_limit(rows)
    lines = [f"- `{s}`: {best[s]['method']} ({fmt_number(best[s]['relative_forgetting'])} of the ceiling)"
             for s in scenarios if s in best]
    text = ("F / ceiling per method and scenario (in brackets: over the cost limit); ES: the entanglement of "
            "the forget set with the retain set in the original's penultimate features (higher is harder).\n\n" + table +
            "\nBest within the cost limit:\n\n" + "\n".join(lines) + "\n")
    healing = healing_markdown(rows, column="scenario")
    if healing:
        text += ("\nHealing on the corrupted-data scenarios: true-label accuracy on the forgotten / on the "
                 "undiscovered corrupted examples / the trigger's attack success (n/a: no such examples).\n\n"
                 + healing + "\n")
    return text


def matrix_figure(rows: list[dict[str, Any]], title: str = "F / ceiling by method and forget scenario") -> Any:
    """A heatmap of F / ceiling (methods x scenarios), each cell labelled with its value (hatched
    when over the cost limit), and each scenario's ceiling and entanglement (ES) above its column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios, methods, values, over = _grid(rows)
    ceilings = {r["scenario"]: r["ceiling"] for r in rows}
    tangled = {r["scenario"]: r.get("entanglement") for r in rows}
    fig, ax = plt.subplots(figsize=(1.3 * len(scenarios) + 3, 0.32 * len(methods) + 2.3))
    finite = values[np.isfinite(values)]
    vmax = max(1.0, float(finite.max())) if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=min(0.0, float(finite.min()) if finite.size else 0.0),
                      vmax=vmax, aspect="auto")
    for i in range(len(methods)):
        for j in range(len(scenarios)):
            if np.isfinite(values[i, j]):
                text = f"{values[i, j]:.2f}" + ("*" if over[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < 0.6 * vmax else "black")
    ax.set_xticks(range(len(scenarios)), [f"{s}\nceiling {fmt_number(ceilings[s])}\nES {fmt_entanglement(tangled[s])}"
                                          for s in scenarios], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    fig.colorbar(image, ax=ax, label="F / ceiling (* over the cost limit)", fraction=0.04)
    ax.set_title(title, fontsize=10, pad=12)
    fig.tight_layout()
    return fig


def write_matrix(out: Path, boards: dict[str, dict[str, Any]], setting: dict[str, Any],
                 entanglement: dict[str, float] | None = None) -> dict[str, Any]:
    """Write ``scenarios.json``, ``scenarios.md`` and ``scenarios.png`` into ``out``.

    Args:
        out: the leaderboard's output folder.
        boards: ``{scenario: leaderboard.json payload}``.
        setting: what the payload records of the setting (N, seeds, cost limit, the scenarios).
        entanglement: each scenario's entanglement
            (:func:`~unlearning.scoring.entanglement.matrix_entanglement`); ``None``: unknown.

    Returns:
        The content of ``scenarios.json``.
    """
    rows = matrix_rows(boards, entanglement)
    payload = {**setting, "rows": rows, "ceilings": {s: b["rows"][0]["ceiling"] if b["rows"] else None for s, b in boards.items()},
               "entanglement": {s: _entanglement_of(entanglement, s) for s in boards},
               "best_within_limit": {s: r["method"] for s, r in best_within_limit(rows).items()},
               "wall_s": sum(b["wall_s"] for b in boards.values()),
               "models_trained": sum(b["models_trained"] for b in boards.values())}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "scenarios.md") as tmp:
        Path(tmp).write_text(matrix_markdown(rows))
    write_json_atomic(out / "scenarios.json", json_ready(payload))
    figures = FigureWriter(out)
    try:
        figures.add_figure("scenarios", matrix_figure(rows))
    finally:
        figures.close()
    return payload
