"""The memorisation study on the CPU preset (real CIFAR-10): how well each cheap proxy ranks the
examples as the Feldman-Zhang estimate does.

A thin call of ``unlearning memorise -c configs/memorisation/cpu.yaml`` (K subset models cached
beside the score's models, the original with its training-dynamics proxies), then a summary in
``benchmarks/results/memorisation_cpu.json``: per proxy its ``spearman`` against the estimate, the
estimate's ``n_models`` (K), the entanglement of the forget set, the wall time and the images
processed (trained on and predicted). From an empty cache it trains K + 1 models (about 18 min on
one core for K = 32); a rerun costs seconds. ``--n_models 2 --epochs 1`` checks that it works.

    python benchmarks/memorisation_cpu.py --root ../shared/data/cifar10-jpeg --threads 1
    python benchmarks/memorisation_cpu.py --n_models 2 --epochs 1 --out runs/memorisation/check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from unlearning.memorisation import main as memorise


#: how the proxies are oriented (as the scores file stores them)
SIGN = "1 - the mean over the original's training (higher = more memorised)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg",
                   help="local CIFAR-10 copy ('' keeps the config's data as it is, e.g. synthetic)")
    p.add_argument("--config", default="configs/memorisation/cpu.yaml", help="the memorise config")
    p.add_argument("--n_models", type=int, default=None, help="K (default: the config's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (default: the config's recipe_args)")
    p.add_argument("--jobs", type=int, default=None, help="trainings at once")
    p.add_argument("--cache_dir", default="runs/score/cache")
    p.add_argument("--output_dir", default="runs/memorisation", help="where the scores and figures go")
    p.add_argument("--out", default="benchmarks/results/memorisation_cpu.json", help="the summary")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 keeps a shared machine from oversubscribing")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cli = ["-c", args.config, "--cache_dir", args.cache_dir, "--output_dir", args.output_dir, "--progress", "false"]
    if args.root:
        cli += ["--data.init_args.root", args.root]
    if args.n_models is not None:
        cli += ["--n_models", str(args.n_models)]
    if args.epochs is not None:
        cli += ["--recipe_args", json.dumps(["--trainer.max_epochs", str(args.epochs)])]
    if args.jobs is not None:
        cli += ["--jobs", str(args.jobs)]
    t0 = time.perf_counter()
    result = memorise(cli)
    wall = time.perf_counter() - t0
    summary = {
        "command": " ".join(["python benchmarks/memorisation_cpu.py", *(sys.argv[1:] if argv is None else argv)]),
        "n_models": result["n_models"],
        "subset_fraction": result["subset_fraction"],
        "num_examples": result["num_examples"],
        "num_without_estimate": result["num_without_estimate"],
        "proxies": {name: {"spearman": rho, "sign": SIGN}
                    for name, rho in result["spearman"].items()},
        "entanglement": result["entanglement"],
        "estimate": result["estimate"],
        "setting_digest": result["setting_digest"],
        "scores_sha256": result["scores_sha256"],
        "models_trained": result["timings"]["models_trained"],
        "wall_s": wall,
        "images_processed": result["timings"]["images_processed"],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "versions": result["versions"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"memorisation_cpu: K = {summary['n_models']}, " + ", ".join(
        f"{k} Spearman {v['spearman']}" for k, v in summary["proxies"].items()) + f"; {wall / 60:.1f} min; wrote {out}")
    return summary


if __name__ == "__main__":
    main()
