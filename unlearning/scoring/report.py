"""What a score run writes: arrays, figures, a Markdown report and TensorBoard events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.tables import COLUMNS, fmt_number, fmt_spread
from unlearning.utils import atomic_path

__all__ = ["confidence_figure", "epsilon_figure", "report_markdown", "write_outputs"]

#: (key, title) of the per-run metrics in the report: the comparison table's, less val (not evaluated)
_RUN_COLUMNS = tuple(c for c in COLUMNS if c[0] != "val_acc")


def epsilon_figure(eps: np.ndarray, eps_ceiling: np.ndarray, n: int) -> Any:
    """Histogram of per-example epsilon: the method's against the oracles' own (the ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(float(np.max(eps)), float(np.max(eps_ceiling)), 1.0)
    bins = np.arange(0.0, top + 0.5, 0.5)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.hist(eps_ceiling, bins=bins, alpha=0.6, label="oracle vs oracle (ceiling)")
    ax.hist(eps, bins=bins, alpha=0.6, label="unlearned vs oracle")
    limit = math.ceil(math.log(n - 1))
    ax.axvline(limit, color="k", ls="--", lw=1, label=f"0 points from here (ceil ln(N-1) = {limit})")
    ax.set_xlabel("per-example epsilon")
    ax.set_ylabel("forget examples")
    ax.set_title(f"per-example epsilon, N = {n}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confidence_figure(conf_oracle: np.ndarray, conf_unlearned: np.ndarray, eps: np.ndarray, k: int = 3) -> Any:
    """Logit-scaled confidences, unlearned vs oracle, of the ``k`` hardest and ``k`` easiest
    forget examples (largest and smallest epsilon)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(eps, kind="stable")
    k = min(k, eps.size)
    rows = (("hardest", order[::-1][:k]), ("easiest", order[:k]))
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5.2), squeeze=False)
    for r, (label, idx) in enumerate(rows):
        for c, e in enumerate(idx):
            ax = axes[r, c]
            both = np.concatenate([conf_oracle[e], conf_unlearned[e]])
            bins = np.linspace(both.min() - 0.5, both.max() + 0.5, 16)
            ax.hist(conf_oracle[e], bins=bins, alpha=0.6, label="oracle")
            ax.hist(conf_unlearned[e], bins=bins, alpha=0.6, label="unlearned")
            ax.set_title(f"{label}: example {int(e)}, eps {eps[e]:.2f}", fontsize=9)
            ax.set_xlabel("logit-scaled confidence", fontsize=8)
            if c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def report_markdown(result: dict[str, Any]) -> str:
    """The report: the scores, the per-run metrics (mean ± std over runs), the figures."""
    n = result["n_models"]
    lines = [
        f"# Forgetting score: {result['name']}",
        "",
        f"Method config `{result['method_config']}`, oracle recipe `{result['oracle_config']}`, "
        f"original `{result['original']}`; N = {n} unlearned models against N oracles, ceiling from "
        f"N more oracles; {result['num_forget']} forget examples.",
        "",
        "| F | ceiling | F / ceiling | final | RA ratio | TA ratio | ceiling final |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(fmt_number(result[k]) for k in (
            "forgetting_quality", "ceiling", "relative_forgetting", "final_score",
            "retain_acc_ratio", "test_acc_ratio", "ceiling_final_score")) + " |",
        "",
        "Per-run metrics, mean ± std over the runs:",
        "",
        "| models | " + " | ".join(t for _, t in _RUN_COLUMNS) + " |",
        "|---|" + "---:|" * len(_RUN_COLUMNS),
    ]
    for label, key in ((f"unlearned (N = {n})", "unlearned"), (f"oracles (2N = {2 * n})", "oracle")):
        cells = [fmt_spread(result[key][k]) for k, _ in _RUN_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cost = result["unlearned"]["cost_time_fraction"]["mean"]
    flag = "**over**" if result["over_cost_limit"] else "within"
    spread = result.get("confidence_spread") or {}
    lines += [
        "",
        f"Mean cost {fmt_number(cost)} of one oracle's training ({result['oracle_train_time_s']:.1f} s): "
        f"{flag} the limit of {result['cost_limit']:.2f}.",
        "",
    ]
    if spread:
        lines += [
            f"Run-to-run spread of the forget examples' logit-scaled confidence (median over examples of "
            f"the std over runs): unlearned {fmt_number(spread.get('unlearned'))}, oracles "
            f"{fmt_number(spread.get('oracle'))}.",
            "",
        ]
    klom_rows = result.get("klom") or {}
    if klom_rows:
        lines += [
            "KLOM (KL divergence of the margins' histograms, oracles against unlearned models, per example; "
            "lower is better, the ceiling is oracles against oracles):",
            "",
            "| examples | KLOM mean | KLOM median | ceiling mean |",
            "|---|---:|---:|---:|",
        ]
        for group, k in klom_rows.items():
            lines.append(f"| {group} ({k['examples']}) | {fmt_number(k['mean'])} | {fmt_number(k['median'])} | "
                         f"{fmt_number(k['ceiling_mean'])} |")
        lines.append("")
    for arg, st in (result.get("stages") or {}).items():
        lines += [
            f"One-time stage `{arg}` (`{st['config']}`), trained once for this original and shared by every "
            f"run: {st['cost'].get('train_time_s', math.nan):.1f} s, {fmt_number(st['cost_time_fraction'])} of one "
            f"oracle's training time ({fmt_number(st['cost_images_fraction'])} of its images); not in the "
            "per-run cost above.",
            "",
        ]
    lines += [
        f"Epsilon of {result['timings']['epsilon_s']:.2f} s for both comparisons; "
        f"{result['timings']['models_trained']} models trained by this run in {result['timings']['train_s']:.0f} s.",
        "",
        "![per-example epsilon](epsilon.png)",
        "",
        "![confidences of the hardest and easiest forget examples](confidences.png)",
        "",
    ]
    return "\n".join(lines)


def score_hparams(result: dict[str, Any]) -> dict[str, Any]:
    """What TensorBoard's HPARAMS view shows of a score run: the method (its class and init
    arguments, from its config), the setting (N, oracle config) and the run's name."""
    import yaml

    params: dict[str, Any] = {"name": result.get("name", ""), "n_models": result["n_models"],
                              "method_config": result.get("method_config", ""),
                              "oracle_config": result.get("oracle_config", "")}
    try:
        model = (yaml.safe_load(Path(result["method_config"]).read_text()) or {}).get("model") or {}
    except (KeyError, OSError, yaml.YAMLError):
        model = {}
    params["method"] = str(model.get("class_path", "")).rsplit(".", 1)[-1]
    params["model"] = {k: v for k, v in (model.get("init_args") or {}).items() if k != "original"}
    return params


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    """Write the arrays (``.npy``), figures (``.png``), ``report.md`` and TensorBoard events into
    ``out`` (``score.json`` is written last by the caller)."""
    from unlearning.callbacks import FigureWriter
    from unlearning.callbacks.hparams import FINAL_METRICS, write_hparams

    arrays = result["arrays"]
    for key, a in arrays.items():
        with atomic_path(out / f"{key}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, a)
    n = result["n_models"]
    with FigureWriter(out, tensorboard_dir="tensorboard", dpi=110) as figures:
        scores = {k: result[k] for k in ("forgetting_quality", "ceiling", "relative_forgetting", "final_score",
                                         "retain_acc_ratio", "test_acc_ratio")}
        figures.add_scalars({k: v for k, v in scores.items() if v is not None and math.isfinite(v)}, n, "score")
        figures.add_scalars({k: s["mean"] for k, s in result["unlearned"].items() if math.isfinite(s["mean"])}, n, "runs")
        figures.writer.add_histogram("score/epsilon", arrays["epsilon"], n)
        figures.writer.add_histogram("score/epsilon_ceiling", arrays["epsilon_ceiling"], n)
        figures.writer.add_text("score/report", report_markdown(result), n)
        write_hparams(figures.writer, score_hparams(result), {
            **{f"score/{k}": v for k, v in scores.items() if v is not None and math.isfinite(v)},
            **{f"runs/{k}": result["unlearned"][k]["mean"] for k in FINAL_METRICS
               if k in result["unlearned"] and math.isfinite(result["unlearned"][k]["mean"])},
        })
        figures.add_figure("epsilon", epsilon_figure(arrays["epsilon"], arrays["epsilon_ceiling"], n), n)
        figures.add_figure("confidences", confidence_figure(
            arrays["confidences_oracle"][:, :n], arrays["confidences_unlearned"], arrays["epsilon"]
        ), n)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(report_markdown(result))
