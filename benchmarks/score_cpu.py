"""The competition's forgetting score of every built-in method on the CPU preset (real CIFAR-10).

A thin call of ``unlearning leaderboard -c configs/leaderboard/cpu.yaml``: every method config
under ``configs/score/methods/`` (each with its own budget and hyperparameters for this setting;
N = 16 by default: 32 oracles shared by all methods, 16 runs per method, one cache), the
hypernetwork method without its deltas as a variant, plus one comparison of its own: streaming
against the same losses with the whole forget set as one request. Writes
``benchmarks/results/score_cpu.md``, ``.json``, ``.csv`` and ``score_cpu_pareto.png``. From an
empty cache it trains everything; a rerun costs only what changed (a method's config, the recipe, N).
``--methods A B --update`` scores only those methods and keeps the other rows of the last summary,
after checking that they were scored against the same oracles. ``--redraw`` trains nothing: it
redraws ``score_cpu_pareto.png`` from the committed ``score_cpu.json``.

    python benchmarks/score_cpu.py --root ../shared/data/cifar10-jpeg
    python benchmarks/score_cpu.py --redraw
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

from unlearning.scoring.cli import leaderboard_main
from unlearning.scoring.leaderboard import board_notes, leaderboard_markdown, pareto_figure
from unlearning.tables import csv_table, fmt_number

METHODS = Path("configs/score/methods")


def _recipe(config: str) -> str:
    """The preset in words, from the score config."""
    cfg = yaml.safe_load(Path(config).read_text())
    init = cfg["data"]["init_args"]
    return (f"the CPU preset's network and recipe ({cfg['oracle']}, {cfg['original']}) on a "
            f"{init.get('train_subset') or 'full'}-image CIFAR-10 subset, extra recipe arguments "
            f"`{' '.join(cfg.get('recipe_args') or [])}`")


#: What a row's oracle ensemble alone determines: equal in two summaries only if both were scored
#: against the same 2N oracles (the ceiling is F between the two oracle halves).
ORACLE_FIGURES = ("n_models", "num_forget", "ceiling")
ORACLE_ACCURACIES = ("retain_acc", "forget_acc", "test_acc", "simple_mia")


def _oracle_signature(result: dict[str, Any]) -> tuple[float, ...]:
    return (tuple(float(result[k]) for k in ORACLE_FIGURES)
            + tuple(float(result["oracle"][k]["mean"]) for k in ORACLE_ACCURACIES))


def merge_previous(board: dict[str, Any], previous: dict[str, Any], config: str) -> list[str]:
    """Add to ``board`` the rows of ``previous`` (an earlier summary's JSON) for the methods this run
    did not score, and recompute the notes over all rows.

    Raises:
        SystemExit: when ``previous`` was scored with other seeds or against other oracles.

    Returns:
        The names of the rows kept from ``previous``.
    """
    new = board["methods"]
    ref = next(iter(new.values()))
    if previous.get("seed_base") != board["seed_base"]:
        raise SystemExit(f"--update: the previous summary used seed_base {previous.get('seed_base')}, this run "
                         f"{board['seed_base']}: rerun every method")
    kept = [name for name in previous["methods"] if name not in new]
    for name in kept:
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in
                   zip(_oracle_signature(previous["methods"][name]), _oracle_signature(ref))):
            raise SystemExit(f"--update: row {name!r} of the previous summary was scored against other oracles "
                             f"(ceiling {previous['methods'][name]['ceiling']} vs {ref['ceiling']}): rerun every method")
    board["methods"] = {**new, **{k: previous["methods"][k] for k in kept}}
    board["rows"] = board["rows"] + [r for r in previous["rows"] if r["method"] in kept]
    cfg = yaml.safe_load(Path(config).read_text())
    variant_of = {row: spec[0] for row, spec in (cfg.get("variants") or {}).items()}
    board["notes"] = board_notes(board["methods"], cfg.get("baseline", "finetune"), variant_of)
    board["kept_rows"] = kept
    return kept


def draw_pareto(board: dict[str, Any], path: Path) -> Path:
    """Draw the summary's figure of F / ceiling against cost (one point per row).

    Args:
        board: the summary (``rows``, ``cost_limit``, ``n_models``), as written to the JSON.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    from unlearning.callbacks.figures import _pyplot

    fig = pareto_figure(board["rows"], board["cost_limit"],
                        title=f"Forgetting against cost: CPU preset, N = {board['n_models']} runs per method")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--config", default="configs/leaderboard/cpu.yaml", help="the leaderboard config (recipe, split, N)")
    p.add_argument("--n", type=int, default=16, help="N: runs per method (2N oracles)")
    p.add_argument("--seed_base", type=int, default=0, help="first seed (1000 for choosing hyperparameters)")
    p.add_argument("--methods", nargs="+", default=None, help=f"names of {METHODS}/<name>.yaml (default: all)")
    p.add_argument("--no-ablations", action="store_true", help="skip the variant rows of the config")
    p.add_argument("--update", action="store_true",
                   help="keep the rows of the last summary (--out) for the methods not scored now, if they were "
                        "scored against the same oracles")
    p.add_argument("--cache_dir", default="runs/score/cache")
    p.add_argument("--output_dir", default="runs/leaderboard/cpu", help="the leaderboard and per-method reports")
    p.add_argument("--out", default="benchmarks/results/score_cpu", help="the summary, without extension")
    p.add_argument("--redraw", action="store_true",
                   help="train and score nothing: redraw <out>_pareto.png from <out>.json")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 keeps a shared machine from oversubscribing")
    args = p.parse_args(argv)
    previous_json = Path(args.out).with_suffix(".json")
    if (args.update or args.redraw) and not previous_json.is_file():
        p.error(f"--{'redraw' if args.redraw else 'update'}: no previous summary at {previous_json}")
    if args.redraw:
        previous = json.loads(previous_json.read_text())
        print(f"wrote {draw_pareto(previous, Path(args.out + '_pareto.png'))}")
        return previous
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    overrides = ["-c", args.config, "--n_models", str(args.n), "--seed_base", str(args.seed_base),
                 "--data.init_args.root", args.root, "--cache_dir", args.cache_dir, "--output_dir", args.output_dir]
    if args.methods:
        overrides += ["--methods", json.dumps([str(METHODS / f"{m}.yaml") for m in args.methods])]
    if args.no_ablations:
        overrides += ["--variants", "{}"]
    start = time.perf_counter()
    board = leaderboard_main(overrides)
    assert board is not None
    wall = time.perf_counter() - start
    kept = merge_previous(board, json.loads(previous_json.read_text()), args.config) if args.update else []
    results = board["methods"]
    first = next(iter(results.values()))  # a row scored by this run
    command = (f"{f' --threads {args.threads}' if args.threads else ''}"
               f"{' --methods ' + ' '.join(args.methods) if args.methods else ''}"
               f"{' --no-ablations' if args.no_ablations else ''}{' --update' if args.update else ''}")
    seeds = f"seeds {args.seed_base}..{args.seed_base + args.n - 1}"
    header = (
        "# Forgetting score on the CPU preset (real CIFAR-10)\n\n"
        f"`{args.config}`: {_recipe(args.config)}, 10% random forget set ({first['num_forget']} examples), split "
        f"seed 0. N = {args.n}: each method is run {args.n} times ({seeds}) from one original, each with its "
        f"own config under `{METHODS}/` (budget and hyperparameters chosen on seeds 1000 and up, not these), and "
        f"scored against {args.n} retrained oracles; the ceiling is the same F between those oracles and "
        f"{args.n} more (what perfect unlearning gets at this N). F = the competition's forgetting quality "
        "(per-example epsilon from logit-scaled confidences, 0.5-wide buckets), ± its standard error over forget "
        "examples; final = F x RA ratio x TA ratio (unlearned over oracle mean accuracies on retain and test). "
        "Simple MIA (forget vs test losses, 0.5 = chance), the predictive-distribution attack (gradient boosting "
        "on the sorted probabilities, entropy, confidence and loss, forget vs test, balanced, 5-fold), forget "
        "accuracy and cost (training time and images over one oracle's mean) are means ± std over the runs; KLOM "
        "(KL divergence of the margin's distribution under the oracles and under the runs, per example, mean; in "
        "brackets the same between two sets of oracles) on forget, a 2,000-image retain sample and the test set. "
        "The competition's cost limit is 20% of the time. Spread = median over forget examples of the std of their "
        "logit-scaled confidence across the N runs, against the same across N oracles (runs that barely differ "
        f"score nothing). Oracle: {first['oracle']['retain_acc']['mean']:.3f} retain, "
        f"{first['oracle']['forget_acc']['mean']:.3f} forget, {first['oracle']['test_acc']['mean']:.3f} test "
        f"accuracy, simple MIA {first['oracle']['simple_mia']['mean']:.3f}, {first['oracle_train_time_s']:.1f} s "
        "of training.\n\n"
        f"Produced by `python benchmarks/score_cpu.py{command}` in "
        f"{wall / 60:.1f} min on {platform.machine()} ({torch.get_num_threads()} torch thread(s)), torch "
        f"{torch.__version__}: {board['models_trained']} models trained by this run (the rest came from the cache); "
        f"per-example epsilon for the {len(results) - len(kept)} rows it scored and their ceilings took {board['epsilon_s']:.1f} s in all. "
        "The figure `score_cpu_pareto.png` plots F / ceiling against cost.\n\n"
    )
    if kept:
        header += (f"Rows kept from the previous run (`--update`; same oracles: equal ceiling, N and oracle accuracies, "
                   f"their costs measured against that run's oracle time): {', '.join(f'`{k}`' for k in kept)}.\n\n")
    notes = []
    if "streaming" in results and "streaming_one_request" in results:
        s, o = results["streaming"], results["streaming_one_request"]
        notes.append(f"- Streaming ({int(first['num_forget'])} examples in requests, each handled on arrival) against the "
                     f"same losses and steps with the whole forget set as one request: final {fmt_number(s['final_score'])} "
                     f"vs {fmt_number(o['final_score'])}, F {fmt_number(s['forgetting_quality'])} vs "
                     f"{fmt_number(o['forgetting_quality'])}, test accuracy ratio {fmt_number(s['test_acc_ratio'])} vs "
                     f"{fmt_number(o['test_acc_ratio'])}.")
    summary = leaderboard_markdown(board) + ("\n".join(notes) + "\n" if notes else "")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(header + summary)
    out.with_suffix(".csv").write_text(csv_table(board["rows"]))
    draw_pareto(board, out.with_name(out.name + "_pareto.png"))
    payload = {**board, "wall_s": wall, "torch": str(torch.__version__)}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print()
    print(summary)
    print(f"wrote {out}.md, .json, .csv and {out.name}_pareto.png ({wall / 60:.1f} min)")
    return payload


if __name__ == "__main__":
    main()
