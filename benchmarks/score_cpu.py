"""The competition's forgetting score of every built-in method on the CPU preset (real CIFAR-10).

Runs ``unlearning score -c configs/score/cpu.yaml`` once per method config under
``configs/score/methods/`` (each with its own budget and hyperparameters for this setting; N = 16 by
default: 32 oracles shared by all methods, 16 runs per method, one cache), plus two comparisons:
the hypernetwork method without its deltas (what the hypernetwork itself adds) and streaming
against the same losses with the whole forget set as one request. A method that declares a
one-time stage gets ``configs/score/stages/<argument>.yaml``. Writes
``benchmarks/results/score_cpu.md`` and ``.json``. From an empty cache it trains everything; a
rerun costs only what changed (a method's config, the recipe, N).

    python benchmarks/score_cpu.py --root ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from unlearning.pipeline import declared_stages
from unlearning.scoring.cli import main as score_main
from unlearning.scoring.report import fmt_number
from unlearning.scoring.score import json_ready

METHODS = Path("configs/score/methods")
STAGES = Path("configs/score/stages")
#: extra rows: (row name, method config name, extra method arguments)
ABLATIONS = (("hypernet (no deltas: refinement only)", "hypernet", ["--model.init_args.apply_deltas", "false"]),)

COLUMNS = (
    ("forgetting_quality", "F"),
    ("ceiling", "ceiling"),
    ("relative_forgetting", "F / ceiling"),
    ("final_score", "final"),
    ("retain_acc_ratio", "RA ratio"),
    ("test_acc_ratio", "TA ratio"),
)


def _pm(stats: dict[str, float]) -> str:
    return f"{fmt_number(stats['mean'])} ± {fmt_number(stats['std'])}"


def table(results: dict[str, dict[str, Any]]) -> str:
    """One row per method: the scores, then simple MIA, forget accuracy and cost (mean ± std over
    the N runs), the run-to-run spread of the forget confidences against the oracles'."""
    head = ["method", *(t for _, t in COLUMNS), "simple MIA", "forget acc", "cost (x oracle time)",
            "cost (x oracle images)", "spread (runs / oracles)", "over 20%?"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + ":---:|"]
    for name, r in results.items():
        u = r["unlearned"]
        cells = [fmt_number(r[k]) for k, _ in COLUMNS]
        cells += [_pm(u[k]) for k in ("simple_mia", "forget_acc", "cost_time_fraction", "cost_images_fraction")]
        spread = r.get("confidence_spread") or {}
        cells.append(f"{fmt_number(spread.get('unlearned'))} / {fmt_number(spread.get('oracle'))}")
        cells.append("yes" if r["over_cost_limit"] else "no")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def amortisation(results: dict[str, dict[str, Any]], baseline: str = "finetune", skip: tuple[str, ...] = ()) -> list[str]:
    """For each method with a one-time stage: its cost, the per-request cost against one oracle and
    ``baseline``, and the number of requests after which stage + requests cost less than
    ``baseline`` per request."""
    lines = []
    base = results.get(baseline)
    for name, r in results.items():
        if name in skip:
            continue
        for arg, st in (r.get("stages") or {}).items():
            per_run = r["unlearned"]["cost_time_s"]["mean"]
            stage_s = st["cost"].get("train_time_s", math.nan)
            text = (f"- `{name}`: the one-time stage `{arg}` took {stage_s:.1f} s ({fmt_number(st['cost_time_fraction'])} "
                    f"of one oracle's training time, {fmt_number(st['cost_images_fraction'])} of its images); one request "
                    f"then costs {per_run:.2f} s, {fmt_number(r['unlearned']['cost_time_fraction']['mean'])} of an oracle")
            if base is not None:
                base_s = base["unlearned"]["cost_time_s"]["mean"]
                text += f" and {per_run / base_s:.2f} of one {baseline} run ({base_s:.2f} s)"
                if base_s > per_run:
                    text += f"; it pays off after {math.ceil(stage_s / (base_s - per_run))} requests"
                else:
                    text += "; a request costs no less than a run of " + baseline + ", so it never pays off"
            lines.append(text + ".")
    return lines


