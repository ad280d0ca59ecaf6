"""Every built-in unlearning algorithm on the CPU preset over real CIFAR-10, side by side.

Trains (or reuses) the CPU-preset original and retrain oracle, runs every config under
``configs/cpu/unlearn/`` from that original, tests all models on the same split against the oracle
and writes ``benchmarks/results/unlearn_cpu.md`` and ``.json``.

    python benchmarks/unlearn_cpu.py --root ../shared/data/cifar10-jpeg

``--preset configs --subset 2000 --epochs 1`` runs the full-scale configs instead (ResNet-18 and the
published recipes), each for at most one epoch (one per phase: UNSIR impairs, then repairs) on a
2,000-image subset: a check that every published config runs on CPU, not a comparison of methods.

    python benchmarks/unlearn_cpu.py --preset configs --subset 2000 --epochs 1 --out benchmarks/results/unlearn_full_subset

``--redraw`` trains nothing: it redraws ``streaming_curves.png`` beside ``--out`` from the
``streaming_curves.json`` there.

    python benchmarks/unlearn_cpu.py --redraw
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from unlearning.callbacks import stream_figure
from unlearning.pipeline import run_comparison
from unlearning.tables import COLUMNS, markdown_table


def epoch_cap(config: Path, epochs: int) -> int:
    """At most ``epochs`` epochs per phase of the method's schedule (UNSIR's ``impair_epochs``
    phase comes before its repair), and never more than its config asks for."""
    cfg = yaml.safe_load(config.read_text())
    phases = 2 if "impair_epochs" in (cfg["model"].get("init_args") or {}) else 1
    return min(int(cfg["trainer"].get("max_epochs", epochs)), epochs * phases)


def draw_stream_curves(history: list[dict[str, Any]], path: Path, preset: str = "configs/cpu") -> Path:
    """Draw the streaming method's curves, request by request.

    Args:
        history: the rows of ``streaming_curves.json`` (one per evaluation).
        path: the PNG file to write.
        preset: the folder of the streaming config (its module's name goes into the title).

    Returns:
        ``path``.
    """
    from unlearning.callbacks.figures import _pyplot

    config = Path(preset) / "unlearn" / "streaming.yaml"
    module = yaml.safe_load(config.read_text())["model"]["class_path"].rsplit(".", 1)[-1]
    fig = stream_figure(history, f"{module} ({config}): {len(history) - 1} evaluations")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--preset", default="configs/cpu",
                   help="folder of original.yaml, retrain.yaml and unlearn/ (configs: the full-scale configs)")
    p.add_argument("--methods", nargs="+", default=None, help="names of <preset>/unlearn/<name>.yaml (default: all)")
    p.add_argument("--subset", type=int, default=None, help="train on this many CIFAR-10 images (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None,
                   help="at most this many epochs per stage (per phase of a phased method)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the methods' existing checkpoints too (the original and oracle always are)")
    p.add_argument("--out", default="benchmarks/results/unlearn_cpu")
    p.add_argument("--redraw", action="store_true",
                   help="train nothing: redraw streaming_curves.png beside --out from streaming_curves.json")
    args = p.parse_args(argv)
    if args.redraw:
        curves_json = Path(args.out).parent / "streaming_curves.json"
        if not curves_json.is_file():
            p.error(f"--redraw: no {curves_json}")
        png = draw_stream_curves(json.loads(curves_json.read_text()), curves_json.with_suffix(".png"), args.preset)
        print(f"wrote {png}")
        return
    preset = Path(args.preset)
    methods = args.methods or sorted(f.stem for f in (preset / "unlearn").glob("*.yaml"))
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    for name in methods:
        if not (preset / "unlearn" / f"{name}.yaml").is_file():
            p.error(f"no config {preset / 'unlearn' / (name + '.yaml')} for method {name!r}")

    start = time.perf_counter()
    common = ["--data.init_args.root", args.root, "--trainer.enable_progress_bar", "false"]
    per_method: dict[str, list[str]] = {}
    if args.preset != "configs/cpu":  # keep the full-scale runs apart from a GPU user's runs/full
        common += ["--trainer.logger.init_args.save_dir", f"runs/{preset.name}_{args.subset or 'full'}"]
    if args.subset is not None:
        common += ["--data.init_args.train_subset", str(args.subset),
                   "--data.init_args.retain_eval_size", str(min(2000, args.subset // 2))]
    if args.epochs is not None:
        common += ["--trainer.max_epochs", str(args.epochs)]
        per_method = {m: ["--trainer.max_epochs", str(epoch_cap(preset / "unlearn" / f"{m}.yaml", args.epochs))]
                      for m in methods}
    rows = run_comparison(methods, common, preset=args.preset, reuse=True, reuse_methods=args.reuse,
                          method_overrides=per_method)
    wall = time.perf_counter() - start
    extra = (("cost_time_s", "train time (s)"), ("cost_images", "images processed"))
    shown = {name: {**r, "cost_images": f"{int(r['cost_images']):,}" if "cost_images" in r else ""}
             for name, r in rows.items()}
    table = markdown_table(shown, (*COLUMNS, *extra))
    print()
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    caveat = ""
    if args.preset == "configs/cpu" and args.subset is None and args.epochs is None:
        setting = ("# Unlearning on the CPU preset (real CIFAR-10)\n\n"
                   "Small CNN (width 16) on a 10k-image subset of CIFAR-10 without augmentation")
    else:
        setting = (f"# The configs of `{args.preset}` on CPU (real CIFAR-10)\n\n"
                   f"Each config as published, on {f'a {args.subset:,}-image subset' if args.subset else 'all'} of "
                   "CIFAR-10's training images"
                   + (f", for at most {args.epochs} epoch{'s' if args.epochs > 1 else ''} per stage (UNSIR: as many "
                      "of impair, then of repair)" if args.epochs else ""))
        if args.epochs:
            caveat = ("This shows that the configs run; it does not compare the methods: an original trained this "
                      "briefly is barely better than chance. ")
    command = "".join(f" --{k} {v}" for k, v in (("preset", args.preset), ("subset", args.subset),
                                                   ("epochs", args.epochs)) if v is not None and v != "configs/cpu")
    command += (" --methods " + " ".join(args.methods) if args.methods else "") + (" --reuse" if args.reuse else "")
    command += f" --out {args.out}" if args.out != "benchmarks/results/unlearn_cpu" else ""
    header = (
        setting + ", 10% random forget set "
        "(split seed 0), val/test = CIFAR-10's test set split 50/50 (seed 42). One run per method (seed 0). "
        "Accuracies on retain (a 2,000-image sample), forget, val and test; simple MIA = logistic regression "
        "on losses, forget vs test, 10-fold CV accuracy (0.5 = chance); predictive MIA = gradient boosting on the "
        "sorted probabilities, entropy, confidence and loss, forget vs test, balanced, 5-fold CV; MIA-efficacy = share of forget called "
        "non-member by an SVC trained on retain vs test confidences; cost = training wall time as a fraction "
        "of the oracle's. " + caveat + "\n\n"
        f"Produced by `python benchmarks/unlearn_cpu.py{command}` in {wall / 60:.1f} min "
        f"on {platform.machine()} ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}), torch {torch.__version__}"
        f"{' (method checkpoints reused where they existed; train times are those recorded in them)' if args.reuse else ''}.\n\n"
    )
    notes = ""
    curves = Path("runs/cpu/unlearn/streaming/stream_curves.json")
    if "streaming" in methods and curves.is_file():  # the stream's curves, request by request
        history = json.loads(curves.read_text())  # one oracle; benchmarks/streaming_cpu.py: the mean of several
        first, last = history[0], history[-1]
        notes = (
            f"\nStreaming (`configs/cpu/unlearn/streaming.yaml`): {int(last['request'])} requests of "
            f"{int(last['forgotten'] / max(1, last['request']))} forget examples, each handled on arrival, no retain "
            f"set. Over the stream, accuracy on everything forgotten so far {first['forgotten_acc']:.3f} -> "
            f"{last['forgotten_acc']:.3f} (oracle {last.get('oracle_forgotten_acc', float('nan')):.3f}), on a "
            f"retain sample {first['retain_acc']:.3f} -> {last['retain_acc']:.3f}, on test {first['test_acc']:.3f} -> "
            f"{last['test_acc']:.3f}; simple MIA (forgotten so far vs test) {first['simple_mia']:.3f} -> "
            f"{last['simple_mia']:.3f} (oracle {last.get('oracle_simple_mia', float('nan')):.3f}). Curves after every "
            "request against the mean of several oracles: `python benchmarks/streaming_cpu.py` "
            "(`streaming_curves.png`, `streaming_curves.json`).\n"
        )
    (out.with_suffix(".md")).write_text(header + table + "\n" + notes)
    (out.with_suffix(".json")).write_text(json.dumps({"rows": rows, "wall_s": wall, "torch": str(torch.__version__)}, indent=2))
    print(f"wrote {out}.md and {out}.json")


if __name__ == "__main__":
    main()
