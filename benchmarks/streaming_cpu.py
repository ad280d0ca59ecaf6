"""Streaming forget on the CPU preset, request by request, against the mean of several oracles.

Trains (or reuses) the CPU preset's original and ``--oracles`` retrain oracles (seeds 0, 1, ...)
under ``runs/streaming_cpu/``, runs :class:`~unlearning.methods.StreamingForget` from the original
(``configs/cpu/unlearn/streaming.yaml``: 20 requests of 50), then the same method on a longer stream
of smaller requests (``--long-request-size``, 100 requests of 10 by default) and as one request, and
after every request compares the model with the oracles on the same examples:

- accuracy on everything forgotten so far, against the oracles' mean accuracy on those examples,
  within ``max(0.03, two binomial standard errors)``;
- retain and test accuracy (fixed samples of 2,000) no more than 0.03 below the original's;
- the simple MIA (forgotten so far vs test) against the oracles' mean, within the same tolerance
  as the accuracy (on a few dozen examples the attack itself is that noisy).

Writes ``benchmarks/results/streaming_curves.json`` (one row per request of the 20-request stream,
request 0 = the original, the ``oracle_*`` keys the oracles' means on the same examples) and its
figure, ``streaming_long.json`` and ``streaming_cpu.json`` (every stream's rows, which rows met
which target, and the time and images the method used).

    python benchmarks/streaming_cpu.py --root ../shared/data/cifar10-jpeg

The first design (the request and the replay matched together, the anchor fixed at the original):

    python benchmarks/streaming_cpu.py --out benchmarks/results/streaming_first_design -- \
        --model.init_args.match pooled --model.init_args.anchor_follow 0
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearning.build import build_run
from unlearning.callbacks import stream_figure
from unlearning.callbacks.streaming import StreamEvaluator, _mia
from unlearning.modules import Classifier
from unlearning.pipeline import fit_stage

#: what every row of a stream must meet (see the module docs)
TOLERANCE = 0.03


def train_stages(root: str, oracles: int, runs: str) -> tuple[Path, list[Path]]:
    """The CPU preset's original and ``oracles`` retrain oracles (seeds 0, 1, ...), trained once."""
    common = ["--data.init_args.root", root, "--trainer.enable_progress_bar", "false",
              "--trainer.logger.init_args.save_dir", runs]
    original = fit_stage("configs/cpu/original.yaml", common)
    refs = [fit_stage("configs/cpu/retrain.yaml", [*common, "--seed_everything", str(k),
                                                   "--trainer.logger.init_args.name", f"retrain_{k}"])
            for k in range(oracles)]
    return original, refs


def run_stream(root: str, original: Path, runs: str, name: str, extra: list[str]) -> tuple[StreamEvaluator, Any]:
    """Run the streaming config from ``original``; return its evaluator and module."""
    run = build_run("configs/cpu/unlearn/streaming.yaml", [
        "--data.init_args.root", root, "--model.init_args.original", str(original),
        "--model.init_args.oracle", "null", "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", runs, "--trainer.logger.init_args.name", name, *extra])
    run.trainer.fit(run.module, datamodule=run.datamodule)
    evaluator = next(c for c in run.trainer.callbacks if isinstance(c, StreamEvaluator))
    return evaluator, run.module


def with_oracles(ev: StreamEvaluator, oracles: list[torch.nn.Module]) -> list[dict[str, float]]:
    """The evaluator's rows with the oracles' means on the same examples as ``oracle_*``."""
    dev = torch.device("cpu")
    fx = ev._dm.eval_transform(ev._forget_x)
    forget = [ev._stats(o, fx, ev._forget_y, dev) for o in oracles]
    retain = [ev._stats(o, *ev._retain, dev) for o in oracles]
    test = [ev._stats(o, *ev._test, dev) for o in oracles]
    rows = []
    for h in ev.history:
        n = int(h["forgotten"])
        pos = ev._forgotten[:n] if n else list(range(len(ev._forget_y)))
        rows.append({
            **{k: v for k, v in h.items() if not k.startswith("oracle_")},
            "oracle_forgotten_acc": float(np.mean([f["correct"][pos].mean() for f in forget])),
            "oracle_simple_mia": float(np.nanmean([_mia(f["loss"][pos], t["loss"]) for f, t in zip(forget, test)])),
            "oracle_retain_acc": float(np.mean([r["correct"].mean() for r in retain])),
            "oracle_test_acc": float(np.mean([t["correct"].mean() for t in test])),
        })
    return rows


