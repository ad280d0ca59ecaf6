"""Which attack features carry the discriminator's decision: an ablation on the CPU score preset.

The discriminator method (``configs/score/methods/discriminator.yaml``, its tuned hyperparameters
unchanged) is scored with ``unlearning score`` once per selection of the feature groups its
discriminator reads (``--model.init_args.features``): all four (``lsc``, ``loss``, ``entropy``,
``probs``), each one alone and all but each one (9 settings), and a control without the adversarial
term (``adv_weight`` 0), N runs each against the cached oracles and original of the score preset
(nothing but the method runs is trained). For each setting: F,
F / ceiling with its standard error over forget examples, the final score, the accuracies, the simple
MIA, the cost, and the trained discriminator's own balanced accuracy at telling forget outputs of
the final model from val outputs (the two sides of its game) and from test outputs (never seen by
it). Then, for the discriminators of the all-features setting, the permutation importance of each
group: its columns shuffled across examples, the drop of that accuracy.

Writes ``benchmarks/results/discriminator_features_cpu.json`` and ``.md``; score outputs under
``runs/disc_features/``.

    python benchmarks/discriminator_features.py --root ../shared/data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import torch.nn.functional as F

from unlearning.methods.discriminator import DiscriminatorUnlearn, MembershipDiscriminator
from unlearning.methods.discriminator.nets import FEATURE_GROUPS, feature_columns
from unlearning.metrics.forgetting import forgetting_points
from unlearning.metrics.outputs import attack_features
from unlearning.modules.base import load_checkpoint_meta
from unlearning.registry import module_class
from unlearning.scoring.cached_model import score_datamodule
from unlearning.scoring.cli import main as score_main
from unlearning.scoring.leaderboard import f_standard_error
from unlearning.tables import fmt_number

RESULT = Path("benchmarks/results/discriminator_features_cpu")


#: The control: the same runs without the adversarial term (retain cross-entropy alone), so that
#: what the discriminator adds at all is measured with the same noise.
CONTROL = "no adversary (adv_weight 0)"


def settings() -> dict[str, tuple[str, ...]]:
    """The 9 selections (all groups, each alone, all but each), then the control (all groups read,
    no adversarial gradient)."""
    out = {"all": FEATURE_GROUPS}
    out.update({f"{g} only": (g,) for g in FEATURE_GROUPS})
    out.update({f"no {g}": tuple(h for h in FEATURE_GROUPS if h != g) for g in FEATURE_GROUPS})
    out[CONTROL] = FEATURE_GROUPS
    return out


def balanced_accuracy(member: torch.Tensor, nonmember: torch.Tensor) -> float:
    """Mean of the share of members called members (logit > 0) and of non-members called non-members."""
    return 0.5 * (float((member > 0).float().mean()) + float((nonmember <= 0).float().mean()))


def _features(net: torch.nn.Module, dm: Any, stream: str) -> torch.Tensor:
    """The full attack features of a model's outputs on one stream (eval mode, no augmentation)."""
    logits, labels = [], []
    with torch.no_grad():
        for x, y in dm.stream_loader(stream, train=False):
            logits.append(net(x))
            labels.append(y)
    return attack_features(torch.cat(logits), torch.cat(labels))


def _disc(disc: MembershipDiscriminator, feats: torch.Tensor) -> torch.Tensor:
    """The discriminator's member logits from full attack features."""
    with torch.no_grad():
        return disc.mlp(disc.select(feats)).squeeze(1)


def permutation_drops(disc: MembershipDiscriminator, forget: torch.Tensor, val: torch.Tensor,
                      repeats: int, seed: int) -> dict[str, float]:
    """Drop of the discriminator's balanced accuracy (forget vs val) when one group's columns are
    shuffled across the pooled forget and val examples, mean over ``repeats`` shuffles."""
    base = balanced_accuracy(_disc(disc, forget), _disc(disc, val))
    pooled, n_f = torch.cat([forget, val]), forget.shape[0]
    gen = torch.Generator().manual_seed(seed)
    drops = {}
    for group in disc.features:
        cols = torch.tensor(feature_columns([group], forget.shape[1] - 3))
        accs = []
        for _ in range(repeats):
            shuffled = pooled.clone()
            perm = torch.randperm(pooled.shape[0], generator=gen)
            shuffled[:, cols] = pooled[perm][:, cols]
            accs.append(balanced_accuracy(_disc(disc, shuffled[:n_f]), _disc(disc, shuffled[n_f:])))
        drops[group] = base - float(np.mean(accs))
    return drops


