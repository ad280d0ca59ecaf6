"""Why the hypernetwork's deltas add little: its one-pass answer, example by example, against the
oracles, with and without the deltas, over a range of weight noise.

Reads what a score of the hypernetwork left (``--score``: the ``score.json`` of ``unlearning score
... --method configs/score/methods/hypernet.yaml --stages.hypernet configs/score/stages/hypernet.yaml``):
the cached original and one-time stage it used, the oracles' logit-scaled confidences on the forget
set (``confidences_oracle.npy`` beside it) and the data. It trains nothing: the one-pass answer only
touches the patched last layers, so it is replayed here on the original's features, N times per
noise level with fresh noise (what ``HypernetUnlearn(one_pass=True)`` does in each run; the same N
draws for every design at one noise level, so that designs compare paired), and
scored with the competition's metric against the first N oracles (the ceiling from the other N).

Reported per design and noise: F / ceiling, the final score (against the oracles' mean retain and
test accuracy of that score), retain (the whole retain set) and test accuracy, the forget set's
mean logit-scaled confidence. The designs:

* ``deltas``: the hypernetwork's deltas for the real request (what ``one_pass`` applies);
* ``deltas (simulated-oracle stage)`` (with ``--simulated_score``): the same from the stage of
  another score of the same original, trained towards simulated oracles
  (``configs/score/stages/hypernet_simulated.yaml``);
* ``no deltas``: noise alone;
* ``direct (same loss)``: deltas of full rank optimised on the real request itself with the
  hypernetwork's own training loss (match the val outputs, distil the original on a retain
  sample and on val): what a perfect hypernetwork could emit, the amortisation gap's far end;
* ``direct (oracle mean)``: the same, with each forget example's logit-scaled confidence pulled
  to the oracles' mean instead: an upper bound of what patching these layers can do (it reads
  the oracles, so it is a measurement, not a method);
* ``direct (simulated oracles, K = k)`` (with ``--memorisation``): the same, pulled to what models
  retrained without each example say instead, read off the first k subset models of a memorise run
  on the same split (each trained on a random half, so about k/2 never saw a given example; their
  mean, shifted by the val gap between the original and them): the target that the hypernetwork's
  training could have without any oracle of the real request (the issue's "simulated oracles"),
  and how close it gets to the oracles' own mean.

And, for the hypernetwork's deltas without noise, how far they move each forget example towards
the oracles' mean (the share of the mean shift achieved, the correlation of the achieved with the
needed shift per example), their size against the patched weights and their effective rank.

Choose the one-pass noise from a score on tuning seeds (``--seed_base 1000``), never from the
reported one. Writes ``benchmarks/results/hypernet_cpu.json`` and ``.md``.

    # tuning seeds (the noise of `hypernet (one pass)` in configs/leaderboard/cpu.yaml was chosen here)
    unlearning score -c configs/score/cpu.yaml --method configs/score/methods/hypernet.yaml \
        --stages.hypernet configs/score/stages/hypernet.yaml --data.init_args.root ../shared/data/cifar10-jpeg \
        --n_models 8 --seed_base 1000 --output_dir runs/hypernet_tune
    python benchmarks/hypernet_cpu.py --score runs/hypernet_tune/hypernet/score.json \
        --out benchmarks/results/hypernet_cpu_tuning.json
    # reporting seeds: the hypernet row of `python benchmarks/score_cpu.py` (the same cached models
    # as `unlearning score -c configs/score/cpu.yaml ... --output_dir runs/leaderboard/cpu/methods`),
    # with the subset models of `python benchmarks/memorisation_cpu.py` (K = 32, same split)
    python benchmarks/hypernet_cpu.py --score runs/leaderboard/cpu/methods/hypernet/score.json \
        --memorisation runs/memorisation/cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearning.methods.losses import distill_kl, match_unseen
from unlearning.metrics import logit_scaled_confidence
from unlearning.metrics.forgetting import final_score, forgetting_points, per_example_epsilon
from unlearning.scoring.cached_model import score_datamodule


def _datamodule(data: dict[str, Any], root: str | None) -> Any:
    spec = json.loads(json.dumps(data))
    if root is not None:
        spec.setdefault("init_args", {})["root"] = root
    dm = score_datamodule(spec)
    dm.setup("fit")
    return dm


def _effective_rank(d: torch.Tensor, rel: float = 0.01) -> int:
    """Singular values above ``rel`` of the largest."""
    sv = torch.linalg.svdvals(d)
    return int((sv > rel * sv[0]).sum()) if float(sv[0]) > 0 else 0


def _direct(tail: Any, mu: np.ndarray | None, hf: torch.Tensor, yf: torch.Tensor, hr: torch.Tensor, zr: torch.Tensor,
            hv: torch.Tensor, yv: torch.Tensor, zv: torch.Tensor, steps: int,
            lr: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Deltas of full rank optimised with Adam on this request: with the hypernetwork's own loss
    (``mu`` None), or pulling each forget example's logit-scaled confidence to ``mu``."""
    d = [(torch.zeros_like(layer.weight, requires_grad=True), torch.zeros_like(layer.bias, requires_grad=True))
         for layer in tail.linears]
    opt = torch.optim.Adam([t for pair in d for t in pair], lr=lr)
    mu_t = None if mu is None else torch.as_tensor(mu, dtype=torch.float32)
    for _ in range(steps):
        opt.zero_grad()
        zf = tail.forward(hf, d)
        forget = (match_unseen(zf, yf, zv, yv) if mu_t is None
                  else ((logit_scaled_confidence(zf, yf) - mu_t) ** 2).mean())
        loss = forget + distill_kl(tail.forward(hr, d), zr, 1.0) + distill_kl(tail.forward(hv, d), zv, 1.0)
        loss.backward()
        opt.step()
    return [(a.detach(), b.detach()) for a, b in d]


