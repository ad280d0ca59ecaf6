"""The fast oracle recipe against ResNet-18 and the small CNN on CPU, side by side in one run.

Trains three originals through ``unlearning fit`` (the same ``Classifier``, data module and cost
accounting as every stage), each with its own recipe, on the same CIFAR-10 subset, the same split
and the same number of epochs, evaluating after every epoch:

- ``fast``: ``configs/fast/cpu_original.yaml``, the fast recipe after Keller Jordan's airbench94
  (FastCifarNet of widths 32/64/64, whitened first layer, Nesterov SGD with a piecewise-linear
  schedule, label smoothing, lookahead; its test accuracy is flip-averaged);
- ``resnet18``: ``configs/original.yaml``, the starting kit's recipe (torchvision ResNet-18, SGD,
  cosine);
- ``small_cnn``: ``configs/cpu/original.yaml``, the CPU presets' small CNN (width 16).

Every run gets the same data settings (``--train_subset``, ``--heldout_subset``, ``--augment``), so
only the network and the optimisation differ. Training speed is the project's cost accounting:
images trained on per second of training wall time (evaluation excluded; the fast recipe's
whitening initialisation included). Prints a table and writes ``benchmarks/results/fast_cpu.json``
and ``.md``.

    python benchmarks/fast_cpu.py --root ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from unlearning.cli import main as cli_main

RECIPES = {
    "fast": "configs/fast/cpu_original.yaml",
    "resnet18": "configs/original.yaml",
    "small_cnn": "configs/cpu/original.yaml",
}


def epoch_rows(metrics_csv: Path) -> list[dict[str, float]]:
    """The evaluation after each epoch, from a ``CSVLogger``'s ``metrics.csv``: test, train-stream
    (retain sample, forget) accuracies and the cumulative cost."""
    rows: dict[int, dict[str, float]] = {}
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            if row.get("val/test_acc") not in (None, ""):
                rows[int(float(row["epoch"]))] = {k: float(v) for k, v in row.items() if v not in ("", None)}
    out, prev_time, prev_images = [], 0.0, 0.0
    for epoch in sorted(rows):
        r = rows[epoch]
        t, n = r["val/cost_time_s"], r["val/cost_images"]
        out.append({"epoch": epoch + 1, "test_acc": r["val/test_acc"], "retain_acc": r["val/retain_acc"],
                    "forget_acc": r["val/forget_acc"], "train_time_s": t, "images": n,
                    "images_per_s": (n - prev_images) / max(t - prev_time, 1e-9)})
        prev_time, prev_images = t, n
    return out


def run_recipe(name: str, config: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Fit one recipe for ``args.epochs`` epochs and return its per-epoch evaluations."""
    argv = [
        "fit", "-c", config,
        "--data.init_args.root", args.root,
        "--data.init_args.train_subset", str(args.train_subset),
        "--data.init_args.heldout_subset", str(args.heldout_subset),
        "--data.init_args.retain_eval_size", str(args.retain_eval_size),
        "--data.init_args.augment", str(args.augment).lower(),
        "--trainer.max_epochs", str(args.epochs),
        "--trainer.check_val_every_n_epoch", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir", str(work), "--trainer.logger.name", name, "--trainer.logger.version", "",
        "--model.init_args.log_distributions", "false",
    ]
    start = time.perf_counter()
    cli = cli_main(argv)
    wall = time.perf_counter() - start
    (metrics_csv,) = (work / name).rglob("metrics.csv")
    net = cli.model.net
    return {"config": config, "net": type(net).__name__, "params": sum(p.numel() for p in net.parameters()),
            "batch_size": cli.datamodule.batch_size, "wall_s": wall, "epochs": epoch_rows(metrics_csv)}


def tables(results: dict[str, dict[str, Any]]) -> str:
    """A summary table per recipe and the test accuracy after each epoch, side by side."""
    names = list(results)
    lines = ["| recipe | network | params | batch | train images/s | train time (s) | final test acc | retain acc | forget acc |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        r, last = results[n], results[n]["epochs"][-1]
        lines.append(f"| {n} | {r['net']} | {r['params']:,} | {r['batch_size']} | "
                     f"{last['images'] / last['train_time_s']:.0f} | {last['train_time_s']:.1f} | "
                     f"{last['test_acc']:.3f} | {last['retain_acc']:.3f} | {last['forget_acc']:.3f} |")
    lines += ["", "| epoch | " + " | ".join(f"{n} test acc | {n} images/s" for n in names) + " |",
              "|---:|" + "---:|---:|" * len(names)]
    for i in range(max(len(results[n]["epochs"]) for n in names)):
        cells = []
        for n in names:
            e = results[n]["epochs"]
            cells += [f"{e[i]['test_acc']:.3f}", f"{e[i]['images_per_s']:.0f}"] if i < len(e) else ["", ""]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="CIFAR-10 image folder")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), help="recipes to train")
    p.add_argument("--epochs", type=int, default=6, help="epochs of every recipe (its schedule spans them)")
    p.add_argument("--train_subset", type=int, default=4000, help="training images (10%% of them are the forget set)")
    p.add_argument("--heldout_subset", type=int, default=2000, help="held-out images, split into val and test")
    p.add_argument("--retain_eval_size", type=int, default=1000, help="retain images evaluated")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random crop + flip for every recipe (the fast recipe's setting; the small CNN's preset has none)")
    p.add_argument("--out", default="benchmarks/results/fast_cpu", help="output path without suffix")
    args = p.parse_args()

    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            print(f"training {name} ({RECIPES[name]}) ...", flush=True)
            results[name] = run_recipe(name, RECIPES[name], args, Path(tmp))
    wall = time.perf_counter() - start
    table = tables(results)
    print()
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    header = (
        "# The fast oracle recipe on CPU, against ResNet-18 and the small CNN\n\n"
        f"Each recipe's own network, optimiser, schedule and batch size (`configs/fast/cpu_original.yaml`, "
        f"`configs/original.yaml`, `configs/cpu/original.yaml`), all on the same {args.train_subset:,}-image "
        f"CIFAR-10 subset (10% random forget set, split seed 0), {'with' if args.augment else 'without'} crop + flip, "
        f"{args.epochs} epochs, seed 0; test = half of a {args.heldout_subset:,}-image held-out subset. Images/s: "
        "images trained on per second of training wall time (the project's cost accounting: evaluation excluded, "
        "the fast recipe's whitening initialisation included); the fast recipe's test accuracy is flip-averaged.\n\n"
        f"Produced by `python benchmarks/fast_cpu.py` in {wall / 60:.1f} min on {platform.machine()} "
        f"({threads} thread{'s' if threads != 1 else ''}), torch {torch.__version__}.\n\n"
    )
    out.with_suffix(".md").write_text(header + table)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "results": results, "wall_s": wall,
                                                    "threads": threads,
                                                    "torch": str(torch.__version__)}, indent=2))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
