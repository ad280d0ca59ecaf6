"""The competition's forgetting score of every built-in method on the CPU preset (real CIFAR-10).

Runs ``unlearning score -c configs/score/cpu.yaml`` once per config under ``configs/cpu/unlearn/``
(N = 16 by default: 32 oracles shared by all methods, 16 runs per method, one cache), then writes
``benchmarks/results/score_cpu.md`` and ``.json``. From an empty cache it trains everything; a rerun
costs only what changed (a method's config, the recipe, N).

    python benchmarks/score_cpu.py --root ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from unlearning.scoring.cli import main as score_main
from unlearning.scoring.report import fmt_number
from unlearning.scoring.score import json_ready

COLUMNS = (
    ("forgetting_quality", "F"),
    ("ceiling", "ceiling"),
    ("relative_forgetting", "F / ceiling"),
    ("final_score", "final"),
    ("retain_acc_ratio", "RA ratio"),
    ("test_acc_ratio", "TA ratio"),
)


def table(results: dict[str, dict[str, Any]]) -> str:
    """One row per method: the scores, then simple MIA and cost (mean ± std over the N runs)."""
    head = ["method", *(t for _, t in COLUMNS), "simple MIA", "forget acc", "cost (x oracle)", "over 20%?"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + ":---:|"]
    for name, r in results.items():
        u = r["unlearned"]
        cells = [fmt_number(r[k]) for k, _ in COLUMNS]
        cells += [f"{fmt_number(u[k]['mean'])} ± {fmt_number(u[k]['std'])}" for k in ("simple_mia", "forget_acc", "cost_time_fraction")]
        cells.append("yes" if r["over_cost_limit"] else "no")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _recipe(config: str) -> str:
    """The preset in words, from the score config."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    init = cfg["data"]["init_args"]
    return (f"the CPU preset's network and recipe ({cfg['oracle']}, {cfg['original']}) on a "
            f"{init.get('train_subset') or 'full'}-image CIFAR-10 subset, extra recipe arguments "
            f"`{' '.join(cfg.get('recipe_args') or [])}`, method arguments `{' '.join(cfg.get('method_args') or [])}`")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--config", default="configs/score/cpu.yaml", help="the score config (recipe, split, N)")
    p.add_argument("--n", type=int, default=16, help="N: runs per method (2N oracles)")
    p.add_argument("--methods", nargs="+", default=sorted(f.stem for f in Path("configs/cpu/unlearn").glob("*.yaml")),
                   help="names of configs/cpu/unlearn/<name>.yaml")
    p.add_argument("--cache_dir", default="runs/score/cache")
    p.add_argument("--output_dir", default="runs/score/cpu", help="per-method reports")
    p.add_argument("--out", default="benchmarks/results/score_cpu", help="the summary, without extension")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 keeps a shared machine from oversubscribing")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in args.methods:
        cfg = Path("configs/cpu/unlearn") / f"{name}.yaml"
        print(f"== {name}", flush=True)
        r = score_main([
            "-c", args.config, "--method", str(cfg), "--name", name, "--n_models", str(args.n),
            "--data.init_args.root", args.root, "--cache_dir", args.cache_dir, "--output_dir", args.output_dir,
        ])
        assert r is not None
        results[name] = {k: v for k, v in r.items() if k != "arrays"}
        print(f"   F {r['forgetting_quality']:.3f}, ceiling {r['ceiling']:.3f}, final {r['final_score']:.3f}", flush=True)
    wall = time.perf_counter() - start
    first = next(iter(results.values()))
    trained = sum(r["timings"]["models_trained"] for r in results.values())
    eps_s = sum(r["timings"]["epsilon_s"] for r in results.values())
    summary = table(results)
    header = (
        "# Forgetting score on the CPU preset (real CIFAR-10)\n\n"
        f"`{args.config}`: {_recipe(args.config)}, 10% random forget set "
        f"({first['num_forget']} examples), split seed 0. N = {args.n}: each method is run {args.n} times "
        f"(seeds 0..{args.n - 1}) from one original and scored against {args.n} retrained oracles; the ceiling "
        f"is the same F between those oracles and {args.n} more (what perfect unlearning gets at this N). "
        "F = the competition's forgetting quality (per-example epsilon from logit-scaled confidences, "
        "0.5-wide buckets); final = F x RA ratio x TA ratio (unlearned over oracle mean accuracies on retain "
        "and test). Simple MIA (forget vs test losses, 0.5 = chance), forget accuracy and cost (training "
        "time over one oracle's mean) are means ± std over the runs; the competition's cost limit is 20%. "
        f"Oracle: {first['oracle']['retain_acc']['mean']:.3f} retain, {first['oracle']['forget_acc']['mean']:.3f} "
        f"forget, {first['oracle']['test_acc']['mean']:.3f} test accuracy, simple MIA "
        f"{first['oracle']['simple_mia']['mean']:.3f}, {first['oracle_train_time_s']:.1f} s of training.\n\n"
        f"Produced by `python benchmarks/score_cpu.py{f' --threads {args.threads}' if args.threads else ''}` in {wall / 60:.1f} min on {platform.machine()} "
        f"({torch.get_num_threads()} torch thread(s)), torch {torch.__version__}: {trained} models trained by this run "
        f"(the rest came from the cache); per-example epsilon for all {len(results)} methods and their ceilings "
        f"took {eps_s:.1f} s in all.\n\n"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(header + summary + "\n")
    payload = {"wall_s": wall, "epsilon_s": eps_s, "models_trained": trained, "n_models": args.n,
               "torch": str(torch.__version__), "methods": results}
    out.with_suffix(".json").write_text(json.dumps(json_ready(payload), indent=2, default=str) + "\n")
    print()
    print(summary)
    print(f"\nwrote {out}.md and {out}.json ({wall / 60:.1f} min)")
    return payload


if __name__ == "__main__":
    main()
