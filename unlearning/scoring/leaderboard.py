"""``unlearning leaderboard``: many methods scored side by side on one setting.

One data split, one oracle recipe and one original; a list of method configs (files, or folders
of them). Each method is scored by :func:`~unlearning.scoring.score.run_score` into one shared
cache, so the 2N oracles are trained once for all of them and a rerun trains only what changed.
The leaderboard gathers, per method: the competition's F, its ceiling, F / ceiling and the final
score; the retain and test accuracy ratios; the attacks (simple MIA, the predictive-distribution
attack, MIA-efficacy, KLOM on forget, retain and held-out examples); the cost as fractions of one
oracle's training time and images, and the over-the-limit flag; on corrupted training data, the
healing numbers (:mod:`unlearning.scoring.healing`) of the method, the oracles and the original.

A folder of methods means its ``*.yaml`` files, less the search spaces of ``unlearning tune``
(``*.space.yaml``). The leaderboard writes

- ``leaderboard.md``, ``.json`` and ``.csv`` (mean and std over the N runs where that applies);
- ``pareto.png``: F / ceiling against cost, with error bars (the spread of the runs' cost; the
  standard error of F over forget examples) and the cost limit drawn;
- ``epsilon.png``: the per-example epsilon distributions of all methods (and the ceiling) on one
  axis; both figures also go to TensorBoard under ``summary/``, with every method's numbers as
  scalars.

``variants`` adds rows that run a listed method with extra arguments (an ablation, e.g. a method
with one of its parts switched off); a method that declares one-time stages gets
``<stages_dir>/<argument>.yaml`` for each, and the leaderboard reports what the stage costs and
after how many requests it pays off against a baseline method; ``variant_stages`` gives a variant
stage configs of its own in place of those (e.g. a stage trained towards another target).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.methods import declared_stages
from unlearning.metrics.forgetting import forgetting_points
from unlearning.scoring.cache import write_json_atomic
from unlearning.scoring.entanglement import matrix_entanglement
from unlearning.scoring.healing import healing_markdown, healing_rows
from unlearning.scoring.matrix import scenario_data, write_matrix
from unlearning.scoring.score import json_ready, run_score
from unlearning.scoring.setting import ScoreSetting
from unlearning.tables import csv_table, fmt_number, fmt_spread, markdown_table
from unlearning.utils import atomic_path

__all__ = ["LEADERBOARD_COLUMNS", "board_notes", "f_standard_error", "leaderboard_rows", "method_configs", "pareto_figure", "pareto_front",
           "run_leaderboard"]

#: (key, title) of the leaderboard's columns; the cells are built by :func:`_cells`.
LEADERBOARD_COLUMNS = (
    ("forgetting_quality", "F"),
    ("ceiling", "ceiling"),
    ("relative_forgetting", "F / ceiling"),
    ("final_score", "final"),
    ("retain_acc_ratio", "RA ratio"),
    ("test_acc_ratio", "TA ratio"),
    ("simple_mia", "simple MIA"),
    ("predictive_mia", "predictive MIA"),
    ("klom_forget", "KLOM forget (ceiling)"),
    ("klom_retain", "KLOM retain"),
    ("klom_heldout", "KLOM held-out"),
    ("forget_acc", "forget acc"),
    ("cost_time_fraction", "cost (x oracle time)"),
    ("cost_images_fraction", "cost (x oracle images)"),
    ("spread", "spread (runs / oracles)"),
    ("over_cost_limit", "over limit?"),
)


def method_configs(paths: Sequence[str | Path]) -> list[Path]:
    """The method configs named by ``paths``: YAML files, or folders whose ``*.yaml`` are taken
    (sorted by name).

    Raises:
        FileNotFoundError: when a path does not exist or a folder holds no YAML file.
        ValueError: when no path is given or two configs share a name.
    """
    if not paths:
        raise ValueError("methods is empty: expected method configs or folders of them")
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.glob("*.yaml") if not f.name.endswith(".space.yaml"))  # not search spaces
            if not files:
                raise FileNotFoundError(f"method folder {p} holds no .yaml config")
            found += files
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"method config {p} does not exist")
    names = [f.stem for f in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two method configs are both named {dup[0]!r}: rename one (rows are named by file)")
    return found


def _stage_configs(method: Path, stages_dir: str | None) -> dict[str, str]:
    wanted = declared_stages(method)
    if wanted and stages_dir is None:
        raise ValueError(f"method {method.stem!r} needs the one-time stage(s) {wanted}: give stages_dir")
    out = {}
    for arg in wanted:
        cfg = Path(str(stages_dir)) / f"{arg}.yaml"
        if not cfg.is_file():
            raise FileNotFoundError(f"method {method.stem!r} needs its one-time stage {arg!r}: no config {cfg}")
        out[arg] = str(cfg)
    return out


def run_leaderboard(
    data: dict[str, Any],
    methods: list[str],
    setting: ScoreSetting,
    output_dir: str = "runs/leaderboard",
    stages_dir: str | None = None,
    variants: dict[str, list[str]] | None = None,
    baseline: str | None = "finetune",
    scenarios: dict[str, dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
    variant_stages: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any] | None:
    """Score every method on one setting and write the leaderboard (see the module docstring); with
    ``scenarios``, on every forget scenario, and write the method x scenario matrix.

    Args:
        data: the data split (a ``class_path``/``init_args`` section), as in ``unlearning score``.
        methods: method configs, or folders of them (each ``*.yaml``); a row is named by its file.
        setting: the oracles, the original, N (runs per method; 2N oracles shared by all), the
            cache (the same as ``unlearning score``'s: runs are shared) and the training plan.
            With ``seeds``, this process trains only its shard of every method; the leaderboard
            is written by a run that finds every model in the cache.
        output_dir: the leaderboard's files, and ``methods/<name>/`` with each method's score report.
        stages_dir: folder of the one-time stage configs (``<argument>.yaml``) methods declare.
        variants: extra rows, ``{row name: [method name, extra argument, ...]}``: the listed
            method (by file name) run with the extra arguments.
        baseline: the method (by file name) whose per-request cost a one-time stage's payoff is
            measured against; ``None`` for none.
        scenarios: ``{name: forget scenario}`` (each a ``class_path``/``init_args`` section of a
            :class:`~unlearning.data.scenarios.ForgetScenario`, replacing the data section's
            forget set): one leaderboard per scenario under ``<output_dir>/<name>/``, each with its
            own oracles, and the matrix (:mod:`unlearning.scoring.matrix`) in ``output_dir``.
        config: the leaderboard's own config, stored in ``leaderboard.json``.
        variant_stages: ``{variant row: {init argument: stage fit config}}``: the variant's
            one-time stages in place of its method's ``<stages_dir>/<argument>.yaml`` (each trained
            once per original and cached like any stage).

    Returns:
        The content of ``leaderboard.json`` (with ``scenarios``: of ``scenarios.json``), or
        ``None`` when models are still missing after training this process's share (``seeds``).

    Raises:
        ValueError: on an empty or ambiguous method list, a variant of an unknown method, variant
            stages of a row that is no variant or for an argument its method does not declare, or
            a bad setting of the score.
        FileNotFoundError: when a config does not exist.
    """
    if scenarios is not None:
        if not scenarios:
            raise ValueError("scenarios must name at least one forget scenario, got an empty mapping")
        datas = {name: scenario_data(data, spec) for name, spec in scenarios.items()}  # all checked up front
        boards = {}
        for name, scenario_section in datas.items():
            if setting.progress:
                print(f"#### scenario {name}", flush=True)
            board = run_leaderboard(scenario_section, methods, setting, str(Path(output_dir) / name), stages_dir,
                                    variants, baseline, None, config, variant_stages)
            if board is not None:
                boards[name] = board
        if len(boards) < len(datas):
            return None
        entanglement = matrix_entanglement(datas, boards, setting.cache_dir, strict=False)
        return write_matrix(Path(output_dir), boards, {
            "n_models": setting.n_models, "seed_base": setting.seed_base, "cost_limit": setting.cost_limit,
            "scenarios": scenarios, "config": config or {}}, entanglement)
    t0 = time.perf_counter()
    configs = {p.stem: p for p in method_configs(methods)}
    runs: list[tuple[str, Path, list[str]]] = [(name, cfg, []) for name, cfg in configs.items()]
    for row, spec in (variants or {}).items():
        if not spec or spec[0] not in configs:
            raise ValueError(f"variant {row!r} names method {spec[0] if spec else None!r}: expected one of {sorted(configs)}")
        if row in configs:
            raise ValueError(f"variant {row!r} has the name of a method: choose another")
        runs.append((row, configs[spec[0]], [str(a) for a in spec[1:]]))
    stages = {name: _stage_configs(cfg, stages_dir) for name, cfg in configs.items()}  # all checked up front
    row_stages = {row: stages[cfg.stem] for row, cfg, _ in runs}
    for row, own in (variant_stages or {}).items():
        if row not in (variants or {}):
            raise ValueError(f"variant_stages names {row!r}, which is no variant: expected one of {sorted(variants or {})}")
        method = variants[row][0]  # type: ignore[index]
        for arg, cfg_file in (own or {}).items():
            if arg not in stages[method]:
                raise ValueError(f"variant_stages of {row!r} gives stage {arg!r}, which method {method!r} does not "
                                 f"declare: expected one of {sorted(stages[method])}")
            if not Path(str(cfg_file)).is_file():
                raise FileNotFoundError(f"variant_stages of {row!r}: stage config {cfg_file} does not exist")
        row_stages[row] = {**stages[method], **{k: str(v) for k, v in (own or {}).items()}}
    out = Path(output_dir)
    results: dict[str, dict[str, Any]] = {}
    complete = True
    for row, cfg, extra in runs:
        if setting.progress:
            print(f"== {row}", flush=True)
        r = run_score(data, str(cfg), setting, name=_slug(row), output_dir=str(out / "methods"), method_args=extra,
                      stages=row_stages[row], config=config)
        if r is None:
            complete = False
            continue
        results[row] = r
        if setting.progress:
            print(f"   F / ceiling {fmt_number(r['relative_forgetting'])}, final {fmt_number(r['final_score'])}", flush=True)
    if not complete:
        return None
    wall = time.perf_counter() - t0
    variant_of = {row: spec[0] for row, spec in (variants or {}).items()}
    notes = board_notes(results, baseline, variant_of)
    payload = {
        "n_models": setting.n_models, "seed_base": setting.seed_base, "cost_limit": setting.cost_limit, "wall_s": wall,
        "models_trained": sum(r["timings"]["models_trained"] for r in results.values()),
        "epsilon_s": sum(r["timings"]["epsilon_s"] for r in results.values()),
        "rows": leaderboard_rows(results), "notes": notes, "config": config or {},
        "methods": {k: {kk: vv for kk, vv in v.items() if kk != "arrays"} for k, v in results.items()},
    }
    write_leaderboard(out, results, payload)
    return payload


def _slug(row: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in row)
    return "-".join(p for p in keep.split("-") if p)


def f_standard_error(r: dict[str, Any]) -> float:
    """Standard error of F over the forget examples (F is their mean of points), as a share of
    the ceiling."""
    pts = forgetting_points(np.asarray(r["arrays"]["epsilon"]), int(r["n_models"]))
    se = float(pts.std(ddof=1) / math.sqrt(pts.size)) if pts.size > 1 else math.nan
    return se / r["ceiling"] if r["ceiling"] else math.nan


def leaderboard_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per method (the CSV's rows): scores, then mean and std of the per-run metrics."""
    rows = []
    for name, r in results.items():
        u = r["unlearned"]
        row: dict[str, Any] = {"method": name}
        for k, _ in LEADERBOARD_COLUMNS[:6]:
            row[k] = r[k]
        row["relative_forgetting_se"] = f_standard_error(r) if "arrays" in r else math.nan
        for k in ("simple_mia", "predictive_mia", "mia_efficacy", "forget_acc", "retain_acc", "test_acc",
                  "cost_time_fraction", "cost_images_fraction", "cost_time_s"):
            stats = u.get(k) or {}
            row[f"{k}_mean"], row[f"{k}_std"] = stats.get("mean", math.nan), stats.get("std", math.nan)
        for group in ("forget", "retain", "heldout"):
            k = (r.get("klom") or {}).get(group) or {}
            row[f"klom_{group}"], row[f"klom_{group}_ceiling"] = k.get("mean", math.nan), k.get("ceiling_mean", math.nan)
        spread = r.get("confidence_spread") or {}
        row["spread_runs"], row["spread_oracles"] = spread.get("unlearned", math.nan), spread.get("oracle", math.nan)
        for arg, st in (r.get("stages") or {}).items():
            row[f"stage_{arg}_cost_time_fraction"] = st.get("cost_time_fraction", math.nan)
        row["over_cost_limit"] = bool(r["over_cost_limit"])
        row.update(healing_rows(r.get("healing") or {}))  # corrupted data only
        rows.append(row)
    return rows


