"""Models per hour of the score's trainings with K = 1, 2, ... workers (``unlearning score --jobs K``).

Each setting trains the same number of CPU-preset oracles (``configs/score/cpu.yaml``: the small
CNN on the 4,000-image subset, 8 epochs) from an empty cache of its own, through the same code the
score uses (:func:`unlearning.scoring.schedule.train_plan`): K worker processes with
``threads / K`` torch threads each, claiming models from one plan. The settings alternate in
rounds, so that a change of the machine's load hits all of them; run it alone.

Prints a table and writes ``benchmarks/results/score_parallel.json`` (and ``.md``).

    python benchmarks/score_parallel.py --root ../shared/data/cifar10-jpeg --jobs 1 2 --models 4
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from unlearning.scoring.cache import RecipeCache
from unlearning.scoring.cached_model import load_stage_config, stage_recipe
from unlearning.scoring.schedule import Job, TrainPlan, train_plan


def time_plan(cfg: dict[str, Any], data: dict[str, Any], recipe_args: list[str], k: int, models: int,
              seed_base: int, cache_dir: Path) -> float:
    """Wall time of training ``models`` oracles with ``k`` workers into an empty cache."""
    oracle = cfg["oracle"]
    cache = RecipeCache(cache_dir, "oracle", stage_recipe(load_stage_config(oracle, "oracle"), recipe_args, data))
    plan = TrainPlan(data, [Job("oracle", cache, seed_base + s, oracle, tuple(recipe_args)) for s in range(models)],
                     oracle, None, 0)
    t0 = time.perf_counter()
    train_plan(plan, k, None, cache_dir, tqdm(total=models, disable=True))
    wall = time.perf_counter() - t0
    if plan.done() != models:
        raise RuntimeError(f"K = {k}: {plan.done()} of {models} models in the cache")
    return wall


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--config", default="configs/score/cpu.yaml", help="the score setting whose oracles are trained")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the K to compare")
    p.add_argument("--models", type=int, default=4, help="oracles per setting and round")
    p.add_argument("--rounds", type=int, default=1, help="rounds of all settings (alternating)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in all (default: torch's)")
    p.add_argument("--out", default="benchmarks/results/score_parallel")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    cfg = yaml.safe_load(Path(args.config).read_text())
    data = json.loads(json.dumps(cfg["data"]))
    data["init_args"]["root"] = args.root
    recipe_args = [str(a) for a in cfg.get("recipe_args") or []]
    walls: dict[int, list[float]] = {k: [] for k in args.jobs}
    tmp = Path(tempfile.mkdtemp(prefix="score-parallel-"))
    start = time.perf_counter()
    try:
        for r in range(args.rounds):
            for k in args.jobs:
                cache_dir = tmp / f"round{r}-k{k}"
                wall = time_plan(cfg, data, recipe_args, k, args.models, 5000 + 100 * r, cache_dir)
                walls[k].append(wall)
                print(f"round {r}: K = {k}: {args.models} oracles in {wall:.1f} s", flush=True)
                shutil.rmtree(cache_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(walls[args.jobs[0]])
    rows = {}
    for k, w in walls.items():
        med = statistics.median(w)
        rows[str(k)] = {"walls_s": w, "median_s": med, "models_per_hour": 3600 * args.models / med,
                        "threads_per_worker": max(1, threads // k), "speedup": base / med}
    lines = [f"| K (workers) | threads each | wall for {args.models} oracles (s, median of {args.rounds}) | "
             "models per hour | speedup over K = " + str(args.jobs[0]) + " |", "|---:|---:|---:|---:|---:|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {r['threads_per_worker']} | {r['median_s']:.1f} | {r['models_per_hour']:.1f} | "
                     f"{r['speedup']:.2f} |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": args.config, "models": args.models, "rounds": args.rounds, "threads": threads,
            "torch": str(torch.__version__), "machine": platform.machine(), "wall_s": time.perf_counter() - start}
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        "# Score trainings in parallel (`unlearning score --jobs K`)\n\n"
        f"CPU-preset oracles of `{args.config}` ({args.models} per setting and round, empty caches), "
        f"{threads} torch threads in all, split among the K workers; settings alternate within each round.\n\n"
        f"Last run: `python benchmarks/score_parallel.py --jobs {' '.join(map(str, args.jobs))} --models {args.models} "
        f"--rounds {args.rounds}` in {meta['wall_s'] / 60:.1f} min on {meta['machine']}, torch {meta['torch']}.\n\n"
        + table + "\n")
    return {**meta, "results": rows}


if __name__ == "__main__":
    main()
