"""Every built-in unlearning algorithm on the CPU preset over real CIFAR-10, side by side.

Trains (or reuses) the CPU-preset original and retrain oracle, runs every config under
``configs/cpu/unlearn/`` from that original, tests all models on the same split against the oracle
and writes ``benchmarks/results/unlearn_cpu.md`` and ``.json``.

    python benchmarks/unlearn_cpu.py --root ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from unlearning.pipeline import run_comparison
from unlearning.tables import COLUMNS, markdown_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--methods", nargs="+",
                   default=sorted(f.stem for f in Path("configs/cpu/unlearn").glob("*.yaml")))
    p.add_argument("--reuse", action="store_true",
                   help="reuse the methods' existing checkpoints too (the original and oracle always are)")
    p.add_argument("--out", default="benchmarks/results/unlearn_cpu")
    args = p.parse_args()

    start = time.perf_counter()
    common = ["--data.init_args.root", args.root, "--trainer.enable_progress_bar", "false"]
    rows = run_comparison(args.methods, common, reuse=True, reuse_methods=args.reuse)
    wall = time.perf_counter() - start
    extra = (("cost_time_s", "train time (s)"),)
    table = markdown_table(rows, (*COLUMNS, *extra))
    print()
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Unlearning on the CPU preset (real CIFAR-10)\n\n"
        "Small CNN (width 16) on a 10k-image subset of CIFAR-10 without augmentation, 10% random forget set "
        "(split seed 0), val/test = CIFAR-10's test set split 50/50 (seed 42). One run per method (seed 0). "
        "Accuracies on retain (a 2,000-image sample), forget, val and test; simple MIA = logistic regression "
        "on losses, forget vs test, 10-fold CV accuracy (0.5 = chance); predictive MIA = gradient boosting on the "
        "sorted probabilities, entropy, confidence and loss, forget vs test, balanced, 5-fold CV; MIA-efficacy = share of forget called "
        "non-member by an SVC trained on retain vs test confidences; cost = training wall time as a fraction "
        "of the oracle's.\n\n"
        f"Produced by `python benchmarks/unlearn_cpu.py{' --reuse' if args.reuse else ''}` in {wall / 60:.1f} min "
        f"on {platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"
        f"{' (method checkpoints reused where they existed; train times are those recorded in them)' if args.reuse else ''}.\n\n"
    )
    notes = ""
    curves = Path("runs/cpu/unlearn/streaming/stream_curves.json")
    if "streaming" in args.methods and curves.is_file():  # the stream's curves, request by request
        import shutil

        shutil.copy(curves, out.parent / "streaming_curves.json")
        shutil.copy(curves.with_suffix(".png"), out.parent / "streaming_curves.png")
        history = json.loads(curves.read_text())
        first, last = history[0], history[-1]
        notes = (
            f"\nStreaming (`configs/cpu/unlearn/streaming.yaml`): {int(last['request'])} requests of "
            f"{int(last['forgotten'] / max(1, last['request']))} forget examples, each handled on arrival, no retain "
            f"set. Over the stream, accuracy on everything forgotten so far {first['forgotten_acc']:.3f} -> "
            f"{last['forgotten_acc']:.3f} (oracle {last.get('oracle_forgotten_acc', float('nan')):.3f}), on a "
            f"retain sample {first['retain_acc']:.3f} -> {last['retain_acc']:.3f}, on test {first['test_acc']:.3f} -> "
            f"{last['test_acc']:.3f}; simple MIA (forgotten so far vs test) {first['simple_mia']:.3f} -> "
            f"{last['simple_mia']:.3f} (oracle {last.get('oracle_simple_mia', float('nan')):.3f}). Curves after every "
            "request: `streaming_curves.png`, `streaming_curves.json`.\n\n![streaming curves](streaming_curves.png)\n"
        )
    (out.with_suffix(".md")).write_text(header + table + "\n" + notes)
    (out.with_suffix(".json")).write_text(json.dumps({"rows": rows, "wall_s": wall, "torch": str(torch.__version__)}, indent=2))
    print(f"wrote {out}.md and {out}.json")


if __name__ == "__main__":
    main()