def _cells(row: dict[str, Any]) -> dict[str, str]:
    def pm(key: str) -> str:
        return fmt_spread({"mean": row[f"{key}_mean"], "std": row[f"{key}_std"]})

    cells = {k: fmt_number(row[k]) for k, _ in LEADERBOARD_COLUMNS[:6]}
    cells["relative_forgetting"] += f" ± {fmt_number(row['relative_forgetting_se'])}"
    for k in ("simple_mia", "predictive_mia", "forget_acc", "cost_time_fraction", "cost_images_fraction"):
        cells[k] = pm(k)
    cells["klom_forget"] = f"{fmt_number(row['klom_forget'])} ({fmt_number(row['klom_forget_ceiling'])})"
    cells["klom_retain"] = fmt_number(row["klom_retain"])
    cells["klom_heldout"] = fmt_number(row["klom_heldout"])
    cells["spread"] = f"{fmt_number(row['spread_runs'])} / {fmt_number(row['spread_oracles'])}"
    cells["over_cost_limit"] = "yes" if row["over_cost_limit"] else "no"
    return cells


def leaderboard_markdown(payload: dict[str, Any]) -> str:
    """The leaderboard table (best final score first) and its notes, as Markdown."""
    rows = sorted(payload["rows"], key=lambda r: -(r["final_score"] if math.isfinite(r["final_score"]) else -1))
    table = markdown_table({r["method"]: _cells(r) for r in rows}, LEADERBOARD_COLUMNS, first="method")
    notes = payload.get("notes") or []
    healing = healing_markdown(rows)
    if healing:
        table += ("\n\nHealing of the corrupted training data: accuracy on the true labels of the forgotten and "
                  "of the undiscovered corrupted examples (higher is healed), the trigger's attack success (lower "
                  "is healed):\n\n" + healing)
    return table + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def stage_notes(results: dict[str, dict[str, Any]], baseline: str | None) -> list[str]:
    """For each method with a one-time stage: the stage's cost, a request's cost against one oracle
    and against ``baseline``, and the number of requests after which stage plus requests cost
    less than ``baseline`` per request."""
    lines = []
    base = results.get(baseline) if baseline else None
    for name, r in results.items():
        for arg, st in (r.get("stages") or {}).items():
            per_run = r["unlearned"]["cost_time_s"]["mean"]
            stage_s = st["cost"].get("train_time_s", math.nan)
            text = (f"- `{name}`: the one-time stage `{arg}` took {stage_s:.1f} s ({fmt_number(st['cost_time_fraction'])} "
                    f"of one oracle's training time, {fmt_number(st['cost_images_fraction'])} of its images); one request "
                    f"then costs {per_run:.2f} s, {fmt_number(r['unlearned']['cost_time_fraction']['mean'])} of an oracle")
            if base is not None:
                base_s = base["unlearned"]["cost_time_s"]["mean"]
                text += f" and {per_run / base_s:.2f} of one {baseline} run ({base_s:.2f} s)"
                if base_s > per_run:
                    text += f"; it pays off after {math.ceil(stage_s / (base_s - per_run))} requests"
                else:
                    text += f"; a request costs no less than a run of {baseline}, so it never pays off"
            lines.append(text + ".")
    return lines


