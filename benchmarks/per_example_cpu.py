"""Per-example view of the CPU matrix: on the random scenario, each forget example's epsilon and
margin gap against its memorisation, for the best and the worst method within the cost limit.

Reads only what earlier runs left: the matrix of ``unlearning leaderboard -c
configs/leaderboard/scenarios_cpu.yaml`` (``--leaderboard_dir``), the cached models' margins
(``--cache_dir``) and the scores of ``unlearning memorise -c configs/memorisation/cpu.yaml``
(``--scores``); it trains nothing and takes seconds (:mod:`unlearning.scoring.per_example`).
Writes ``benchmarks/results/per_example_cpu.json`` (per method: the Spearman correlation of
epsilon and of the margin gap with the estimate and with the confidence proxy, and their medians in
equal-count bins) and ``per_example_cpu.png`` (a scatter per method and measure, the binned
medians as a line).

    python benchmarks/per_example_cpu.py
    python benchmarks/per_example_cpu.py --methods finetune ssd --scenario high_memorisation --out runs/per_example.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from unlearning.callbacks.figures import FigureWriter
from unlearning.scoring.per_example import per_example_figure, per_example_study


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leaderboard_dir", default="runs/leaderboard/scenarios_cpu",
                   help="the matrix's output folder (a folder per scenario)")
    p.add_argument("--cache_dir", default="runs/score/cache", help="the model cache the matrix was scored into")
    p.add_argument("--scores", default="runs/memorisation/cpu/memorisation.npz",
                   help="the memorisation scores of the same data")
    p.add_argument("--scenario", default="random", help="the scenario of the matrix to look at")
    p.add_argument("--methods", nargs="*", default=None,
                   help="methods to look at (default: the best and the worst within the cost limit)")
    p.add_argument("--bins", type=int, default=8, help="equal-count bins of memorisation for the medians")
    p.add_argument("--root", default=None, help="where the data lives, if the forget set must be split again")
    p.add_argument("--out", default="benchmarks/results/per_example_cpu.json", help="the summary; the figure goes beside it")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    summary, arrays = per_example_study(args.leaderboard_dir, args.scores, args.cache_dir, args.scenario,
                                        args.methods or None, args.bins, args.root)
    summary["wall_s"] = time.perf_counter() - t0
    summary["command"] = " ".join(["python benchmarks/per_example_cpu.py", *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with FigureWriter(out.parent, tensorboard=False) as figures:
        figures.add_figure(out.stem, per_example_figure(summary, arrays))
    for name, entry in summary["methods"].items():
        rho = entry["spearman"].get("estimate", {})
        print(f"per_example_cpu: {name} ({entry['role']}): Spearman of epsilon with the estimate "
              f"{rho.get('epsilon')}, of the margin gap {rho.get('margin_gap')}", flush=True)
    print(f"per_example_cpu: wrote {out} and {out.with_suffix('.png')}", flush=True)
    return summary


if __name__ == "__main__":
    main()
