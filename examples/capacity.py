"""Capacity vs leakage: do deeper networks leak more about their training set, and forget worse?

    python examples/capacity.py --root ../shared/data/cifar10-jpeg

The seed notes frame unlearning as an overfitting problem. This trains CIFAR ResNets of growing
depth (``configs/examples/capacity/``: same 1k-image CIFAR-10 subset, same recipe, no
augmentation) and, for each depth, measures on the training set (members) against unseen test
images (non-members): train and test accuracy, the starting kit's simple MIA (logistic regression
on losses), and the mean logit-scaled confidence gap. It then trains each depth's retrain oracle
(retain set only), unlearns the same forget set with ``Finetune`` and reports how far the forget
set's simple MIA stays from the oracle's, before and after unlearning.

Figures (PNG in ``--out``, and in TensorBoard under ``--out/summary``): ``loss_histograms.png``
(train vs test losses, one panel per depth, shared axes), ``capacity.png`` (MIA accuracy,
generalisation gap and confidence gap against parameter count) and ``unlearning.png`` (gaps to the
oracle on the forget set against parameter count). Every stage's own TensorBoard logs are in
``--out/depth<D>/``. Stages whose checkpoint exists are reused (``--retrain`` to redo them).
The numbers and losses the figures are drawn from are written to ``--out/results.json``;
``--redraw`` trains and evaluates nothing: it draws the figures again from that file.

    python examples/capacity.py --redraw

Any further ``--key value`` argument is passed to every ``unlearning fit`` stage and to the
evaluation (e.g. ``--trainer.precision bf16-mixed``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from unlearning.callbacks import FigureWriter, histogram_panels
from unlearning.callbacks.figures import place_labels
from unlearning.metrics import simple_mia
from unlearning.modules import load_net
from unlearning.pipeline import (
    evaluate_with_outputs,
    evaluation_setup,
    fit_stage,
    pooled_accuracy,
)
from unlearning.scripts import require_positive, run_script, script_parser
from unlearning.tables import markdown_table

matplotlib.use("Agg")

PRESET = Path(__file__).resolve().parents[1] / "configs" / "examples" / "capacity"

#: (key, column title) of the printed table.
COLUMNS = (
    ("params", "params (k)"),
    ("train_acc", "train acc"),
    ("test_acc", "test acc"),
    ("gen_gap", "gen. gap"),
    ("mia", "simple MIA"),
    ("forget_mia", "forget simple MIA"),
    ("forget_predictive_mia", "forget predictive MIA"),
    ("lsc_gap", "LSC gap"),
    ("mia_gap_original", "forget MIA gap (orig.)"),
    ("mia_gap_finetune", "forget MIA gap (finetune)"),
    ("finetune_test_acc", "finetune test acc"),
)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The depths and sizes of the experiment, checked, and the arguments left for the stages.

    Raises:
        ValueError: on a depth that is not 6n+2, or a non-positive size.
    """
    p = script_parser(__doc__, "runs/examples/capacity", cifar_root=True)
    p.add_argument("--depths", type=int, nargs="+", default=[8, 20, 32, 56],
                   help="CIFAR ResNet depths, each 6n+2 (default: 8 20 32 56)")
    p.add_argument("--width", type=int, default=8, help="channels of the first stage (default: 8; 16 in the paper)")
    p.add_argument("--train-subset", type=int, default=1000, help="CIFAR-10 training images used (default: 1000)")
    p.add_argument("--heldout-subset", type=int, default=2000,
                   help="CIFAR-10 test images used, split 50/50 into val and test (default: 2000)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the original and the oracle (default: 20)")
    p.add_argument("--unlearn-epochs", type=int, default=2, help="epochs of Finetune (default: 2)")
    p.add_argument("--retrain", action="store_true", help="train every stage again even if its checkpoint exists")
    p.add_argument("--redraw", action="store_true",
                   help="train and evaluate nothing: draw the figures again from results.json in --out")
    args, extra = p.parse_known_args(argv)
    if args.redraw:
        return args, extra
    bad = [d for d in args.depths if d < 8 or (d - 2) % 6]
    if bad:
        raise ValueError(f"--depths must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, ...), got {bad[0]}")
    if len(set(args.depths)) != len(args.depths):
        raise ValueError(f"--depths must be distinct, got {args.depths}")
    require_positive(args, "width", "train_subset", "heldout_subset", "epochs", "unlearn_epochs")
    return args, extra