def board_notes(results: dict[str, dict[str, Any]], baseline: str | None, variant_of: dict[str, str]) -> list[str]:
    """The leaderboard's notes: every row's one-time stage and its payoff against ``baseline``
    (variants included: a variant such as a one-pass answer has its own per-request cost), then
    each variant against the method it varies."""
    return stage_notes(results, baseline) + variant_notes(results, variant_of)


def variant_notes(results: dict[str, dict[str, Any]], variant_of: dict[str, str]) -> list[str]:
    """One line per variant: its final score and F against the method it varies."""
    lines = []
    for row, base in variant_of.items():
        if row in results and base in results:
            v, b = results[row], results[base]
            lines.append(f"- `{row}` against `{base}`: final {fmt_number(v['final_score'])} vs "
                         f"{fmt_number(b['final_score'])}, F {fmt_number(v['forgetting_quality'])} vs "
                         f"{fmt_number(b['forgetting_quality'])}.")
    return lines


def pareto_front(cost: Sequence[float], quality: Sequence[float]) -> list[int]:
    """The non-dominated points: those that no other point matches or beats on both axes (at most
    its cost and at least its quality, better on one).

    Args:
        cost: each point's cost (lower is better).
        quality: each point's quality (higher is better).

    Returns:
        The indices of the frontier, by increasing cost (and increasing quality); of points with
        equal cost and quality, the first.
    """
    order = sorted(range(len(cost)), key=lambda i: (cost[i], -quality[i], i))
    front: list[int] = []
    for i in order:
        if not front or quality[i] > quality[front[-1]]:
            front.append(i)
    return front


