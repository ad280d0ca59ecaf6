"""The per-example view of a leaderboard: which forget examples a method fails to forget, against
how memorised they are.

The seed asks which points move the decision boundary most; the score answers per forget example
with its epsilon (how well the best threshold attack tells the method's N models from the N
oracles on that example). This module puts the two side by side, for chosen methods of a finished
leaderboard (by default the best and the worst within the cost limit, by F / ceiling):

- each forget example's epsilon, recomputed from the margins (logit-scaled confidences) of the
  cached models (:func:`~unlearning.metrics.forgetting.per_example_epsilon`, as the score computes
  it), and its *margin gap*: the mean margin under the method's N models minus the mean under the
  N oracles it is scored against (positive: the method is still more confident on it than models
  that never saw it);
- each example's memorisation from a ``memorisation.npz`` of ``unlearning memorise``: the
  Feldman-Zhang ``estimate`` and the ``confidence_proxy`` (both: higher is more memorised);
- per method and memorisation measure, the Spearman correlation of each with epsilon and with the
  margin gap, and their medians in bins of the measure holding about as many examples each
  (:func:`binned_medians`);
- a figure: one column per method, one row per (quantity, measure), each a scatter with the
  binned medians as a line.

Only cached files are read (the leaderboard's ``leaderboard.json``, the cached models' margins and
records, the scores file); nothing is trained. The forget examples' indices come from the scores
file's ``in_forget`` when its split is the scenario's (checked against the digest every cached
model records of its forget set), else from the scenario's data module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.data.scenarios import ScoreBandForget
from unlearning.metrics.forgetting import forgetting_points, per_example_epsilon
from unlearning.metrics.memorisation import load_scores, spearman
from unlearning.scoring.cache import RECORD_FILE, CachedRun
from unlearning.scoring.cached_model import _array_digest, score_datamodule
from unlearning.scoring.matrix import scenario_data

__all__ = ["MEASURES", "QUANTITIES", "binned_medians", "forget_indices", "per_example_figure", "per_example_study",
           "pick_methods"]

#: the memorisation measures read from the scores file (higher = more memorised), by key
MEASURES = {"estimate": "memorisation estimate (Feldman-Zhang)",
            "confidence_proxy": "confidence proxy (1 - mean label probability)"}
#: the per-example quantities set against them, by key
QUANTITIES = {"epsilon": "per-example epsilon",
              "margin_gap": "margin gap to the oracles' mean"}


def pick_methods(board: dict[str, Any], methods: list[str] | None = None) -> dict[str, str]:
    """The methods to look at: ``{method: role}``, by default the best and the worst within the cost
    limit by F / ceiling (``best``, ``worst``), leaving out the board's variants (ablations, not
    methods).

    Args:
        board: a ``leaderboard.json`` payload.
        methods: method names to take instead (each ``chosen``).

    Raises:
        ValueError: naming a method the board does not have, or when no method is within the limit.
    """
    names = [r["method"] for r in board["rows"]]
    if methods:
        unknown = [m for m in methods if m not in names]
        if unknown:
            raise ValueError(f"method {unknown[0]!r} is not on the leaderboard: expected some of {names}")
        return {m: "chosen" for m in methods}
    variants = set(((board.get("config") or {}).get("variants") or {}))
    rows = [r for r in board["rows"] if r["method"] not in variants and not r["over_cost_limit"]
            and r["relative_forgetting"] is not None and math.isfinite(r["relative_forgetting"])]
    if not rows:
        raise ValueError("no method of the leaderboard is within the cost limit with a finite F / ceiling: "
                         "name the methods to look at")
    picked = {max(rows, key=lambda r: r["relative_forgetting"])["method"]: "best"}
    picked.setdefault(min(rows, key=lambda r: r["relative_forgetting"])["method"], "worst")
    return picked


def _board_data(board: dict[str, Any], scenario: str | None) -> dict[str, Any]:
    """The data section the board was scored on: its config's, with the scenario's forget set."""
    config = board.get("config") or {}
    data = config.get("data")
    if not isinstance(data, dict):
        raise ValueError("the leaderboard records no data section: expected a leaderboard.json of the command line")
    if scenario is not None and scenario in (config.get("scenarios") or {}):
        return scenario_data(data, config["scenarios"][scenario])
    return data


def forget_indices(board: dict[str, Any], scores: dict[str, np.ndarray], digest: str, scenario: str | None,
                   root: str | None = None) -> tuple[np.ndarray, str]:
    """The forget examples' indices into the source's training set, in the order of the cached
    margins (sorted), and where they came from.

    The scores file's ``in_forget`` is used when its indices have ``digest`` (the one every cached
    model records of its forget set); otherwise the board's data section, with the scenario's
    forget set, is split again (``root`` replacing where the data lives).

    Raises:
        ValueError: if neither gives the forget set the models were tested on.
    """
    if "in_forget" in scores:
        candidate = np.sort(np.asarray(scores["index"], dtype=np.int64)[np.asarray(scores["in_forget"], dtype=bool)])
        if _array_digest(candidate) == digest:
            return candidate, "scores file"
    data = _board_data(board, scenario)
    if root is not None:
        data = {**data, "init_args": {**dict(data.get("init_args") or {}), "root": root}}
    dm = score_datamodule(data)
    dm.setup("fit")
    forget = dm.split.forget.cpu().numpy().astype(np.int64)
    if _array_digest(forget) != digest:
        raise ValueError("the cached models were tested on another forget set than the leaderboard's data gives: "
                         "expected the cache the leaderboard was scored into")
    return forget, "data module"


def _read_scores(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a scores file that this view reads (``index``, ``in_forget``, the measures)."""
    scores = load_scores(path, required=("index",))
    if not any(k in scores for k in MEASURES):
        raise ValueError(f"memorisation scores {str(path)!r} have no measure: expected some of {list(MEASURES)}")
    return {k: v for k, v in scores.items() if k in ("index", "in_forget", *MEASURES)}


