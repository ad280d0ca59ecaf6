"""The NeurIPS 2023 unlearning starting kit's notebook, step by step, through this framework.

    python examples/starting_kit.py --root ../shared/data/cifar10-jpeg

1. Load CIFAR-10 and its split (retain / forget / val / test) and show a grid of training images
   (``images.png``).
2. Train the original model on retain + forget, or reuse its checkpoint; report its train and
   test accuracy.
3. Train the retrain-from-scratch oracle on the retain set only, or reuse its checkpoint (the
   reference every later number is compared with).
4. Unlearn the forget set by fine-tuning the original on the retain set (the kit's baseline);
   report retain and test accuracy.
5. Run the kit's simple membership-inference attack (logistic regression on losses, forget vs
   test; 0.5 is chance) on the original, fine-tuned and retrained models, and draw their forget
   vs test loss histograms (``loss_histograms.png``).

By default the CPU preset (``configs/cpu/``: a small CNN on a 10k-image subset; the original and
oracle are trained in about 2 minutes each, or reused from ``runs/cpu/`` when they exist there);
``--full`` uses the full-scale configs (``configs/``: the kit's ResNet-18 on all 50k images, for a
GPU). Fine-tuning always runs, into ``--out``. Figures are PNG files in ``--out`` and in
TensorBoard under ``--out/summary``. Any further ``--key value`` argument is passed to every stage
and to the evaluation (e.g. ``--trainer.precision bf16-mixed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from unlearning.callbacks import FigureWriter, histogram_panels
from unlearning.pipeline import (
    evaluate_with_outputs,
    evaluation_setup,
    fit_stage,
    pooled_accuracy,
)
from unlearning.scripts import require_positive, run_script, script_parser
from unlearning.tables import COLUMNS, markdown_table

matplotlib.use("Agg")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: (key, column title) of the printed table
TABLE = (("train_acc", "train acc"), *COLUMNS)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The preset and folders of the walkthrough, and the arguments left for the stages.

    Raises:
        ValueError: on a non-positive ``--grid``.
    """
    p = script_parser(__doc__, "runs/examples/starting_kit", cifar_root=True)
    p.add_argument("--full", action="store_true",
                   help="the full-scale configs (configs/, ResNet-18 on 50k images; for a GPU)")
    p.add_argument("--models-dir", default=None,
                   help="folder of the original and oracle runs (default: the configs' own, runs/cpu or runs/full); "
                        "checkpoints found there are reused")
    p.add_argument("--retrain", action="store_true",
                   help="train the original and the oracle again even if their checkpoints exist")
    p.add_argument("--grid", type=int, default=32, help="training images shown in images.png (default: 32)")
    args, extra = p.parse_known_args(argv)
    require_positive(args, "grid")
    return args, extra


def image_grid(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Any:
    """A figure of images in rows of eight, each titled with its class name.

    Args:
        images: uint8 images, ``N x 3 x H x W``.
        labels: their classes, ``N``.
        classes: class names in label order.

    Returns:
        A matplotlib figure.
    """
    import matplotlib.pyplot as plt

    cols = min(8, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.65 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, label in zip(axes.ravel(), images, labels):
        ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(classes[int(label)], fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Walk through the starting kit's notebook and print its numbers.

    Args:
        argv: the flags above and stage overrides (``sys.argv[1:]`` if ``None``).

    Returns:
        ``{"original" | "fine-tuned" | "retrained": numbers}`` with ``train_acc`` (retain and
        forget together), ``retain_acc``, ``forget_acc``, ``val_acc``, ``test_acc``,
        ``simple_mia`` (forget vs test; 0.5 is chance), ``mia_efficacy`` and
        ``cost_time_fraction`` (training time as a fraction of the oracle's).
    """
    args, extra = parse_args(argv)
    preset = CONFIGS if args.full else CONFIGS / "cpu"
    common = [*(["--data.init_args.root", args.root] if args.root else []), *extra]
    stages = [*common, *(["--trainer.logger.init_args.save_dir", args.models_dir] if args.models_dir else [])]

    with FigureWriter(args.out) as writer:
        setup = evaluation_setup(preset / "original.yaml", common)
        dm = setup[1]
        dm.setup()
        split, arrays = dm.split, dm.arrays
        shown = split.train[torch.randperm(len(split.train), generator=torch.Generator().manual_seed(0))[: args.grid]]
        writer.add_figure("images", image_grid(arrays.train_x[shown].cpu().numpy(), arrays.train_y[shown].cpu().numpy(),
                                               arrays.classes))

        original = fit_stage(preset / "original.yaml", stages, reuse=not args.retrain)
        oracle = fit_stage(preset / "retrain.yaml", stages, reuse=not args.retrain)
        finetuned = fit_stage(preset / "unlearn" / "finetune.yaml", [
            *common, "--model.init_args.original", str(original), "--model.init_args.oracle", str(oracle),
            "--trainer.logger.init_args.save_dir", args.out, "--trainer.logger.init_args.name", "finetune"],
            reuse=False)

        rows: dict[str, dict[str, float]] = {}
        losses: dict[str, dict[str, np.ndarray]] = {}
        for name, ckpt in (("original", original), ("fine-tuned", finetuned), ("retrained", oracle)):
            metrics, outputs = evaluate_with_outputs(ckpt, preset / "original.yaml", oracle=oracle, setup=setup)
            rows[name] = {"train_acc": pooled_accuracy(metrics, outputs),
                          **{k: metrics.get(k, float("nan")) for k, _ in COLUMNS}}
            losses[f"{name} (simple MIA {metrics['simple_mia']:.3f})"] = {
                "forget": outputs["forget"]["loss"], "test": outputs["test"]["loss"]}
            writer.add_scalars(rows[name], prefix=name)
        writer.add_figure("loss_histograms", histogram_panels(losses, title="Losses on the forget set vs the test set"))

    o, f, r = rows["original"], rows["fine-tuned"], rows["retrained"]
    print(f"\n1. Data: retain {len(split.retain)}, forget {len(split.forget)}, val {len(split.val)}, "
          f"test {len(split.test)} images ({args.out}/images.png)")
    print(f"2. Original: train accuracy {o['train_acc']:.3f}, test accuracy {o['test_acc']:.3f}")
    print(f"3. Retrained oracle: retain accuracy {r['retain_acc']:.3f}, test accuracy {r['test_acc']:.3f}")
    print(f"4. Fine-tuned: retain accuracy {f['retain_acc']:.3f}, test accuracy {f['test_acc']:.3f}")
    print(f"5. Simple MIA (forget vs test): original {o['simple_mia']:.3f}, fine-tuned {f['simple_mia']:.3f}, "
          f"retrained {r['simple_mia']:.3f} ({args.out}/loss_histograms.png)\n")
    print(markdown_table(rows, TABLE))
    return rows


if __name__ == "__main__":
    run_script(main, "starting_kit")