def pareto_figure(rows: list[dict[str, Any]], cost_limit: float, title: str = "Forgetting against cost") -> Any:
    """F / ceiling against cost (time, x one oracle), one labelled point per method.

    The Pareto frontier (no other method has a higher F / ceiling at a lower cost) is a step line
    through its highlighted points, the region over the cost limit is shaded, and the labels are
    placed by :func:`~unlearning.callbacks.figures.place_labels`: no two overlap, and they keep off
    the markers, error bars, frontier and legend wherever there is room.

    Args:
        rows: the leaderboard's rows (``method``, ``relative_forgetting`` and its ``_se``,
            ``cost_time_fraction_mean`` and ``_std``, ``over_cost_limit``); rows whose F / ceiling
            or cost is not finite are left out.
        cost_limit: the cost limit, as a fraction of one oracle's training time (not drawn if not
            finite).
        title: the figure's title.

    Returns:
        A matplotlib figure.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import Bbox

    from unlearning.callbacks.figures import _pyplot, place_labels

    plt = _pyplot()
    # a row without a finite F / ceiling or cost (the ceiling is 0 when N is too small) has no place
    rows = [r for r in rows if math.isfinite(float(r["relative_forgetting"]))
            and math.isfinite(float(r["cost_time_fraction_mean"]))]
    if not rows:
        fig, ax = plt.subplots(figsize=(9.0, 6.0))
        ax.text(0.5, 0.5, "no method has a finite F / ceiling and cost to draw\n(the ceiling is 0 when N is too small)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title)
        return fig
    x = np.array([r["cost_time_fraction_mean"] for r in rows], dtype=float)
    xerr = np.nan_to_num(np.array([r["cost_time_fraction_std"] for r in rows], dtype=float))
    y = np.array([r["relative_forgetting"] for r in rows], dtype=float)
    yerr = np.nan_to_num(np.array([r["relative_forgetting_se"] for r in rows], dtype=float))
    over = [bool(r["over_cost_limit"]) for r in rows]
    front = pareto_front(list(x), list(y))
    limit = float(cost_limit) if cost_limit is not None and math.isfinite(cost_limit) else None

    fig, ax = plt.subplots(figsize=(9.0, 6.0))
    hi_x = max(float(np.max(x + xerr)), limit or -math.inf)
    lo_x, lo_y, hi_y = float(np.min(x - xerr)), float(np.min(y - yerr)), float(np.max(y + yerr))
    span_x, span_y = max(hi_x - lo_x, 1e-9), max(hi_y - lo_y, 1e-9)
    ax.set_xlim(lo_x - 0.06 * span_x, hi_x + 0.1 * span_x)
    ax.set_ylim(lo_y - 0.08 * span_y, hi_y + 0.1 * span_y)
    handles: list[Any] = []
    if limit is not None:
        ax.axvspan(limit, ax.get_xlim()[1], color="tab:red", alpha=0.08, lw=0)
        ax.axvline(limit, color="tab:red", ls="--", lw=1)
        handles.append(Patch(facecolor="tab:red", alpha=0.25, edgecolor="tab:red", ls="--",
                             label=f"cost over the limit (> {limit:g} x one oracle)"))
    step_x, step_y = np.append(x[front], ax.get_xlim()[1]), np.append(y[front], y[front][-1])
    ax.step(step_x, step_y, where="post", color="tab:green", lw=1.5, zorder=1)
    for i in range(len(rows)):
        color = "tab:red" if over[i] else "tab:blue"
        ax.errorbar(x[i], y[i], xerr=xerr[i], yerr=yerr[i], fmt="o", ms=5, capsize=2.5, color=color, elinewidth=1,
                    zorder=2)
    ax.scatter(x[front], y[front], s=110, facecolors="none", edgecolors="tab:green", linewidths=2, zorder=3)
    handles += [Line2D([], [], color="tab:green", lw=1.5, marker="o", mfc="none", mec="tab:green", ms=10, mew=2,
                       label="Pareto frontier: no method is better at lower cost"),
                Line2D([], [], color="tab:blue", marker="o", ls="", label="method within the cost limit"),
                Line2D([], [], color="tab:red", marker="o", ls="", label="method over the cost limit")]
    ax.set_xlabel("cost: training time, x one oracle's (lower is better; mean ± std over runs)")
    ax.set_ylabel("F / ceiling (higher is better; ± s.e. over forget examples)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend = ax.legend(handles=handles, fontsize=8, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    to_px = ax.transData.transform
    obstacles = [legend.get_window_extent(renderer)]
    for i in range(len(rows)):  # the error bars with their caps, the ring of a frontier point
        (cx, cy), (x0, y0), (x1, y1) = to_px((x[i], y[i])), to_px((x[i] - xerr[i], y[i] - yerr[i])), \
            to_px((x[i] + xerr[i], y[i] + yerr[i]))
        cap, ring = 3 * px, 7 * px
        obstacles += [Bbox.from_extents(x0 - px, cy - cap, x1 + px, cy + cap),
                      Bbox.from_extents(cx - cap, y0 - px, cx + cap, y1 + px)]
        if i in front:
            obstacles.append(Bbox.from_extents(cx - ring, cy - ring, cx + ring, cy + ring))
    for k in range(len(front)):  # the frontier's steps: along, then up
        (x0, y0), (x1, y1) = to_px((step_x[k], step_y[k])), to_px((step_x[k + 1], step_y[k + 1]))
        obstacles += [Bbox.from_extents(x0, y0 - px, x1, y0 + px), Bbox.from_extents(x1 - px, y0, x1 + px, y1)]
    # the frontier first, then by decreasing F / ceiling: the best methods get the nearest places
    order = front + sorted((i for i in range(len(rows)) if i not in front), key=lambda i: (-y[i], x[i]))
    place_labels(ax, [(x[i], y[i]) for i in order], [rows[i]["method"] for i in order], obstacles=obstacles)
    return fig


def epsilon_distributions_figure(results: dict[str, dict[str, Any]]) -> Any:
    """The per-example epsilon of every method as an empirical CDF on one axis, with the ceiling's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    first = next(iter(results.values()))
    curves = [("ceiling (oracle vs oracle)", first["arrays"]["epsilon_ceiling"], "k")]
    curves += [(name, r["arrays"]["epsilon"], None) for name, r in results.items()]
    for name, eps, color in curves:
        x = np.sort(np.asarray(eps))
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=name, color=color,
                lw=2 if color else 1.2)
    n = int(first["n_models"])
    ax.axvline(math.ceil(math.log(n - 1)), color="grey", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(f"per-example epsilon (lower is better; dotted: 0 points from here on at N = {n})")
    ax.set_ylabel("share of forget examples at or below (higher is better)")
    ax.set_title("Per-example epsilon: the closer to the ceiling's curve, the better")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_leaderboard(out: Path, results: dict[str, dict[str, Any]], payload: dict[str, Any]) -> None:
    """``leaderboard.md``/``.json``/``.csv``, the two figures and TensorBoard events in ``out``."""
    from unlearning.callbacks.figures import FigureWriter

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "leaderboard.md") as tmp:
        Path(tmp).write_text(leaderboard_markdown(payload))
    with atomic_path(out / "leaderboard.csv") as tmp:
        Path(tmp).write_text(csv_table(payload["rows"]))
    write_json_atomic(out / "leaderboard.json", json_ready(payload))
    figures = FigureWriter(out)
    try:
        figures.add_figure("pareto", pareto_figure(payload["rows"], payload["cost_limit"]))
        figures.add_figure("epsilon", epsilon_distributions_figure(results))
        for row in payload["rows"]:
            figures.add_scalars({k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                                 and math.isfinite(v)}, step=0, prefix=f"leaderboard/{_slug(row['method'])}")
    finally:
        figures.close()
