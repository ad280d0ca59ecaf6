"""The whole workflow on the CPU preset: original, retrain oracle, unlearning, comparison.

    python examples/quickstart.py --root ../shared/data/cifar10-jpeg

Trains the original (small CNN on a 10k-image CIFAR-10 subset) and the retrain oracle, unlearns
the forget set with fine-tuning (the starting kit's baseline) and with the discriminator method
(the seed's GAN-style idea: fool a membership attacker), then tests all of them on the same split
and prints one table, where the logs went and what to run next. Stages whose checkpoint already
exists are reused (``--retrain`` to redo them). Without ``--root`` CIFAR-10 is downloaded by
torchvision (needs network). Each stage shows its progress bar; ``-v`` (or
``UNLEARNING_VERBOSE=1``) adds Lightning's own output (model summaries, seeds, devices, tips).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from unlearning.pipeline import run_comparison, stage_checkpoint
from unlearning.scripts import add_verbose_flag
from unlearning.tables import markdown_table

PRESET = Path("configs/cpu")
SCORE_METHODS = Path("configs/score/methods")


def next_steps(methods: Sequence[str], common: Sequence[str], root: str | None) -> str:
    """What the quickstart prints after its table: where each stage's logs and checkpoints went,
    how to view them, and the command that scores a method.

    Args:
        methods: the methods run (names of ``configs/cpu/unlearn/<name>.yaml``).
        common: the overrides every stage got (they may move the run folders).
        root: ``--root``, passed on to the score command.

    Returns:
        The lines, joined.
    """
    configs = [PRESET / "original.yaml", PRESET / "retrain.yaml", *(PRESET / "unlearn" / f"{m}.yaml" for m in methods)]
    runs = [stage_checkpoint(c, common).parent.parent for c in configs]
    try:
        logdir = Path(os.path.commonpath(runs))
    except ValueError:  # relative and absolute folders: no common one
        logdir = runs[0].parent
    scored = next((m for m in methods if (SCORE_METHODS / f"{m}.yaml").is_file()), "finetune")
    data = f" --data.init_args.root {root}" if root else ""
    return "\n".join([
        f"Logs (TensorBoard) and checkpoints: {', '.join(str(r) for r in runs)}",
        f"  view them: tensorboard --logdir {logdir}",
        "Next: score a method (N runs of it against 2N oracles, as the NeurIPS 2023 competition did):",
        f"  unlearning score -c configs/score/cpu.yaml --method {SCORE_METHODS / scored}.yaml{data}",
    ])


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the comparison and print its table and what comes next.

    Args:
        argv: the command line (default ``sys.argv[1:]``); arguments it does not know are passed
            on to every stage.

    Returns:
        ``{row name: test metrics}``, as :func:`~unlearning.pipeline.run_comparison` returns them.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="local CIFAR-10: an image folder or torchvision's batches")
    p.add_argument("--methods", nargs="+", default=["finetune", "discriminator"],
                   help="configs/cpu/unlearn/<name>.yaml to run (default: finetune discriminator)")
    p.add_argument("--retrain", action="store_true", help="train every stage again even if its checkpoint exists")
    add_verbose_flag(p)
    args, extra = p.parse_known_args(argv)
    common = (["--data.init_args.root", args.root] if args.root else []) + extra
    rows = run_comparison(args.methods, common, reuse=not args.retrain)
    print()
    print(markdown_table(rows))
    print()
    print(next_steps(args.methods, common, args.root))
    return rows


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        message = str(err).replace("--data.init_args.root PATH", "--root PATH")
        print(f"quickstart: error: {message}", file=sys.stderr)
        sys.exit(2)
