"""Tune every built-in method's score preset on the CPU preset, on seeds the reported score does not use.

For each ``configs/score/methods/<name>.yaml`` with a search space beside it, runs
``unlearning tune -c configs/score/cpu.yaml`` (Optuna TPE; trial 0 is the config as it was, the
point to beat; N runs per trial on seeds from 1000, disjoint from the reporting seeds 0..31) and,
with ``--write``, writes the best values into the config. Writes ``benchmarks/results/tune_cpu.md``
and ``.json``: per method the trials, their wall time, the starting and the best final score on the
tuning seeds, and the values chosen. The leaderboard (``benchmarks/score_cpu.py``) then reports the
tuned configs on the reporting seeds.

    python benchmarks/tune_cpu.py --root ../shared/data/cifar10-jpeg --n_trials 8 --n 4 --write
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from unlearning.scoring.tune import main as tune_main
from unlearning.scoring.tune import space_path
from unlearning.tables import fmt_number

METHODS = Path("configs/score/methods")
STAGES = Path("configs/score/stages")


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """The markdown table of :func:`main`'s results: per method its trials, their wall time, the
    starting and the best score, and the values chosen (to three significant digits: a learning
    rate of 1e-05 is not 0.000)."""
    lines = ["| method | trials | trials' wall time (min) | start (trial 0) | best | best trial | values chosen |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        start_row = next((t for t in r["trials"] if t.get("start")), None)
        best = r["best"] or {}
        values = ", ".join(f"`{k.rsplit('.', 1)[-1]}` {f'{v:.3g}' if isinstance(v, float) else v}"
                           for k, v in (best.get("params") or {}).items())
        lines.append(f"| {name} | {r['trials_complete']} | {r['trials_wall_s'] / 60:.1f} | "
                     f"{fmt_number(start_row['value'] if start_row else None)} | {fmt_number(best.get('value'))} | "
                     f"{best.get('trial', 'n/a')} | {values} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from unlearning.methods import declared_stages

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--methods", nargs="+", default=None, help=f"names of {METHODS}/<name>.yaml (default: all with a space)")
    p.add_argument("--n_trials", type=int, default=8, help="completed trials per method")
    p.add_argument("--n", type=int, default=4, help="N of each trial (2N oracles from seed 1000, shared)")
    p.add_argument("--write", action="store_true", help="write the best values into the method configs")
    p.add_argument("--output_dir", default="runs/tune/cpu")
    p.add_argument("--out", default="benchmarks/results/tune_cpu")
    p.add_argument("--fresh", action="store_true",
                   help="write only this run's methods (default: keep the other methods' rows of an earlier run)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); use the oracles' setting, as cost is a ratio of times")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = args.methods or sorted(f.name.removesuffix(".space.yaml") for f in METHODS.glob("*.space.yaml"))
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = {}
    if not args.fresh and out.with_suffix(".json").is_file():  # earlier runs' methods keep their rows
        results = {k: v for k, v in json.loads(out.with_suffix(".json").read_text())["methods"].items()
                   if k not in names}
    start = time.perf_counter()
    for name in names:
        cfg = METHODS / f"{name}.yaml"
        if not space_path(cfg).is_file():
            raise FileNotFoundError(f"method {name!r} has no search space {space_path(cfg)}")
        print(f"== {name}", flush=True)
        stages = [a for arg in declared_stages(cfg) for a in (f"--stages.{arg}", str(STAGES / f"{arg}.yaml"))]
        extra = ["--write_config", str(cfg)] if args.write else []
        t0 = time.perf_counter()
        r = tune_main(["-c", "configs/score/cpu.yaml", "--method", str(cfg), "--data.init_args.root", args.root,
                       "--n_trials", str(args.n_trials), "--n_models", str(args.n), "--output_dir", args.output_dir,
                       *stages, *extra])
        r["wall_s"] = time.perf_counter() - t0
        results[name] = r
    wall = time.perf_counter() - start
    table = results_table(results)
    header = (
        "# Tuning the score presets on the CPU preset\n\n"
        "`unlearning tune` (Optuna TPE), the completed trials per method in the table, each the final score of "
        f"N = {args.n} runs against {args.n} oracles (and {args.n} more for the ceiling), on seeds "
        f"1000..{1000 + 2 * args.n - 1}: disjoint from the reporting seeds 0..31, so no reported model took part. "
        "Trial 0 is the config as it was before tuning (the point to beat); a trial over the cost limit scores 0. "
        "Scores at this N are noisy (a few hundredths): the values chosen are a search on few runs, not a "
        "guarantee; the leaderboard at N = 16 on the reporting seeds says what they are worth.\n\n"
        f"Last run: `python benchmarks/tune_cpu.py --n_trials {args.n_trials} --n {args.n}"
        f"{' --methods ' + ' '.join(names) if args.methods else ''}{f' --threads {args.threads}' if args.threads else ''}"
        f"{' --write' if args.write else ''}` in {wall / 60:.1f} min on {platform.machine()} "
        f"({torch.get_num_threads()} torch threads), torch {torch.__version__}.\n\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(header + table + "\n")
    payload = {"wall_s": wall, "n_trials": args.n_trials, "n_models": args.n, "last_run": names, "methods": results}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print()
    print(table)
    return payload


if __name__ == "__main__":
    main()