def _runs(root: Path, folder: str, seeds: range) -> list[CachedRun]:
    runs = [CachedRun(s, root / folder / f"seed-{s:04d}") for s in seeds]
    missing = [r.path for r in runs if not (r.path / RECORD_FILE).is_file()]
    if missing:
        raise ValueError(f"cached model {str(missing[0])!r} does not exist: expected the cache the leaderboard "
                         "was scored into (give its cache_dir)")
    return runs


def binned_medians(x: np.ndarray, y: np.ndarray, bins: int = 8) -> list[dict[str, float]]:
    """Medians of ``y`` in up to ``bins`` bins of ``x`` holding about as many pairs each (over the
    pairs where both are finite): a bin starts where one of ``bins`` equal-count bins would, and
    equal values of ``x`` share a bin, so a measure with many ties (the estimate of K models moves
    in steps of about 2 / K) gets fewer, larger bins rather than several at one value.

    Args:
        x: the binned values (a memorisation measure).
        y: the summarised values (epsilon, margin gap).
        bins: the largest number of bins.

    Returns:
        One record per non-empty bin, by increasing ``x``: ``x_lo``, ``x_hi`` (the smallest and
        largest ``x`` in it), ``x_median``, ``y_median`` and ``count``.

    Raises:
        ValueError: if ``bins`` < 1 or the arrays differ in length.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[ok], y[ok]
    if xs.size == 0:
        return []
    starts = np.unique(np.sort(xs)[(np.arange(bins) * xs.size) // bins])  # where equal-count bins would start
    which = np.searchsorted(starts, xs, side="right") - 1
    out = []
    for b in np.unique(which):
        xb, yb = xs[which == b], ys[which == b]
        out.append({"x_lo": float(xb.min()), "x_hi": float(xb.max()), "x_median": float(np.median(xb)),
                    "y_median": float(np.median(yb)), "count": int(xb.size)})
    return out


def _rho(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    return spearman(x, y) if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0 else None


def per_example_study(
    leaderboard_dir: str | Path,
    scores_file: str | Path,
    cache_dir: str | Path | None = None,
    scenario: str | None = "random",
    methods: list[str] | None = None,
    bins: int = 8,
    root: str | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Per-example epsilon and margin gap against memorisation, for methods of a finished leaderboard.

    Args:
        leaderboard_dir: the leaderboard's output folder: with ``scenario``, the matrix's folder
            (``<leaderboard_dir>/<scenario>/leaderboard.json``); with ``None``, a plain
            leaderboard's folder.
        scores_file: the ``memorisation.npz`` of ``unlearning memorise`` on the same data.
        cache_dir: the model cache (default: the one the scores name).
        scenario: the scenario of the matrix (``random``: the competition's setting).
        methods: the methods to look at (default: :func:`pick_methods`' best and worst).
        bins: the number of bins of each memorisation measure for the medians (:func:`binned_medians`).
        root: where the data lives, if the forget set must be split again (see
            :func:`forget_indices`).

    Returns:
        The summary (what ``per_example_cpu.json`` holds) and the arrays per method
        (``epsilon``, ``margin_gap`` and each measure, one value per forget example).

    Raises:
        ValueError: naming the file when the leaderboard, a cached model or the scores are missing,
            or the forget sets disagree.
    """
    folder = Path(leaderboard_dir) / scenario if scenario is not None else Path(leaderboard_dir)
    path = folder / "leaderboard.json"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist: expected the output of unlearning leaderboard"
                         + (f" with a scenario {scenario!r}" if scenario is not None else ""))
    board = json.loads(path.read_text())
    picked = pick_methods(board, methods)
    n, base = int(board["n_models"]), int(board.get("seed_base") or 0)

    summary: dict[str, Any] = {"scenario": scenario, "leaderboard": str(path), "scores_file": str(scores_file),
                               "n_models": n, "bins": bins, "measures": MEASURES, "quantities": QUANTITIES,
                               "methods": {}}
    arrays: dict[str, dict[str, np.ndarray]] = {}
    forget: np.ndarray | None = None
    for name, role in picked.items():
        rec = board["methods"][name]
        cache = rec["cache"]
        root_dir = Path(cache_dir if cache_dir is not None else cache["dir"])
        oracles = _runs(root_dir, cache["oracle"], range(base, base + n))  # the N the score compares with
        runs = _runs(root_dir, cache["method"], range(base, base + n))
        digests = {r.record()["forget_index_digest"] for r in (*oracles, *runs)}
        if len(digests) != 1:
            raise ValueError(f"the cached models of {name!r} were not all tested on the same forget set")
        if forget is None:
            scores = _read_scores(scores_file)
            forget, source = forget_indices(board, scores, digests.pop(), scenario, root)
            summary.update(num_forget=int(forget.size), forget_indices_from=source)
            measures = {key: ScoreBandForget(str(scores_file), key=key).scores_of(forget)
                        for key in MEASURES if key in scores}
        elif digests.pop() != _array_digest(forget):
            raise ValueError(f"the cached models of {name!r} were tested on another forget set than the other methods'")
        oracle = np.stack([r.forget_lsc() for r in oracles], axis=1)
        unlearned = np.stack([r.forget_lsc() for r in runs], axis=1)
        eps = per_example_epsilon(oracle, unlearned)
        gap = unlearned.mean(1) - oracle.mean(1)
        values = {"epsilon": eps, "margin_gap": gap}
        entry: dict[str, Any] = {
            "role": role, "relative_forgetting": rec.get("relative_forgetting"),
            "forgetting_quality": float(forgetting_points(eps, n).mean()),
            "forgetting_quality_scored": rec.get("forgetting_quality"),
            "cost_time_fraction_mean": ((rec.get("unlearned") or {}).get("cost_time_fraction") or {}).get("mean"),
            "epsilon": {"mean": float(eps.mean()), "median": float(np.median(eps)),
                        "share_zero_points": float((eps >= math.ceil(math.log(n - 1))).mean())},
            "margin_gap": {"mean": float(gap.mean()), "median": float(np.median(gap))},
            "spearman": {}, "binned_medians": {},
        }
        for key, m in measures.items():
            entry["spearman"][key] = {q: _rho(m, v) for q, v in values.items()}
            entry["binned_medians"][key] = {q: binned_medians(m, v, bins) for q, v in values.items()}
        summary["methods"][name] = entry
        arrays[name] = {**values, **measures}
    return summary, arrays


