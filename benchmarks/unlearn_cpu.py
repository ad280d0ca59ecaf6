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

from unlearning.pipeline import COLUMNS, markdown_table, run_comparison


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
        "on losses, forget vs test, 10-fold CV accuracy (0.5 = chance); MIA-efficacy = share of forget called "
        "non-member by an SVC trained on retain vs test confidences; cost = training wall time as a fraction "
        "of the oracle's.\n\n"
        f"Produced by `python benchmarks/unlearn_cpu.py{' --reuse' if args.reuse else ''}` in {wall / 60:.1f} min "
        f"on {platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"
        f"{' (method checkpoints reused where they existed; train times are those recorded in them)' if args.reuse else ''}.\n\n"
    )
    (out.with_suffix(".md")).write_text(header + table + "\n")
    (out.with_suffix(".json")).write_text(json.dumps({"rows": rows, "wall_s": wall, "torch": str(torch.__version__)}, indent=2))
    print(f"wrote {out}.md and {out}.json")


if __name__ == "__main__":
    main()
