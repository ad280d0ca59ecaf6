"""The whole workflow on the CPU preset: original, retrain oracle, unlearning, comparison.

    python examples/quickstart.py --root ../shared/data/cifar10-jpeg

Trains the original (small CNN on a 10k-image CIFAR-10 subset) and the retrain oracle, unlearns
the forget set with fine-tuning (the starting kit's baseline) and with the discriminator method
(the seed's GAN-style idea: fool a membership attacker), then tests all of them on the same split
and prints one table. Stages whose checkpoint already exists are reused (``--retrain`` to
redo them). Without ``--root`` CIFAR-10 is downloaded by torchvision (needs network).
"""

from __future__ import annotations

import argparse
import sys

from unlearning.pipeline import run_comparison
from unlearning.tables import markdown_table


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="local CIFAR-10: an image folder or torchvision's batches")
    p.add_argument("--methods", nargs="+", default=["finetune", "discriminator"],
                   help="configs/cpu/unlearn/<name>.yaml to run (default: finetune discriminator)")
    p.add_argument("--retrain", action="store_true", help="train every stage again even if its checkpoint exists")
    args, extra = p.parse_known_args(argv)
    common = (["--data.init_args.root", args.root] if args.root else []) + extra
    rows = run_comparison(args.methods, common, reuse=not args.retrain)
    print()
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        message = str(err).replace("--data.init_args.root PATH", "--root PATH")
        print(f"quickstart: error: {message}", file=sys.stderr)
        sys.exit(2)