def per_example_figure(summary: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]]) -> Any:
    """One column per method, one row per (quantity, memorisation measure): each forget example as a
    point, the binned medians as a line, the Spearman correlation in the title.

    Args:
        summary: the first result of :func:`per_example_study`.
        arrays: its second result.

    Returns:
        A matplotlib figure.
    """
    from unlearning.callbacks.figures import _pyplot

    plt = _pyplot()
    names = list(summary["methods"])
    measures = [k for k in MEASURES if all(k in arrays[m] for m in names)]
    panels = [(q, k) for q in QUANTITIES for k in measures]
    fig, axes = plt.subplots(max(1, len(panels)), len(names), figsize=(4.6 * len(names), 3.1 * max(1, len(panels))),
                             squeeze=False)
    n = int(summary["n_models"])
    for j, name in enumerate(names):
        entry = summary["methods"][name]
        for i, (q, k) in enumerate(panels):
            ax = axes[i][j]
            x, y = arrays[name][k], arrays[name][q]
            ax.scatter(x, y, s=5, alpha=0.35, color="tab:blue", lw=0)
            med = entry["binned_medians"][k][q]
            ax.plot([b["x_median"] for b in med], [b["y_median"] for b in med], "o-", color="tab:red", lw=1.8, ms=4,
                    label="median per bin")
            if q == "epsilon":
                ax.set_yscale("symlog", linthresh=1.0)
                ax.axhline(math.ceil(math.log(n - 1)), color="grey", ls=":", lw=1)
            else:
                ax.axhline(0.0, color="grey", ls=":", lw=1)
            rho = entry["spearman"][k][q]
            ax.set_title(f"{name} ({entry['role']}): Spearman {rho:.2f}" if rho is not None else f"{name} ({entry['role']})",
                         fontsize=9)
            ax.set_xlabel(MEASURES[k], fontsize=8)
            ax.set_ylabel(QUANTITIES[q], fontsize=8)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Forget examples of the {summary['scenario'] or 'leaderboard'} scenario: what is left to forget "
                 f"against memorisation (N = {n}; dotted: epsilon from which an example scores 0)", fontsize=10)
    fig.tight_layout()
    return fig