def train_depth(depth: int, args: argparse.Namespace, common: list[str]) -> dict[str, Path]:
    """Train (or reuse) the original, the oracle and the fine-tuned model of one depth.

    Args:
        depth: the CIFAR ResNet's depth.
        args: the example's flags.
        common: overrides for every stage (data, pass-through arguments).

    Returns:
        ``{"original": ckpt, "oracle": ckpt, "finetune": ckpt}``.
    """
    log = ["--trainer.logger.init_args.save_dir", str(Path(args.out) / f"depth{depth}")]
    net = ["--model.init_args.net.init_args.depth", str(depth),
           "--model.init_args.net.init_args.width", str(args.width)]
    epochs = ["--trainer.max_epochs", str(args.epochs), "--trainer.check_val_every_n_epoch", str(args.epochs)]
    reuse = not args.retrain
    original = fit_stage(PRESET / "original.yaml", [*log, *net, *epochs, *common], reuse=reuse)
    oracle = fit_stage(PRESET / "retrain.yaml", [*log, *net, *epochs, *common], reuse=reuse)
    finetune = fit_stage(
        PRESET / "unlearn" / "finetune.yaml",
        [*log, "--trainer.max_epochs", str(args.unlearn_epochs), "--model.init_args.original", str(original),
         "--model.init_args.oracle", str(oracle), *common],
        reuse=reuse,
    )
    return {"original": original, "oracle": oracle, "finetune": finetune}


def leakage(
    metrics: dict[str, float], outputs: dict[str, dict[str, np.ndarray]], mia_seed: int = 0
) -> dict[str, float]:
    """Train/test accuracy, simple MIA and confidence gap of one evaluated model.

    Members are the evaluated training examples (retain and forget), non-members the test set.

    Args:
        metrics: the model's metrics, from :func:`~unlearning.pipeline.evaluate_with_outputs`.
        outputs: its per-example outputs, from the same call.
        mia_seed: seed of the attack's subsampling and cross-validation splits.

    Returns:
        ``train_acc``, ``test_acc``, ``gen_gap``, ``mia`` and ``lsc_gap``.
    """
    train = {k: np.concatenate([outputs["retain"][k], outputs["forget"][k]]) for k in ("loss", "lsc")}
    test = outputs["test"]
    train_acc = pooled_accuracy(metrics, outputs)
    return {
        "train_acc": train_acc,
        "test_acc": metrics["test_acc"],
        "gen_gap": train_acc - metrics["test_acc"],
        "mia": simple_mia(train["loss"], test["loss"], seed=mia_seed),
        "lsc_gap": float(np.mean(train["lsc"]) - np.mean(test["lsc"])),
    }


#: a panel of :func:`_against_params`: (title, y label, [(key, legend), ...], the ideal value or None, its name)
Panel = tuple[str, str, list[tuple[str, str]], float | None, str]