def simulated_oracles(memorisation: str | Path, dm: Any, lsc_val_original: np.ndarray,
                      sizes: list[int]) -> dict[int, dict[str, Any]]:
    """Per forget example, what models retrained without it say, from a memorise run's subset models
    (:func:`~unlearning.metrics.memorisation.simulated_oracle_target` of the first K, for each K of
    ``sizes``): each trained on a random half, so about half of them never saw a given example.

    Args:
        memorisation: the memorise run's folder (``memorisation.npz``), on the score's split.
        dm: the score's data module (set up).
        lsc_val_original: the original's logit-scaled confidences on val (the full-data model).
        sizes: K values to report.

    Returns:
        Per K: ``target`` (per forget example, in the forget stream's order), ``shift`` (the val
        gap added), ``seen_by_all`` (forget examples every one of the K models trained on).

    Raises:
        ValueError: when the run's split is not the score's, or it has fewer than K models or no answers.
    """
    from unlearning.metrics.memorisation import load_scores, load_simulated_oracles, simulated_oracle_target  # noqa: PLC0415

    path = Path(memorisation) / "memorisation.npz"
    split = load_scores(path, required=("index", "in_forget"))
    forget = dm.split.forget.numpy()
    if not np.array_equal(np.sort(split["index"][split["in_forget"].astype(bool)]), np.sort(forget)):
        raise ValueError(f"memorise run {str(path)!r} is not on the score's split: its forget set differs")
    members, lsc, val = load_simulated_oracles(path, forget, max(sizes))
    reference = float(lsc_val_original.mean())
    return {k: {"target": simulated_oracle_target(members[:k], lsc[:k], val[:k], reference),
                "shift": reference - float(val[:k].mean()), "seen_by_all": int(members[:k].all(0).sum())}
            for k in sizes}


def _cached_checkpoint(score: dict[str, Any], cache_key: str) -> Path:
    """The checkpoint of a cached model of a score (its original, or a stage)."""
    return sorted((Path(score["cache"]["dir"]) / cache_key).glob("seed-*/model.ckpt"))[0]