def inspect_runs(result: dict[str, Any], dm: Any, importance: bool, repeats: int) -> dict[str, Any]:
    """The trained discriminators of a score's method runs, read from their checkpoints: their
    balanced accuracy on the final model's forget vs val and forget vs test outputs (mean, std over
    runs) and, when ``importance``, each group's permutation importance."""
    method_dir = Path(result["cache"]["dir"]) / result["cache"]["method"]
    val_accs, test_accs, drops = [], [], []
    for i, ckpt in enumerate(sorted(method_dir.glob("seed-*/model.ckpt"))[: result["n_models"]]):
        module = DiscriminatorUnlearn.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True).eval()
        f, v, t = (_features(module, dm, s) for s in ("forget", "val", "test"))
        d_f = _disc(module.discriminator, f)
        val_accs.append(balanced_accuracy(d_f, _disc(module.discriminator, v)))
        test_accs.append(balanced_accuracy(d_f, _disc(module.discriminator, t)))
        if importance:
            drops.append(permutation_drops(module.discriminator, f, v, repeats, seed=i))
    out: dict[str, Any] = {
        "disc_acc_val": {"mean": float(np.mean(val_accs)), "std": float(np.std(val_accs, ddof=1)), "runs": val_accs},
        "disc_acc_test": {"mean": float(np.mean(test_accs)), "std": float(np.std(test_accs, ddof=1)), "runs": test_accs},
    }
    if importance:
        out["permutation_importance"] = {
            g: {"mean": float(np.mean([d[g] for d in drops])), "std": float(np.std([d[g] for d in drops], ddof=1))}
            for g in drops[0]}
    return out


