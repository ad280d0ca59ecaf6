"""Two circles: how capacity shapes a decision boundary, which points move it, and unlearning them.

    python examples/two_circles.py

The seed notes' thought experiment, through the framework (``configs/examples/two_circles/``):
two classes drawn uniformly from discs of radius 2 centred at (-5, 5) and (5, 5) (the
``TwoCircles`` data module), plus a few outliers that sit between the discs, near the other class.

1. Decision boundaries of MLPs of growing width and depth, drawn over the data
   (``boundaries.png``).
2. Per-point influence by leave-one-out: with the seed fixed, the MLP is retrained without each
   training point in turn (the ``RetrainOracle`` with that one point as the forget set) and
   compared with the model trained on every point: the L2 norm of the parameter difference, the
   share of a grid over the plane whose predicted class flips, and the mean change of the predicted
   probability on that grid. Training is full-batch gradient descent, so two runs differ only by
   the point left out (and floating-point summation order), not by the shuffling. Every point is
   left out in turn by default, a few seconds per model (``influence.png``, and the top-5 printed).
3. The most influential points are unlearned together with ``Finetune`` and other built-in
   methods, and the boundaries drawn beside the boundary of the model retrained without them
   (``unlearning.png``), with each model's disagreement with that retrained boundary.

Figures are PNG files in ``--out`` and in TensorBoard under ``--out/summary``; every training
run's own logs are in ``--out`` too, and what the figures are drawn from: ``results.json`` (the
numbers) and ``grids.npz`` (each model's probability over the plane). ``--redraw`` trains nothing:
it draws the figures again from those two files.

    python examples/two_circles.py --redraw

Any further ``--key value`` argument is passed to every ``unlearning fit`` stage (e.g.
``--model.init_args.lr 0.05``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from unlearning.callbacks import FigureWriter
from unlearning.callbacks.figures import place_labels
from unlearning.modules import load_net
from unlearning.pipeline import (
    evaluate_checkpoint,
    evaluate_with_outputs,
    evaluation_setup,
    fit_stage,
    pooled_accuracy,
)
from unlearning.scripts import require_positive, run_script, script_parser

matplotlib.use("Agg")

PRESET = Path(__file__).resolve().parents[1] / "configs" / "examples" / "two_circles"
#: the plane drawn and measured: x in [-9, 9], y in [-1, 11], at 0.1 spacing
GRID_X, GRID_Y = np.linspace(-9, 9, 181), np.linspace(-1, 11, 121)
#: for the many runs measured here rather than by the stage's own validation (saves the attacks' time)
NO_VALIDATION = ["--trainer.limit_val_batches", "0", "--checkpoint.save_top_k", "0"]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The data, models and methods of the experiment, checked, and the arguments left for the stages.

    Raises:
        ValueError: on a bad size, an unknown method or a forget set larger than the data.
    """
    methods = sorted(p.stem for p in (PRESET / "unlearn").glob("*.yaml"))
    p = script_parser(__doc__, "runs/examples/two_circles")
    p.add_argument("--num-train", type=int, default=100, help="training points, outliers included (default: 100)")
    p.add_argument("--num-outliers", type=int, default=6, help="outliers placed near the other class (default: 6)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the points (default: 0)")
    p.add_argument("--hidden", type=int, default=32, help="width of the MLP studied by leave-one-out (default: 32)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers of that MLP (default: 2)")
    p.add_argument("--epochs", type=int, default=300, help="full-batch gradient steps of every training (default: 300)")
    p.add_argument("--widths", type=int, nargs="+", default=[4, 16, 64], help="MLP widths drawn (default: 4 16 64)")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3], help="MLP depths drawn (default: 1 2 3)")
    p.add_argument("--forget-top", type=int, default=5,
                   help="unlearn this many of the most influential points (default: 5)")
    p.add_argument("--unlearn-epochs", type=int, default=None,
                   help="full-batch steps of every unlearning method (default: each method config's own)")
    p.add_argument("--methods", nargs="+", default=["finetune", "discriminator", "neggrad_plus", "kl_contrastive"],
                   help=f"configs/examples/two_circles/unlearn/<name>.yaml to run (of {', '.join(methods)})")
    p.add_argument("--redraw", action="store_true",
                   help="train nothing: draw the figures again from results.json and grids.npz in --out")
    args, extra = p.parse_known_args(argv)
    if args.redraw:
        return args, extra
    require_positive(args, "num_train", "hidden", "epochs", "forget_top", "unlearn_epochs")
    if min(args.widths) < 1 or min(args.depths) < 0:
        raise ValueError(f"--widths must be >= 1 and --depths >= 0, got {args.widths} and {args.depths}")
    if args.depth < 0:
        raise ValueError(f"--depth must be >= 0, got {args.depth}")
    if not 0 <= args.num_outliers < args.num_train:
        raise ValueError(f"--num-outliers must be in [0, {args.num_train - 1}], got {args.num_outliers}")
    if args.forget_top >= args.num_train:
        raise ValueError(f"--forget-top must be below --num-train={args.num_train}, got {args.forget_top}")
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}: expected some of {methods}")
    return args, extra