def study(score_file: str | Path, noises: list[float], root: str | None = None, seed: int = 0,
          direct_steps: int = 300, direct_lr: float = 1e-2, memorisation: str | Path | None = None,
          sizes: list[int] | None = None, simulated_score: str | Path | None = None) -> dict[str, Any]:
    """The table of :mod:`benchmarks.hypernet_cpu` from one hypernetwork score (module docs); with
    ``memorisation`` (a memorise run on the same split), the simulated-oracle designs for each K of ``sizes``."""
    from unlearning.methods.hypernet import PatchedTail  # noqa: PLC0415
    from unlearning.methods.hypernet.trainer import load_hypernet  # noqa: PLC0415
    from unlearning.modules import load_net  # noqa: PLC0415

    score_file = Path(score_file)
    score = json.loads(score_file.read_text())
    original = _cached_checkpoint(score, score["cache"]["original"])
    stage_ckpt = _cached_checkpoint(score, score["stages"]["hypernet"]["cache"])
    conf = np.load(score_file.parent / "confidences_oracle.npy")  # (E, 2N)
    n = conf.shape[1] // 2
    mu = conf.mean(1)
    dm = _datamodule(score["config"]["data"], root)
    net, _ = load_net(original)
    net.eval()
    hyper, meta = load_hypernet(str(stage_ckpt))
    tail = PatchedTail(net, int(meta["patched_layers"]))

    def features(stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, idx = dm.stream_source(stream)
        hs = [tail.features(dm.eval_transform(x[idx[i:i + 512]])).float() for i in range(0, len(idx), 512)]
        return torch.cat(hs), y[idx]

    with torch.no_grad():
        (hf, yf), (hr, yr), (ht, yt), (hv, yv) = (features(s) for s in ("forget", "retain", "test", "val"))
        zf, inputs = tail.forward(hf, return_inputs=True)
        deltas = hyper(hf, yf, zf, inputs)
        zero = [(torch.zeros_like(dw), torch.zeros_like(db)) for dw, db in deltas]
        lsc_original = logit_scaled_confidence(zf, yf).numpy()
        lsc_patched = logit_scaled_confidence(tail.forward(hf, deltas), yf).numpy()
    ceiling = float(forgetting_points(per_example_epsilon(conf[:, :n], conf[:, n:]), n).mean())
    ra_oracle, ta_oracle = score["oracle"]["retain_acc"]["mean"], score["oracle"]["test_acc"]["mean"]
    need, got = mu - lsc_original, lsc_patched - lsc_original
    out: dict[str, Any] = {
        "score": str(score_file), "n_models": n, "num_forget": int(conf.shape[0]), "ceiling": ceiling,
        "oracle_seeds": f"{score['config']['seed_base']}..{score['config']['seed_base'] + 2 * n - 1}",
        "per_example": {
            "forget_lsc_original": float(lsc_original.mean()), "forget_lsc_patched": float(lsc_patched.mean()),
            "forget_lsc_oracles": float(mu.mean()),
            "share_of_mean_shift": float(got.mean() / need.mean()),
            "corr_shift_achieved_needed": float(np.corrcoef(need, got)[0, 1]),
            "delta_norm_ratio": [float(dw.norm() / layer.weight.detach().norm()) for (dw, _), layer in zip(deltas, tail.linears)],
            "delta_effective_rank": [_effective_rank(dw) for dw, _ in deltas],
            "delta_top2_energy": [float((torch.linalg.svdvals(dw)[:2] ** 2).sum() / (dw ** 2).sum()) for dw, _ in deltas],
            "hypernet_rank": int(hyper.rank),
        },
        "rows": [],
    }
    with torch.no_grad():
        zr_sample = tail.forward(hr[:1024])
        zv = tail.forward(hv)
    targets: dict[str, np.ndarray | None] = {"same loss": None, "oracle mean": mu}
    if memorisation is not None:
        sims = simulated_oracles(memorisation, dm, logit_scaled_confidence(zv, yv).numpy(), sizes or [8])
        half = np.corrcoef(conf[:, :n].mean(1), conf[:, n:].mean(1))[0, 1]
        out["simulated_oracles"] = {"memorisation": str(memorisation), "oracle_halves_corr": float(half),
                                    "oracle_std_per_example": float(conf.std(1).mean()), "sizes": {}}
        for k, sim in sims.items():
            t = sim["target"]
            out["simulated_oracles"]["sizes"][str(k)] = {
                "corr_with_oracle_mean": float(np.corrcoef(t, mu)[0, 1]),
                "rmse_to_oracle_mean": float(np.sqrt(((t - mu) ** 2).mean())),
                "target_mean": float(t.mean()), "val_shift": sim["shift"], "seen_by_all": sim["seen_by_all"]}
            targets[f"simulated oracles, K = {k}"] = t
    torch.manual_seed(seed)
    designs = {"deltas": deltas, "no deltas": zero}
    if simulated_score is not None:
        other = json.loads(Path(simulated_score).read_text())
        if other["cache"]["original"] != score["cache"]["original"]:
            raise ValueError(f"score {str(simulated_score)!r} is of another original than {str(score_file)!r}")
        other_ckpt = _cached_checkpoint(other, other["stages"]["hypernet"]["cache"])
        with torch.no_grad():
            sim_deltas = load_hypernet(str(other_ckpt))[0](hf, yf, zf, inputs)
            got_sim = logit_scaled_confidence(tail.forward(hf, sim_deltas), yf).numpy() - lsc_original
        designs["deltas (simulated-oracle stage)"] = sim_deltas
        out["per_example"]["simulated_stage"] = {
            "share_of_mean_shift": float(got_sim.mean() / need.mean()),
            "corr_shift_achieved_needed": float(np.corrcoef(need, got_sim)[0, 1]),
            "delta_effective_rank": [_effective_rank(dw) for dw, _ in sim_deltas]}
    for name, target in targets.items():
        designs[f"direct ({name})"] = _direct(tail, target, hf, yf, hr[:1024], zr_sample, hv, yv, zv,
                                              direct_steps, direct_lr)
    for variant, ds in designs.items():
        for noise in noises:
            # the same N noise draws for every design at a noise level: the designs differ by their
            # deltas alone (paired), not by which draws they got
            gen = torch.Generator().manual_seed(seed * 100_003 + round(noise * 1000))
            lscs, ra, ta = [], [], []
            for _ in range(n):
                d = tail.add_noise(ds, noise, gen)
                with torch.no_grad():
                    lscs.append(logit_scaled_confidence(tail.forward(hf, d), yf).numpy())
                    ra.append(float((tail.forward(hr, d).argmax(1) == yr).float().mean()))
                    ta.append(float((tail.forward(ht, d).argmax(1) == yt).float().mean()))
            f = float(forgetting_points(per_example_epsilon(conf[:, :n], np.stack(lscs, 1)), n).mean())
            out["rows"].append({
                "variant": variant, "weight_noise": noise, "forgetting_quality": f, "relative_forgetting": f / ceiling,
                "final_score": final_score(f, float(np.mean(ra)), ra_oracle, float(np.mean(ta)), ta_oracle),
                "retain_acc": float(np.mean(ra)), "test_acc": float(np.mean(ta)),
                "forget_lsc": float(np.mean(lscs)),
            })
    return out


def markdown(out: dict[str, Any]) -> str:
    """The rows as a markdown table, with the per-example line above it."""
    pe = out["per_example"]
    lines = [
        "# Why the hypernetwork's deltas add little (CPU score preset)",
        "",
        f"`{out.get('command', 'python benchmarks/hypernet_cpu.py')}` ({out.get('wall_s', float('nan')):.0f} s): the "
        "one-pass answer replayed on the original's features, N runs per row with fresh weight noise, scored "
        "against the oracles (module docs of `benchmarks/hypernet_cpu.py`).",
        "",
        f"Oracles {out['oracle_seeds']}, N = {out['n_models']}, ceiling {out['ceiling']:.4f}. Deltas without noise "
        f"move the forget set's mean logit-scaled confidence from {pe['forget_lsc_original']:.3f} to "
        f"{pe['forget_lsc_patched']:.3f} (oracles {pe['forget_lsc_oracles']:.3f}: {pe['share_of_mean_shift']:.2f} of the way); "
        f"per example, achieved and needed shifts correlate at {pe['corr_shift_achieved_needed']:.2f}. Their size against "
        f"the patched weights: {', '.join(f'{v:.3f}' for v in pe['delta_norm_ratio'])}; effective rank (singular values "
        f"above 1% of the largest): {', '.join(str(v) for v in pe['delta_effective_rank'])}; share of their energy in "
        f"the top two directions: {', '.join(f'{v:.2f}' for v in pe['delta_top2_energy'])}.",
    ]
    if "simulated_stage" in pe:
        ss = pe["simulated_stage"]
        lines[-1] += (f" The simulated-oracle stage's deltas go {ss['share_of_mean_shift']:.2f} of the way, correlate with "
                      f"the needed shift at {ss['corr_shift_achieved_needed']:.2f}, effective rank "
                      f"{', '.join(str(v) for v in ss['delta_effective_rank'])}.")
    sim = out.get("simulated_oracles")
    if sim:
        lines += ["", f"Simulated oracles (subset models of `{sim['memorisation']}`): two halves of the oracles' "
                  f"means correlate at {sim['oracle_halves_corr']:.3f} per example (one oracle's std around their mean: "
                  f"{sim['oracle_std_per_example']:.2f}).", "",
                  "| K | corr. with the oracles' mean | rmse | target mean | val shift | seen by all K |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['corr_with_oracle_mean']:.3f} | {v['rmse_to_oracle_mean']:.3f} | {v['target_mean']:.3f} | "
                  f"{v['val_shift']:.3f} | {v['seen_by_all']} |" for k, v in sim["sizes"].items()]
    lines += [
        "",
        "| design | weight noise | F / ceiling | final | retain acc | test acc | forget lsc |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["rows"]:
        lines.append(f"| {r['variant']} | {r['weight_noise']:.2f} | {r['relative_forgetting']:.3f} | {r['final_score']:.4f} | "
                     f"{r['retain_acc']:.3f} | {r['test_acc']:.3f} | {r['forget_lsc']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--score", required=True, help="score.json of a hypernetwork score (on tuning seeds)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.2, 0.4, 0.5, 0.6, 0.8],
                   help="weight noise levels (share of each patched matrix's standard deviation); without noise the N "
                        "runs are identical and F is 0 by its definition")
    p.add_argument("--direct_steps", type=int, default=300, help="Adam steps of the direct designs")
    p.add_argument("--root", default=None, help="where the data lives, if not where the score read it")
    p.add_argument("--memorisation", default=None,
                   help="a memorise run's folder on the score's split (e.g. runs/memorisation/cpu): adds the "
                        "simulated-oracle designs")
    p.add_argument("--simulated_score", default=None,
                   help="score.json of the same original with the simulated-oracle stage: adds its deltas")
    p.add_argument("--k", type=int, nargs="+", default=[8, 32], help="subset models per simulated-oracle design")
    p.add_argument("--out", default="benchmarks/results/hypernet_cpu.json", help="the JSON; the .md goes beside it")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = study(args.score, args.noise, args.root, direct_steps=args.direct_steps, memorisation=args.memorisation,
                sizes=args.k, simulated_score=args.simulated_score)
    out["wall_s"] = time.perf_counter() - t0
    out["command"] = " ".join(["python benchmarks/hypernet_cpu.py", *(sys.argv[1:] if argv is None else argv)])
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".md").write_text(markdown(out))
    print(markdown(out), flush=True)
    print(f"hypernet_cpu: wrote {path} and {path.with_suffix('.md')}", flush=True)
    return out


if __name__ == "__main__":
    main()