def _recipe(config: str) -> str:
    """The preset in words, from the score config."""
    cfg = yaml.safe_load(Path(config).read_text())
    init = cfg["data"]["init_args"]
    return (f"the CPU preset's network and recipe ({cfg['oracle']}, {cfg['original']}) on a "
            f"{init.get('train_subset') or 'full'}-image CIFAR-10 subset, extra recipe arguments "
            f"`{' '.join(cfg.get('recipe_args') or [])}`")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--config", default="configs/score/cpu.yaml", help="the score config (recipe, split, N)")
    p.add_argument("--n", type=int, default=16, help="N: runs per method (2N oracles)")
    p.add_argument("--seed_base", type=int, default=0, help="first seed (1000 for choosing hyperparameters)")
    p.add_argument("--methods", nargs="+", default=sorted(f.stem for f in METHODS.glob("*.yaml")),
                   help=f"names of {METHODS}/<name>.yaml")
    p.add_argument("--no-ablations", action="store_true", help="skip the extra comparison rows")
    p.add_argument("--cache_dir", default="runs/score/cache")
    p.add_argument("--output_dir", default="runs/score/cpu", help="per-method reports")
    p.add_argument("--out", default="benchmarks/results/score_cpu", help="the summary, without extension")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 keeps a shared machine from oversubscribing")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    runs = [(name, name, []) for name in args.methods]
    if not args.no_ablations:
        runs += [a for a in ABLATIONS if a[1] in args.methods]
    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for row, name, extra in runs:
        cfg = METHODS / f"{name}.yaml"
        stages = {arg: str(STAGES / f"{arg}.yaml") for arg in declared_stages(cfg)}
        print(f"== {row}", flush=True)
        out_name = name if not extra else f"{name}-ablation"
        r = score_main([
            "-c", args.config, "--method", str(cfg), "--name", out_name, "--n_models", str(args.n),
            "--seed_base", str(args.seed_base), "--data.init_args.root", args.root, "--cache_dir", args.cache_dir,
            "--output_dir", args.output_dir, "--method_args", json.dumps(extra),
            *(a for arg, path in stages.items() for a in (f"--stages.{arg}", path)),
        ])
        assert r is not None
        results[row] = {k: v for k, v in r.items() if k != "arrays"}
        print(f"   F {r['forgetting_quality']:.3f}, ceiling {r['ceiling']:.3f}, final {r['final_score']:.3f}", flush=True)
    wall = time.perf_counter() - start
    first = next(iter(results.values()))
    trained = sum(r["timings"]["models_trained"] for r in results.values())
    eps_s = sum(r["timings"]["epsilon_s"] for r in results.values())
    summary = table(results)
    seeds = f"seeds {args.seed_base}..{args.seed_base + args.n - 1}"
    header = (
        "# Forgetting score on the CPU preset (real CIFAR-10)\n\n"
        f"`{args.config}`: {_recipe(args.config)}, 10% random forget set ({first['num_forget']} examples), split "
        f"seed 0. N = {args.n}: each method is run {args.n} times ({seeds}) from one original, each with its "
        f"own config under `{METHODS}/` (budget and hyperparameters chosen on seeds 1000-1015, not these), and "
        f"scored against {args.n} retrained oracles; the ceiling is the same F between those oracles and "
        f"{args.n} more (what perfect unlearning gets at this N). F = the competition's forgetting quality "
        "(per-example epsilon from logit-scaled confidences, 0.5-wide buckets); final = F x RA ratio x TA ratio "
        "(unlearned over oracle mean accuracies on retain and test). Simple MIA (forget vs test losses, 0.5 = "
        "chance), forget accuracy and cost (training time and images over one oracle's mean) are means ± std "
        "over the runs; the competition's cost limit is 20% of the time. Spread = median over forget examples of "
        "the std of their logit-scaled confidence across the N runs, against the same across N oracles (runs that "
        f"barely differ score nothing). Oracle: {first['oracle']['retain_acc']['mean']:.3f} retain, "
        f"{first['oracle']['forget_acc']['mean']:.3f} forget, {first['oracle']['test_acc']['mean']:.3f} test "
        f"accuracy, simple MIA {first['oracle']['simple_mia']['mean']:.3f}, {first['oracle_train_time_s']:.1f} s "
        "of training.\n\n"
        f"Produced by `python benchmarks/score_cpu.py{f' --threads {args.threads}' if args.threads else ''}` in "
        f"{wall / 60:.1f} min on {platform.machine()} ({torch.get_num_threads()} torch thread(s)), torch "
        f"{torch.__version__}: {trained} models trained by this run (the rest came from the cache); per-example "
        f"epsilon for all {len(results)} rows and their ceilings took {eps_s:.1f} s in all.\n\n"
    )
    notes = amortisation(results, skip=tuple(a[0] for a in ABLATIONS))
    for row, name, _ in ABLATIONS:
        if row in results and name in results:
            notes.append(f"- `{row}` against `{name}`: final {fmt_number(results[row]['final_score'])} vs "
                         f"{fmt_number(results[name]['final_score'])}, F {fmt_number(results[row]['forgetting_quality'])} "
                         f"vs {fmt_number(results[name]['forgetting_quality'])}.")
    if "streaming" in results and "streaming_one_request" in results:
        s, o = results["streaming"], results["streaming_one_request"]
        notes.append(f"- Streaming ({int(first['num_forget'])} examples in requests, each handled on arrival) against the "
                     f"same losses and steps with the whole forget set as one request: final {fmt_number(s['final_score'])} "
                     f"vs {fmt_number(o['final_score'])}, F {fmt_number(s['forgetting_quality'])} vs "
                     f"{fmt_number(o['forgetting_quality'])}, test accuracy ratio {fmt_number(s['test_acc_ratio'])} vs "
                     f"{fmt_number(o['test_acc_ratio'])}.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(header + summary + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else ""))
    payload = {"wall_s": wall, "epsilon_s": eps_s, "models_trained": trained, "n_models": args.n,
               "seed_base": args.seed_base, "torch": str(torch.__version__), "methods": results}
    out.with_suffix(".json").write_text(json.dumps(json_ready(payload), indent=2, default=str) + "\n")
    print()
    print(summary)
    print("\n".join(notes))
    print(f"\nwrote {out}.md and {out}.json ({wall / 60:.1f} min)")
    return payload


if __name__ == "__main__":
    main()
