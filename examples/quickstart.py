"""The whole workflow on the CPU preset: original, retrain oracle, unlearning, comparison.

    python examples/quickstart.py --root ../shared/data/cifar10-jpeg

Trains the original (small CNN on a 10k-image CIFAR-10 subset) and the retrain oracle, unlearns
the forget set with fine-tuning (the starting kit's baseline), then tests all three on the same
split and prints one table. Stages whose checkpoint already exists are reused (``--retrain`` to
redo them). Without ``--root`` CIFAR-10 is downloaded by torchvision (needs network).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearning.pipeline import evaluate_checkpoint, fit_stage, markdown_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="local CIFAR-10: an image folder or torchvision's batches")
    p.add_argument("--methods", nargs="+", default=["finetune"],
                   help="configs/cpu/unlearn/<name>.yaml to run (default: finetune)")
    p.add_argument("--retrain", action="store_true", help="train every stage again even if its checkpoint exists")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further overrides passed to every stage, e.g. --extra --trainer.max_epochs 1")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    common = (["--data.init_args.root", args.root] if args.root else []) + list(args.extra)
    original = fit_stage("configs/cpu/original.yaml", common, reuse=not args.retrain)
    oracle = fit_stage("configs/cpu/retrain.yaml", common, reuse=not args.retrain)
    unlearned = {}
    for name in args.methods:
        cfg = Path("configs/cpu/unlearn") / f"{name}.yaml"
        if not cfg.is_file():
            raise SystemExit(f"quickstart: error: no config {cfg} (method {name!r})")
        overrides = [*common, "--model.init_args.original", str(original), "--model.init_args.oracle", str(oracle)]
        unlearned[name] = fit_stage(cfg, overrides, reuse=not args.retrain)
    rows = {
        "original": evaluate_checkpoint(original, "configs/cpu/original.yaml", common, oracle=oracle),
        "oracle (retrain)": evaluate_checkpoint(oracle, "configs/cpu/original.yaml", common, oracle=oracle),
    }
    for name, ckpt in unlearned.items():
        rows[name] = evaluate_checkpoint(ckpt, "configs/cpu/original.yaml", common, oracle=oracle)
    print()
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    try:
        run()
    except (FileNotFoundError, ValueError) as err:
        print(f"quickstart: error: {err}", file=sys.stderr)
        sys.exit(2)