def _against_params(rows: dict[int, dict[str, float]], panels: list[Panel], title: str) -> Any:
    """A figure with one panel per :data:`Panel`, each series against parameter count (log scale),
    the ideal value dotted, each point of the first series labelled by its depth."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.transforms import Bbox

    depths = sorted(rows)
    params = [rows[d]["params"] * 1e3 for d in depths]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), squeeze=False)
    for ax, (panel_title, ylabel, series, ideal, ideal_name) in zip(axes[0], panels):
        for key, legend in series:
            ax.plot(params, [rows[d][key] for d in depths], marker="o", label=legend)
        if ideal is not None:
            ax.axhline(ideal, color="0.4", ls=":", lw=1.2, label=ideal_name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap
        ax.set_xlabel("parameters (log scale; point labels: depth)")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10)
        ax.grid(alpha=0.3)
        if len(series) > 1 or ideal is not None:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    for ax, (_, _, series, _, _) in zip(axes[0], panels):  # depth labels, once the layout is fixed
        obstacles = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
        for line in ax.get_lines():  # every line, as small boxes along it (straight in display space)
            xy = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
            for a, b in zip(xy[:-1], xy[1:]):
                for t in np.linspace(0.0, 1.0, 12):
                    cx, cy = a + t * (b - a)
                    obstacles.append(Bbox.from_extents(cx - px, cy - px, cx + px, cy + px))
        first = [(x, rows[d][series[0][0]]) for d, x in zip(depths, params)]
        place_labels(ax, first, [str(d) for d in depths], obstacles=obstacles)
    return fig


def write_figures(out: str | Path, rows: dict[int, dict[str, float]], losses: dict[str, dict[str, Any]]) -> None:
    """Write ``loss_histograms.png``, ``capacity.png`` and ``unlearning.png`` into ``out``, and them
    and the numbers to TensorBoard.

    Args:
        out: the output folder.
        rows: the numbers of every depth, as :func:`main` returns them.
        losses: ``{panel title: {"train": losses, "test": losses}}``, one panel per depth.
    """
    with FigureWriter(out) as writer:
        fig = histogram_panels(losses, xlabel="per-example loss (cross-entropy)", title=(
            "Per-example loss, training set (members) vs test set: the more the two overlap, the less the model "
            "leaks"))
        fig.axes[0].set_ylabel("share of examples per unit loss (log)")
        writer.add_figure("loss_histograms", fig)
        writer.add_figure("capacity", _against_params(rows, [
            ("Membership inference", "MIA accuracy\n(closer to 0.5 is better: less leakage)",
             [("mia", "simple, train vs test"), ("forget_mia", "simple, forget vs test"),
              ("forget_predictive_mia", "predictive, forget vs test")], 0.5, "chance"),
            ("Generalisation gap", "train accuracy - test accuracy\n(lower is better: less overfitting)",
             [("gen_gap", "generalisation gap")], None, ""),
            ("Confidence gap", "mean logit-scaled confidence, train - test\n(lower is better: less leakage)",
             [("lsc_gap", "confidence gap")], None, ""),
        ], "Capacity vs leakage: CIFAR ResNets of growing depth, same data and recipe"))
        writer.add_figure("unlearning", _against_params(rows, [
            ("Membership inference on the forget set", "forget MIA - oracle's\n(closer to 0 is better)",
             [("mia_gap_original", "original"), ("mia_gap_finetune", "after Finetune")], 0.0, "oracle"),
            ("Accuracy on the forget set", "forget accuracy - oracle's\n(closer to 0 is better)",
             [("forget_acc_gap_original", "original"), ("forget_acc_gap_finetune", "after Finetune")], 0.0,
             "oracle"),
        ], "Unlearning the forget set: gap to the retrain oracle"))
        for depth, row in rows.items():
            writer.add_scalars(row, step=depth, prefix="capacity")


def save_results(out: str | Path, rows: dict[int, dict[str, float]], losses: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write what the figures are drawn from to ``out/results.json``: ``{"rows": {depth: numbers},
    "losses": {panel title: {"train": [...], "test": [...]}}}``."""
    path = Path(out) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {"rows": {str(d): row for d, row in rows.items()},
             "losses": {name: {k: np.asarray(v).tolist() for k, v in sets.items()} for name, sets in losses.items()}}
    path.write_text(json.dumps(saved) + "\n")
    return path