def grid_probability(ckpt: Path) -> tuple[np.ndarray, np.ndarray]:
    """A checkpoint's network on the grid and its flattened parameters.

    Args:
        ckpt: a checkpoint of the project whose network takes 2-D points.

    Returns:
        ``(p, theta)``: the probability of class 1 at every grid point (``len(GRID_Y) x
        len(GRID_X)``) and all parameters as one float64 vector.
    """
    net, _ = load_net(ckpt)
    xx, yy = np.meshgrid(GRID_X, GRID_Y)
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    with torch.no_grad():
        p = torch.softmax(net(points), 1)[:, 1].numpy().reshape(xx.shape)
    theta = torch.cat([t.detach().double().ravel() for t in net.parameters()]).numpy()
    return p, theta


def draw(ax: Any, p: np.ndarray, x: np.ndarray, y: np.ndarray, outliers: np.ndarray, title: str,
         marked: np.ndarray | None = None, reference: np.ndarray | None = None) -> None:
    """Draw a model's class-1 probability and boundary over the training points.

    Args:
        ax: the matplotlib axes.
        p: probability of class 1 on the grid, from :func:`grid_probability`.
        x: training points, ``N x 2``.
        y: their classes.
        outliers: which points are outliers (drawn as stars).
        title: the panel's title.
        marked: indices of points to mark with crosses (e.g. the forget set).
        reference: another model's probability on the grid, whose boundary is drawn dashed.
    """
    ax.contourf(GRID_X, GRID_Y, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
    ax.contour(GRID_X, GRID_Y, p, levels=[0.5], colors="k", linewidths=1.5)
    if reference is not None:
        ax.contour(GRID_X, GRID_Y, reference, levels=[0.5], colors="k", linewidths=1.2, linestyles="--")
    colors = np.where(y == 1, "tab:red", "tab:blue")
    ax.scatter(x[~outliers, 0], x[~outliers, 1], c=colors[~outliers], s=10)
    ax.scatter(x[outliers, 0], x[outliers, 1], c=colors[outliers], s=45, marker="*", edgecolors="k", linewidths=0.6)
    if marked is not None and marked.size:
        ax.scatter(x[marked, 0], x[marked, 1], s=70, marker="x", c="k", linewidths=1.2)
    ax.set_title(title, fontsize=9)
    plane(ax)


def plane(ax: Any, xlabel: bool = True, ylabel: bool = True) -> None:
    """Show the plane measured (:data:`GRID_X` x :data:`GRID_Y`) at equal scale, its axes named by
    the coordinates of the input points (the inner panels of a grid may leave them out)."""
    ax.set_aspect("equal")
    ax.set_xlim(GRID_X[0], GRID_X[-1])
    ax.set_ylim(GRID_Y[0], GRID_Y[-1])
    ax.set_xlabel("x1" if xlabel else "")
    ax.set_ylabel("x2" if ylabel else "")


def label_ranks(ax: Any, x: np.ndarray, ranked: np.ndarray, boundary: Any) -> None:
    """Write ``#1``, ``#2``, ... beside the ranked points, none over another, nor over the other
    points or the boundary (by :func:`~unlearning.callbacks.figures.place_labels`).

    Args:
        ax: the axes, its layout fixed.
        x: all training points, ``N x 2``.
        ranked: the indices of the points to label, first first.
        boundary: the ``QuadContourSet`` of the drawn boundary.
    """
    from matplotlib.transforms import Bbox

    px = ax.figure.dpi / 72.0
    to_px = ax.transData.transform
    r = 2.5 * px  # about a point's marker, in pixels
    others = np.setdiff1d(np.arange(len(x)), ranked)
    obstacles = [Bbox.from_extents(cx - r, cy - r, cx + r, cy + r) for cx, cy in to_px(x[others])]
    for segment in boundary.allsegs[0]:  # the line, as small boxes along it
        for cx, cy in to_px(segment)[::2]:
            obstacles.append(Bbox.from_extents(cx - px, cy - px, cx + px, cy + px))
    place_labels(ax, [tuple(x[i]) for i in ranked], [f"#{rank + 1}" for rank in range(len(ranked))],
                 obstacles=obstacles, fontsize=9)


def influence(args: argparse.Namespace, common: list[str], reference: Path) -> dict[str, np.ndarray]:
    """Leave-one-out over every training point.

    Args:
        args: the example's flags.
        common: overrides for every stage (data, schedule, network, pass-through arguments).
        reference: checkpoint of the model trained on every point.

    Returns:
        ``{"param_l2", "boundary_flip", "prob_change"}``, each an array with one value per point.
    """
    p_ref, theta_ref = grid_probability(reference)
    out = Path(args.out) / "loo"
    out.mkdir(parents=True, exist_ok=True)
    values: dict[str, list[float]] = {"param_l2": [], "boundary_flip": [], "prob_change": []}
    for i in range(args.num_train):
        index_file = out / f"point{i:03d}.txt"
        index_file.write_text(f"{i}\n")
        ckpt = fit_stage(PRESET / "retrain.yaml", [
            "--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", f"point{i:03d}",
            "--data.init_args.forget_index_file", str(index_file), *NO_VALIDATION, *common], reuse=False)
        p, theta = grid_probability(ckpt)
        values["param_l2"].append(float(np.linalg.norm(theta - theta_ref)))
        values["boundary_flip"].append(float(np.mean((p > 0.5) != (p_ref > 0.5))))
        values["prob_change"].append(float(np.mean(np.abs(p - p_ref))))
    return {k: np.array(v) for k, v in values.items()}


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the experiment.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``); see ``--help``.

    Returns:
        ``{"top": [...], "influence": {...}, "unlearning": {...}, "capacity": {...}}``: ``top`` the
        most influential points, most first, each ``{"index", "x", "y", "label", "outlier",
        "param_l2", "boundary_flip", "prob_change"}``; ``influence`` the three measures for every
        point (lists); ``unlearning`` per model (``original``, ``retrained`` and each method) its
        ``boundary_disagreement`` with the retrained model (share of the grid) and its
        ``forget_acc``, ``test_acc`` and ``retain_acc``; ``capacity`` per MLP
        (``"h<width>_d<depth>"``) its ``train_acc`` and ``test_acc``.
    """
    args, extra = parse_args(argv)
    if args.redraw:
        return redraw(args.out)
    out = Path(args.out)
    data = ["--data.init_args.num_train", str(args.num_train), "--data.init_args.num_outliers", str(args.num_outliers),
            "--data.init_args.data_seed", str(args.data_seed)]
    schedule = ["--trainer.max_epochs", str(args.epochs), "--trainer.check_val_every_n_epoch", str(args.epochs),
                "--last_checkpoint.every_n_epochs", str(args.epochs)]
    net = ["--model.init_args.net.init_args.hidden", str(args.hidden),
           "--model.init_args.net.init_args.depth", str(args.depth)]
    common = [*data, *schedule, *net, *extra]

    setup = evaluation_setup(PRESET / "original.yaml", [*data, *extra])
    dm = setup[1]
    dm.setup()
    x, y = dm.arrays.train_x.numpy(), dm.arrays.train_y.numpy()
    outliers = np.arange(args.num_train) >= args.num_train - args.num_outliers

    # 1. boundaries by capacity
    capacity: dict[str, dict[str, float]] = {}
    sweep = out / "capacity"
    probs = {}
    for depth in args.depths:
        for width in args.widths:
            name = f"h{width}_d{depth}"
            ckpt = fit_stage(PRESET / "original.yaml", [
                *data, *schedule, "--model.init_args.net.init_args.hidden", str(width),
                "--model.init_args.net.init_args.depth", str(depth), *NO_VALIDATION, *extra,
                "--trainer.logger.init_args.save_dir", str(sweep), "--trainer.logger.init_args.name", name],
                reuse=False)
            probs[name] = grid_probability(ckpt)[0]
            metrics, outputs = evaluate_with_outputs(ckpt, PRESET / "original.yaml", setup=setup)
            capacity[name] = {"train_acc": pooled_accuracy(metrics, outputs), "test_acc": metrics["test_acc"]}

    # 2. leave-one-out influence
    reference = fit_stage(PRESET / "original.yaml", [
        *common, "--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", "original"],
        reuse=False)
    scores = influence(args, common, reference)
    order = np.lexsort((-scores["prob_change"], -scores["boundary_flip"]))
    top = [{"index": int(i), "x": float(x[i, 0]), "y": float(x[i, 1]), "label": int(y[i]), "outlier": bool(outliers[i]),
            **{k: float(v[i]) for k, v in scores.items()}} for i in order[:5]]

    # 3. unlearn the most influential points
    forget = np.sort(order[: args.forget_top])
    forget_file = out / "unlearn" / f"forget_top{args.forget_top}.txt"
    forget_file.parent.mkdir(parents=True, exist_ok=True)
    forget_file.write_text(" ".join(str(int(i)) for i in forget) + "\n")
    split = [*common, "--data.init_args.forget_index_file", str(forget_file)]
    stage_dir = ["--trainer.logger.init_args.save_dir", str(out / "unlearn")]
    unlearn_schedule = [] if args.unlearn_epochs is None else [
        "--trainer.max_epochs", str(args.unlearn_epochs), "--trainer.check_val_every_n_epoch", str(args.unlearn_epochs)]
    oracle = fit_stage(PRESET / "retrain.yaml", [*split, *stage_dir, "--trainer.logger.init_args.name", "retrain"],
                       reuse=False)
    models = {"original": reference, "retrained": oracle}
    for method in args.methods:
        models[method] = fit_stage(PRESET / "unlearn" / f"{method}.yaml", [
            *data, "--data.init_args.forget_index_file", str(forget_file), *unlearn_schedule, *extra, *stage_dir,
            "--model.init_args.original", str(reference), "--model.init_args.oracle", str(oracle)], reuse=False)
    setup = evaluation_setup(PRESET / "retrain.yaml", split)
    p_oracle = grid_probability(oracle)[0]
    unlearning: dict[str, dict[str, float]] = {}
    unlearn_probs = {}
    for name, ckpt in models.items():
        p = grid_probability(ckpt)[0]
        unlearn_probs[name] = p
        metrics = evaluate_checkpoint(ckpt, PRESET / "retrain.yaml", setup=setup)
        unlearning[name] = {"boundary_disagreement": float(np.mean((p > 0.5) != (p_oracle > 0.5))),
                            **{k: metrics[k] for k in ("forget_acc", "test_acc", "retain_acc")}}

    result = {"top": top, "influence": {k: v.tolist() for k, v in scores.items()}, "unlearning": unlearning,
              "capacity": capacity}
    save_results(args, result, x, y, outliers, order, forget, probs, unlearn_probs)
    write_figures(args, x, y, outliers, probs, capacity, scores, order, forget, unlearn_probs, unlearning)
    report(top, unlearning)
    return result


#: the flags the figures depend on, kept in results.json for --redraw
FIGURE_FLAGS = ("widths", "depths", "hidden", "depth")


def save_results(args: argparse.Namespace, result: dict[str, Any], x: np.ndarray, y: np.ndarray,
                 outliers: np.ndarray, order: np.ndarray, forget: np.ndarray, probs: dict[str, np.ndarray],
                 unlearn_probs: dict[str, np.ndarray]) -> None:
    """Write what the figures are drawn from into ``--out``: ``results.json`` (the returned numbers,
    the points, the ranking, the forget set and the flags the figures name) and ``grids.npz`` (the
    probability of class 1 over the plane of every model drawn: ``capacity/<name>``, ``unlearn/<name>``).
    """
    out = Path(args.out)
    saved = {**result, "points": x.tolist(), "labels": y.tolist(), "outliers": outliers.tolist(),
             "order": order.tolist(), "forget": forget.tolist(), "flags": {k: getattr(args, k) for k in FIGURE_FLAGS}}
    (out / "results.json").write_text(json.dumps(saved, indent=1) + "\n")
    np.savez_compressed(out / "grids.npz", **{f"capacity/{k}": v.astype(np.float32) for k, v in probs.items()},
                        **{f"unlearn/{k}": v.astype(np.float32) for k, v in unlearn_probs.items()})


def redraw(out: str) -> dict[str, object]:
    """Draw the figures again from the ``results.json`` and ``grids.npz`` of an earlier run in ``out``.

    Returns:
        The numbers that run returned (see :func:`main`).

    Raises:
        FileNotFoundError: if either file is missing.
    """
    folder = Path(out)
    for name in ("results.json", "grids.npz"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"--redraw: no {folder / name}; run the example once without --redraw")
    saved = json.loads((folder / "results.json").read_text())
    with np.load(folder / "grids.npz") as grids:
        probs = {k.split("/", 1)[1]: grids[k] for k in grids.files if k.startswith("capacity/")}
        unlearn_probs = {k.split("/", 1)[1]: grids[k] for k in grids.files if k.startswith("unlearn/")}
    args = argparse.Namespace(out=out, **saved["flags"])
    scores = {k: np.array(v) for k, v in saved["influence"].items()}
    write_figures(args, np.array(saved["points"]), np.array(saved["labels"]), np.array(saved["outliers"], dtype=bool),
                  probs, saved["capacity"], scores, np.array(saved["order"]), np.array(saved["forget"]),
                  unlearn_probs, saved["unlearning"])
    print(f"figures in {out}/ (boundaries.png, influence.png, unlearning.png)")
    return {k: saved[k] for k in ("top", "influence", "unlearning", "capacity")}


def write_figures(args: argparse.Namespace, x: np.ndarray, y: np.ndarray, outliers: np.ndarray,
                  probs: dict[str, np.ndarray], capacity: dict[str, dict[str, float]], scores: dict[str, np.ndarray],
                  order: np.ndarray, forget: np.ndarray, unlearn_probs: dict[str, np.ndarray],
                  unlearning: dict[str, dict[str, float]]) -> None:
    """Write ``boundaries.png``, ``influence.png`` and ``unlearning.png``, and to TensorBoard.

    Args:
        args: the example's flags.
        x: training points, ``N x 2``.
        y: their classes.
        outliers: which points are outliers.
        probs: probability of class 1 on the grid of each MLP of the capacity sweep.
        capacity: train and test accuracy of each MLP of the sweep.
        scores: the leave-one-out influence measures, from :func:`influence`.
        order: point indices, most influential first.
        forget: indices of the unlearned points.
        unlearn_probs: probability of class 1 on the grid of each model of the unlearning comparison.
        unlearning: the numbers of the unlearning comparison.
    """
    import matplotlib.pyplot as plt

    with FigureWriter(args.out) as writer:
        rows, cols = len(args.depths), len(args.widths)
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False)
        for r, depth in enumerate(args.depths):
            for c, width in enumerate(args.widths):
                name = f"h{width}_d{depth}"
                acc = capacity[name]
                ax = axes[r][c]
                draw(ax, probs[name], x, y, outliers,
                     f"width {width}, depth {depth}: train {acc['train_acc']:.2f}, test {acc['test_acc']:.2f}")
                plane(ax, xlabel=r == rows - 1, ylabel=c == 0)
        fig.suptitle("Decision boundaries by MLP capacity (accuracy: higher is better)\n"
                     "shading: p(class 1), red = class 1, blue = class 0; stars: outliers", fontsize=11)
        fig.tight_layout()
        writer.add_figure("boundaries", fig)

        p_ref = unlearn_probs["original"]
        measures = {
            "param_l2": ("parameters change",
                         "L2 norm of the parameter change\n(higher: the point moves the model more)"),
            "boundary_flip": ("class flips",
                              "share of the plane whose class flips\n(higher: the point moves the boundary more)"),
            "prob_change": ("probability changes",
                            "mean |change of p(class 1)| over the plane\n(higher: the point moves the boundary more)"),
        }
        ranked = order[:5]
        fig, axes = plt.subplots(1, 3, figsize=(16.5, 5.2))
        boundaries = []
        for ax, (key, (title, colour)) in zip(axes, measures.items()):
            boundaries.append(ax.contour(GRID_X, GRID_Y, p_ref, levels=[0.5], colors="k", linewidths=1.2))
            style = dict(cmap="viridis", vmin=scores[key].min(), vmax=scores[key].max(), marker="o", linewidths=0.8)
            sc = ax.scatter(x[:, 0], x[:, 1], c=scores[key], s=np.where(outliers, 60, 18),
                            edgecolors=np.where(y == 1, "tab:red", "tab:blue"), **style)
            # the ranked points again on top, the smallest last: none hides under a neighbour's marker
            top = ranked[np.argsort(-np.where(outliers[ranked], 60, 18), kind="stable")]
            ax.scatter(x[top, 0], x[top, 1], c=scores[key][top], s=np.where(outliers[top], 60, 18),
                       edgecolors=np.where(y[top] == 1, "tab:red", "tab:blue"), zorder=3, **style)
            fig.colorbar(sc, ax=ax).set_label(colour, fontsize=9)
            ax.set_title(f"Leaving each point out: {title}", fontsize=10)
            plane(ax)
        fig.suptitle(f"Influence of each training point by leave-one-out (MLP width {args.hidden}, depth {args.depth})"
                     "\n#1-#5: the points that flip the most of the plane; large: outliers; "
                     "edge colour: class (red 1, blue 0); line: boundary of the model trained on every point",
                     fontsize=11)
        fig.tight_layout()
        for ax, boundary in zip(axes, boundaries):  # once the layout is fixed
            label_ranks(ax, x, ranked, boundary)
        writer.add_figure("influence", fig)

        names = list(unlearn_probs)
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
        for c, (ax, name) in enumerate(zip(axes[0], names)):
            row = unlearning[name]
            draw(ax, unlearn_probs[name], x, y, outliers,
                 f"{name}: {100 * row['boundary_disagreement']:.1f}% of the plane\ndiffers from retrained",
                 marked=forget, reference=None if name == "retrained" else unlearn_probs["retrained"])
            plane(ax, ylabel=c == 0)
        fig.suptitle(f"Unlearning the {len(forget)} most influential points (crosses): each model's boundary (solid) "
                     "against the boundary retrained without them (dashed)\nshare of the plane where they differ: "
                     "lower is better; shading: p(class 1); stars: outliers", fontsize=11)
        fig.tight_layout()
        writer.add_figure("unlearning", fig)

        for key, values in scores.items():
            top = {f"top{rank + 1}": values[i] for rank, i in enumerate(order[:5])}
            writer.add_scalars(top, prefix=f"influence/{key}")
        for name, row in unlearning.items():
            writer.add_scalars(row, prefix=f"unlearning/{name}")


def report(top: list[dict], unlearning: dict[str, dict[str, float]]) -> None:
    """Print the most influential points and the unlearning comparison as Markdown tables.

    Args:
        top: the most influential points, as returned by :func:`main`.
        unlearning: the numbers of the unlearning comparison, as returned by :func:`main`.
    """
    print("\nMost influential training points (leave-one-out):")
    print("| rank | index | (x, y) | class | outlier | param L2 | grid flipped | mean |dp| |")
    print("|---:|---:|---|---:|---|---:|---:|---:|")
    for rank, t in enumerate(top, 1):
        print(f"| {rank} | {t['index']} | ({t['x']:.2f}, {t['y']:.2f}) | {t['label']} "
              f"| {'yes' if t['outlier'] else 'no'} | {t['param_l2']:.4f} | {t['boundary_flip']:.4f} "
              f"| {t['prob_change']:.4f} |")
    print("\nUnlearning them:")
    print("| model | boundary disagreement with retrained | forget acc | retain acc | test acc |")
    print("|---|---:|---:|---:|---:|")
    for name, row in unlearning.items():
        print(f"| {name} | {row['boundary_disagreement']:.4f} | {row['forget_acc']:.3f} | {row['retain_acc']:.3f} "
              f"| {row['test_acc']:.3f} |")


if __name__ == "__main__":
    run_script(main, "two_circles")