def verdicts(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Which rows (requests >= 1) meet each target, and the largest miss of each."""
    base = rows[0]
    out: dict[str, Any] = {"forgotten": [], "retain": [], "test": [], "mia": []}
    for h in rows[1:]:
        p, n = h["oracle_forgotten_acc"], max(h["forgotten"], 1.0)
        tol = max(TOLERANCE, 2 * math.sqrt(p * (1 - p) / n))
        out["forgotten"].append(abs(h["forgotten_acc"] - p) - tol)
        out["mia"].append(abs(h["simple_mia"] - h["oracle_simple_mia"]) - tol
                          if not math.isnan(h["simple_mia"]) else -1.0)
        out["retain"].append(base["retain_acc"] - TOLERANCE - h["retain_acc"])
        out["test"].append(base["test_acc"] - TOLERANCE - h["test_acc"])
    return {k: {"requests_met": int(sum(m <= 0 for m in v)), "requests": len(v), "worst_miss": float(max(v))}
            for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="the CIFAR-10 copy")
    p.add_argument("--oracles", type=int, default=4, help="retrain oracles whose mean is the reference")
    p.add_argument("--long-request-size", type=int, default=10, help="request size of the longer stream")
    p.add_argument("--runs", default="runs/streaming_cpu", help="where the original, oracles and streams go")
    p.add_argument("--out", default="benchmarks/results", help="folder of the JSON files and figure")
    p.add_argument("overrides", nargs="*", help="overrides of the streaming config for every stream, e.g. "
                   "--model.init_args.anchor_follow 0 (after a --)")
    args = p.parse_args()
    if args.oracles < 1 or args.long_request_size < 1:
        p.error(f"--oracles and --long-request-size must be >= 1, got {args.oracles} and {args.long_request_size}")
    start = time.perf_counter()
    original, refs = train_stages(args.root, args.oracles, args.runs)
    oracles = [Classifier.load_from_checkpoint(r, map_location="cpu", weights_only=True).net.eval() for r in refs]
    streams = {"stream": [], "long": ["--model.init_args.request_size", str(args.long_request_size)],
               "one_request": ["--model.init_args.request_size", "null"]}
    results: dict[str, Any] = {}
    for name, extra in streams.items():
        ev, module = run_stream(args.root, original, args.runs, name, [*args.overrides, *extra])
        rows = with_oracles(ev, oracles)
        cost = module.cost_scalars()
        results[name] = {"rows": rows, "targets": verdicts(rows), **cost}
        t = results[name]["targets"]
        print(f"{name}: {len(rows) - 1} requests, " + ", ".join(
            f"{k} {v['requests_met']}/{v['requests']} (worst miss {v['worst_miss']:+.3f})" for k, v in t.items())
            + f"; {cost['cost_time_s']:.1f} s, {int(cost['cost_images']):,} images")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "streaming_curves.json").write_text(json.dumps(results["stream"]["rows"], indent=2) + "\n")
    (out / "streaming_long.json").write_text(json.dumps(results["long"]["rows"], indent=2) + "\n")
    fig = stream_figure(results["stream"]["rows"], "StreamingForget, CPU preset: oracles' mean dashed")
    fig.savefig(out / "streaming_curves.png", dpi=100, bbox_inches="tight")
    summary = {"oracles": args.oracles, "overrides": args.overrides, "tolerance": TOLERANCE, "wall_s": time.perf_counter() - start,
               "machine": platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               **{k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in results.items()}}
    (out / "streaming_cpu.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'streaming_curves.json'}, streaming_long.json, streaming_cpu.json and streaming_curves.png")


if __name__ == "__main__":
    main()