def redraw(out: str) -> dict[int, dict[str, float]]:
    """Draw the figures again from the ``results.json`` of an earlier run in ``out``, and print its table.

    Returns:
        The numbers that run returned (see :func:`main`).

    Raises:
        FileNotFoundError: if ``out/results.json`` is missing.
    """
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"--redraw: no {path}; run the example once without --redraw")
    saved = json.loads(path.read_text())
    rows = {int(d): row for d, row in saved["rows"].items()}
    losses = {name: {k: np.array(v) for k, v in sets.items()} for name, sets in saved["losses"].items()}
    write_figures(out, rows, losses)
    report(out, rows)
    return rows


def report(out: str, rows: dict[int, dict[str, float]]) -> None:
    """Print the numbers of every depth as a Markdown table, and where the figures are."""
    print()
    print(markdown_table({f"ResNet-{d}": row for d, row in rows.items()}, COLUMNS))
    print(f"\nfigures in {out}/ (loss_histograms.png, capacity.png, unlearning.png); tensorboard --logdir {out}")


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    """Run the experiment.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``); see ``--help``.

    Returns:
        ``{depth: numbers}`` with ``params`` (thousands), ``train_acc``, ``test_acc``, ``gen_gap``,
        ``mia`` (simple MIA, training set vs test set), ``lsc_gap`` (mean logit-scaled confidence,
        training minus test), ``forget_mia`` and ``oracle_forget_mia`` (simple MIA, forget vs
        test, of the original and of the oracle), ``mia_gap_original`` and ``mia_gap_finetune``
        (forget MIA minus the oracle's), ``forget_acc_gap_original`` and
        ``forget_acc_gap_finetune`` (forget accuracy minus the oracle's), ``finetune_retain_acc``,
        ``finetune_test_acc`` and ``finetune_cost`` (training time as a fraction of the oracle's).
    """
    args, extra = parse_args(argv)
    if args.redraw:
        return redraw(args.out)
    common = [
        *(["--data.init_args.root", args.root] if args.root else []),
        "--data.init_args.train_subset", str(args.train_subset),
        "--data.init_args.heldout_subset", str(args.heldout_subset),
        *extra,
    ]
    checkpoints = {d: train_depth(d, args, common) for d in args.depths}

    config = PRESET / "original.yaml"
    setup = evaluation_setup(config, common)
    rows: dict[int, dict[str, float]] = {}
    losses: dict[str, dict[str, np.ndarray]] = {}
    for depth, ckpt in checkpoints.items():
        net, _ = load_net(ckpt["original"])
        params = sum(p.numel() for p in net.parameters())
        metrics, outputs = evaluate_with_outputs(ckpt["original"], config, oracle=ckpt["oracle"], setup=setup)
        tuned, _ = evaluate_with_outputs(ckpt["finetune"], config, oracle=ckpt["oracle"], setup=setup)
        rows[depth] = {
            "params": params / 1e3,
            **leakage(metrics, outputs),
            "forget_mia": metrics["simple_mia"],
            "forget_predictive_mia": metrics.get("predictive_mia", float("nan")),
            "finetune_predictive_mia": tuned.get("predictive_mia", float("nan")),
            "oracle_forget_mia": metrics["oracle_simple_mia"],
            "mia_gap_original": metrics["simple_mia_gap"],
            "mia_gap_finetune": tuned["simple_mia_gap"],
            "forget_acc_gap_original": metrics["forget_acc_gap"],
            "forget_acc_gap_finetune": tuned["forget_acc_gap"],
            "finetune_retain_acc": tuned["retain_acc"],
            "finetune_test_acc": tuned["test_acc"],
            "finetune_cost": tuned.get("cost_time_fraction", float("nan")),
        }
        train_loss = np.concatenate([outputs["retain"]["loss"], outputs["forget"]["loss"]])
        losses[f"ResNet-{depth} ({params / 1e3:.0f}k params)"] = {"train": train_loss, "test": outputs["test"]["loss"]}

    save_results(args.out, rows, losses)
    write_figures(args.out, rows, losses)
    report(args.out, rows)
    return rows


if __name__ == "__main__":
    run_script(main, "capacity")