def original_attack(checkpoint: Path, dm: Any, seeds: int, steps: int) -> dict[str, Any]:
    """What there is to erase: a fresh discriminator (the method's architecture) trained on the
    original's outputs, half the forget set (members) against val, tested on the other half
    against test, once per feature selection; mean and std of its balanced accuracy over ``seeds``
    random halves and initialisations, and the permutation importance of each group for the
    all-features attacker (on the test pairs)."""
    cls = module_class(load_checkpoint_meta(checkpoint)["module"])
    net = cls.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True).eval()
    f, v, t = (_features(net, dm, s) for s in ("forget", "val", "test"))
    accs: dict[str, list[float]] = {}
    drops: list[dict[str, float]] = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(f.shape[0], generator=gen)
        train_f, test_f = f[order[: f.shape[0] // 2]], f[order[f.shape[0] // 2:]]
        for name, features in settings().items():
            if name == CONTROL:
                continue
            torch.manual_seed(seed)
            disc = MembershipDiscriminator(f.shape[1] - 3, features=features)
            opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
            for _ in range(steps):
                d_f, d_v = (disc.mlp(disc.select(z)).squeeze(1) for z in (train_f, v))
                loss = F.binary_cross_entropy_with_logits(d_f, torch.ones_like(d_f)) + \
                    F.binary_cross_entropy_with_logits(d_v, torch.zeros_like(d_v))
                opt.zero_grad()
                loss.backward()
                opt.step()
            disc.eval()
            accs.setdefault(name, []).append(balanced_accuracy(_disc(disc, test_f), _disc(disc, t)))
            if features == FEATURE_GROUPS:
                drops.append(permutation_drops(disc, test_f, t, repeats=5, seed=seed))
    return {
        "accuracy": {k: {"mean": float(np.mean(a)), "std": float(np.std(a, ddof=1))} for k, a in accs.items()},
        "permutation_importance": {g: {"mean": float(np.mean([d[g] for d in drops])),
                                       "std": float(np.std([d[g] for d in drops], ddof=1))} for g in drops[0]},
        "seeds": seeds, "steps": steps,
        "split": "trained on a random half of forget (members) vs val; tested on the other half vs test",
    }


def row(name: str, features: tuple[str, ...], result: dict[str, Any], disc: dict[str, Any]) -> dict[str, Any]:
    """One flat row of the summary."""
    u = result["unlearned"]
    return {
        "setting": name, "features": list(features), "adversary": name != CONTROL,
        "forgetting_quality": result["forgetting_quality"], "ceiling": result["ceiling"],
        "relative_forgetting": result["relative_forgetting"], "relative_forgetting_se": f_standard_error(result),
        "final_score": result["final_score"],
        **{f"{k}_{stat}": u[k][stat] for k in ("forget_acc", "retain_acc", "test_acc", "simple_mia",
                                                "cost_time_fraction", "cost_images_fraction") for stat in ("mean", "std")},
        **{f"{k}_{stat}": disc[k][stat] for k in ("disc_acc_val", "disc_acc_test") for stat in ("mean", "std")},
        "models_trained": result["timings"]["models_trained"],
        "trained": [str(label) for label in result["timings"]["trained"]],
    }


def markdown(summary: dict[str, Any]) -> str:
    """The summary's tables, as Markdown."""
    lines = [
        f"`{summary['method']}` (hyperparameters as tuned on seeds 1000..1015), scored on `{summary['config']}` "
        f"with N = {summary['n_models']} on the reporting seeds (method runs {summary['seeds']['method_runs']}, oracles "
        f"{summary['seeds']['oracles']}), once per selection of the feature groups its discriminator reads. "
        "F / ceiling ± its standard error over forget examples; accuracies and the simple MIA are means over the runs; "
        "D acc: the trained discriminator's balanced accuracy on the final model's outputs. Cost: training time over "
        "one oracle's, on a shared, loaded machine (inflated: judge by F and the accuracies).", "",
        "| features | F | F / ceiling (± se) | final | forget acc (± std) | retain acc | test acc | simple MIA | "
        "D acc forget vs val | D acc forget vs test | cost (time, loaded machine) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['setting']} | {fmt_number(r['forgetting_quality'])} | {fmt_number(r['relative_forgetting'])} ± "
            f"{fmt_number(r['relative_forgetting_se'])} | {fmt_number(r['final_score'])} | "
            f"{fmt_number(r['forget_acc_mean'])} ± {fmt_number(r['forget_acc_std'])} | "
            + " | ".join(fmt_number(r[k]) for k in ("retain_acc_mean", "test_acc_mean", "simple_mia_mean",
                                                     "disc_acc_val_mean", "disc_acc_test_mean", "cost_time_fraction_mean"))
            + " |")
    o = summary["oracle"]
    lines += ["", f"Oracles (mean of {2 * summary['n_models']}): forget acc {fmt_number(o['forget_acc'])}, retain acc "
              f"{fmt_number(o['retain_acc'])}, test acc {fmt_number(o['test_acc'])}, "
              f"simple MIA {fmt_number(o['simple_mia'])}; ceiling {fmt_number(summary['rows'][0]['ceiling'])}.", "",
              "Permutation importance (all four groups; drop of D's balanced accuracy, forget vs val, when one "
              f"group's columns are shuffled; mean ± std over the {summary['n_models']} runs' discriminators):", "",
              "| group | accuracy drop |", "|---|---:|"]
    for g, d in summary["permutation_importance"].items():
        lines.append(f"| {g} | {fmt_number(d['mean'])} ± {fmt_number(d['std'])} |")
    attack = summary.get("original_attack")
    if attack:
        lines += ["", f"What there is to erase: a fresh discriminator on the original's outputs ({attack['split']}; "
                  f"{attack['steps']} Adam steps; mean ± std over {attack['seeds']} halves and initialisations), "
                  "balanced accuracy by feature selection, and the permutation importance of the all-features one:", "",
                  "| features | held-out accuracy |", "|---|---:|"]
        lines += [f"| {k} | {fmt_number(a['mean'])} ± {fmt_number(a['std'])} |" for k, a in attack["accuracy"].items()]
        lines += ["", "| group | accuracy drop |", "|---|---:|"]
        lines += [f"| {g} | {fmt_number(d['mean'])} ± {fmt_number(d['std'])} |"
                  for g, d in attack["permutation_importance"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/cifar10-jpeg", help="local CIFAR-10 copy")
    p.add_argument("--config", default="configs/score/cpu.yaml", help="the score preset")
    p.add_argument("--method", default="configs/score/methods/discriminator.yaml", help="the tuned method config")
    p.add_argument("--n", type=int, default=8, help="N: runs per setting (2N oracles)")
    p.add_argument("--seed_base", type=int, default=0, help="first seed (the reporting seeds)")
    p.add_argument("--cache_dir", default="runs/score/cache", help="the score preset's cache (oracles, original)")
    p.add_argument("--output_dir", default="runs/disc_features", help="the score reports")
    p.add_argument("--settings", nargs="+", default=None, help="names of settings to run (default: all 10)")
    p.add_argument("--repeats", type=int, default=5, help="shuffles per group in the permutation importance")
    p.add_argument("--attack_seeds", type=int, default=5,
                   help="fresh attackers per feature selection on the original's outputs (0: none)")
    p.add_argument("--out", default=str(RESULT), help="the summary, without extension")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    chosen = settings()
    if args.settings:
        unknown = [s for s in args.settings if s not in chosen]
        if unknown:
            p.error(f"unknown setting {unknown[0]!r}: expected some of {list(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.settings}
    rows, importance, oracle = [], None, None
    t0 = time.perf_counter()
    dm = None
    for name, features in chosen.items():
        argv_s = ["-c", args.config, "--method", args.method, "--n_models", str(args.n),
                  "--seed_base", str(args.seed_base), "--data.init_args.root", args.root, "--cache_dir", args.cache_dir,
                  "--output_dir", args.output_dir, "--name", re.sub(r"[^a-z0-9]+", "_", name).strip("_")]
        if name == CONTROL:
            argv_s += ["--method_args", json.dumps(["--model.init_args.adv_weight", "0.0"])]
        elif features != FEATURE_GROUPS:  # all four: the tuned config exactly as committed
            argv_s += ["--method_args", json.dumps(["--model.init_args.features", json.dumps(list(features))])]
        result = score_main(argv_s)
        assert result is not None
        if dm is None:
            dm = score_datamodule(result["config"]["data"])
            dm.setup("test")
        disc = inspect_runs(result, dm, importance=name == "all", repeats=args.repeats)
        if "permutation_importance" in disc:
            importance = disc["permutation_importance"]
        rows.append(row(name, features, result, disc))
        oracle = {k: result["oracle"][k]["mean"] for k in ("forget_acc", "retain_acc", "test_acc", "simple_mia")}
        original_ckpt = next((Path(result["cache"]["dir"]) / result["cache"]["original"]).glob("seed-*/model.ckpt"))
        print(f"{name}: F / ceiling {fmt_number(result['relative_forgetting'])}, "
              f"D acc {fmt_number(disc['disc_acc_val']['mean'])}, trained {result['timings']['trained']}", flush=True)
    attack = original_attack(original_ckpt, dm, seeds=args.attack_seeds, steps=300) if args.attack_seeds else None
    summary = {
        "benchmark": "discriminator feature ablation (benchmarks/discriminator_features.py)",
        "config": args.config, "method": args.method, "n_models": args.n,
        "seeds": {"method_runs": f"{args.seed_base}..{args.seed_base + args.n - 1}",
                  "oracles": f"{args.seed_base}..{args.seed_base + 2 * args.n - 1}",
                  "note": "reporting seeds; the method's hyperparameters were tuned earlier by `unlearning tune` on "
                          "seeds 1000..1015 and are unchanged here"},
        "cost_note": "cost fractions measured on a shared 2-core machine under other load: inflated, "
                     "judge by F and accuracies",
        "trained_note": "models_trained counts what this invocation trained (method runs only when trained_kinds is "
                        "['method']); a setting with 0 found its N runs in the cache, from an earlier invocation",
        "trained_kinds": sorted({label.split("-")[0] for r in rows for label in r["trained"]}),
        "rows": rows, "oracle": oracle, "permutation_importance": importance, "original_attack": attack,
        "wall_s": time.perf_counter() - t0, "platform": platform.platform(), "torch": torch.__version__,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    text = markdown(summary) if importance is not None else ""
    out.with_suffix(".md").write_text(f"# Discriminator feature ablation (CPU score preset, N = {args.n})\n\n{text}")
    print(text)
    return summary


if __name__ == "__main__":
    main()
