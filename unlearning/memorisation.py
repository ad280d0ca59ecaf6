"""``unlearning memorise``: per-example memorisation of a setting's training set, as a cached stage.

Given a data split, the original's and the oracle's fit configs, a memorise run

1. trains (or finds in the score's model cache) K models on random subsets of the training set
   (retain + forget of the split), each a share ``subset_fraction`` of it: model ``k`` is the
   oracle recipe with the examples left out of its subset as its forget set (written to
   ``<cache_dir>/subsets/forget-<digest>.npy``, named by its content, and passed as
   ``--data.init_args.forget_index_file``), so it is cached, resumed and parallelised (``jobs``,
   ``launcher``) exactly like a score's oracles, and shared with any score whose forget set is
   that file;
2. trains (or finds) the original with :class:`~unlearning.callbacks.TrainingDynamics`, which logs
   each example's label probability and hit over the training (the proxies);
3. predicts every training example with each of the K models and takes the Feldman-Zhang estimate
   (:func:`~unlearning.metrics.memorisation.memorisation_estimate`);
4. compares each proxy with it (Spearman), and measures the entanglement of the split's forget set
   (and of as large sets at either end of the estimate, of the original's loss and of the centroid
   quantile) with the rest in the original's penultimate features;
5. writes ``<output_dir>/<name>/memorisation.npz`` and ``memorisation.json`` and two figures.

``memorisation.npz`` holds, per example of the training set, in the order of ``index``:

- ``index``: the example's index in the source's training set (sorted);
- ``label``: its label;
- ``estimate``: the Feldman-Zhang memorisation estimate (``NaN`` for an example never in, or never
  out of, a subset);
- ``confidence_proxy``: 1 - the label's mean probability over the original's training
  (higher = more memorised; ``NaN`` with a ``.ckpt`` original, which has no training run);
- ``accuracy_proxy``: 1 - the mean binary accuracy over the original's training (same sign);
- ``original_loss``: the original's cross-entropy on the example (eval mode, evaluation
  transform): ``band: high`` of it is the highest-loss set, ``low`` the lowest-loss one (MUBox's
  cheap stand-ins for the best and the worst case);
- ``centroid_distance``: the distance of the example's penultimate features under the original to
  the mean of its class's, over the mean distance between two class means
  (:func:`~unlearning.metrics.memorisation.centroid_distance`);
- ``centroid_quantile``: its quantile within the example's class, in (0, 1)
  (:func:`~unlearning.metrics.memorisation.within_class_quantile`): ``band: low`` of it is the
  high-entanglement set (the same share of each class, nearest their class means), ``high`` the
  low-entanglement one;
- ``in_forget``: whether the split puts the example in its forget set;
- ``members``: ``K x N`` booleans, whether model ``k`` trained on the example;
- ``correct``: ``K x N`` booleans, whether model ``k`` predicts its label;
- ``lsc``: ``K x N``, the logit-scaled confidence of its label under model ``k`` (the simulated
  oracles' answers: :func:`~unlearning.metrics.memorisation.simulated_oracle_target`);
- ``val_lsc_mean``: ``K``, each model's mean logit-scaled confidence on the val examples.

``memorisation.json`` holds the summary: ``setting_digest`` (the hash of the data, the original and
every model's recipe: equal digests mean equal scores), ``scores_sha256`` (the digest of the
``.npz`` file, for a later step's cache key), ``n_models``, ``subset_fraction``, ``spearman``
(per proxy, against the estimate), ``entanglement``, the estimate's summary and the timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearning.callbacks.memorisation import DYNAMICS_FILE, TrainingDynamics
from unlearning.metrics.memorisation import (
    SCORES_FILE,
    centroid_distance,
    entanglement_score,
    load_scores,
    memorisation_estimate,
    penultimate_outputs,
    spearman,
    subset_masks,
    within_class_quantile,
)
from unlearning.metrics.outputs import logit_scaled_confidence
from unlearning.modules.checkpoint import load_net
from unlearning.scoring.cache import CachedRun, RecipeCache, file_digest, now, recipe_key, write_json_atomic
from unlearning.scoring.cached_model import data_recipe, load_stage_config, score_datamodule, stage_recipe
from unlearning.scoring.schedule import Job, TrainPlan, check_launcher, train_plan
from unlearning.scoring.cli import command_parser, run_command_line
from unlearning.utils import atomic_path, check_writable, versions

__all__ = ["PROXIES", "SCORES_FILE", "SUMMARY_FILE", "load_scores", "main", "memorise_parser", "run_memorise"]

SUMMARY_FILE = "memorisation.json"
#: the proxies, by name: their key in the scores file (higher = more memorised)
PROXIES = {"confidence": "confidence_proxy", "accuracy": "accuracy_proxy"}
#: the argument that makes the original log its training dynamics (part of its recipe)
_DYNAMICS_ARG = "--trainer.callbacks+=" + json.dumps(
    {"class_path": f"{TrainingDynamics.__module__}.TrainingDynamics", "init_args": {"filename": DYNAMICS_FILE}})


def _subset_file(root: Path, forget: np.ndarray) -> Path:
    """The forget index file of one subset model, named by its content (written once)."""
    forget = np.ascontiguousarray(forget, dtype=np.int64)
    digest = recipe_key({"forget_index": forget.tobytes().hex()})
    path = root / "subsets" / f"forget-{digest}.npy"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, forget)
    return path


def _check_subset_split(data: dict[str, Any], forget_file: Path, rows: torch.Tensor, member: np.ndarray) -> None:
    """Check that the data module, given a subset model's forget index file, keeps the setting's
    training set and retains exactly the subset (the split of a forget index file is the data
    module's business: this fails loudly if it ever stops being so).

    Raises:
        RuntimeError: naming what differs.
    """
    init = {**dict(data.get("init_args") or {}), "forget_index_file": str(forget_file), "forget_classes": None}
    dm = score_datamodule({**data, "init_args": init})
    dm.setup("fit")
    if not torch.equal(dm.split.train, rows):
        raise RuntimeError(f"{data['class_path']} with the forget index file {str(forget_file)!r} trains on another "
                           "set of examples than the setting: memorisation needs the same training set")
    if not torch.equal(dm.split.retain, rows[torch.from_numpy(member)]):
        raise RuntimeError(f"{data['class_path']} with the forget index file {str(forget_file)!r} does not retain "
                           "the subset it was made from")


def _config_seed(cfg: dict[str, Any]) -> int:
    seed = cfg.get("seed_everything", 0)
    return 0 if seed is None or isinstance(seed, bool) else int(seed)


@torch.no_grad()
def _batches(x: torch.Tensor, rows: torch.Tensor, size: int) -> Any:
    for b in range(0, rows.numel(), size):
        yield x[rows[b : b + size]]


@torch.no_grad()
def _answers(net: torch.nn.Module, dm: Any, x: torch.Tensor, rows: torch.Tensor, labels: torch.Tensor,
             batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether ``net`` predicts the label of each row of ``x``, and the label's logit-scaled
    confidence (eval mode, evaluation transform)."""
    device = next(net.parameters()).device
    z = torch.cat([net(dm.eval_transform(xb.to(device))).float().cpu() for xb in _batches(x, rows, batch_size)])
    return (z.argmax(1) == labels).numpy(), logit_scaled_confidence(z, labels).numpy()


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="model", disable=not enabled or total == 0, dynamic_ncols=True)


def run_memorise(
    data: dict[str, Any],
    original: str,
    oracle: str,
    n_models: int = 16,
    subset_fraction: float = 0.5,
    subset_seed: int = 0,
    seed_base: int = 0,
    cache_dir: str = "runs/score/cache",
    recipe_args: Sequence[str] = (),
    output_dir: str = "runs/memorisation",
    name: str = "memorisation",
    jobs: int | None = None,
    launcher: dict[str, Any] | None = None,
    progress: bool = True,
    grid: int = 8,
    figures: bool = True,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train what is missing, then estimate and write the scores (see the module docstring).

    Args:
        data: the data split (a ``class_path``/``init_args`` section): its training set (retain +
            forget) is scored; its forget set gets the entanglement score.
        original: fit config of the original (trained with the proxies' callback, cached) or the
            path of a ``.ckpt`` (then no proxy: only the estimate and the entanglement).
        oracle: fit config of the oracle recipe (a ``RetrainOracle``): the K subset models.
        n_models: K, the number of subset models (at least 2).
        subset_fraction: the share of the training set each subset model trains on, in (0, 1)
            (Feldman and Zhang: 0.7; 0.5 makes each model a 50% random-forget oracle).
        subset_seed: seed of the subsets (model ``k``'s depends on it and ``k`` only).
        seed_base: training seed of model ``k`` is ``seed_base + k``.
        cache_dir: the model cache (the score's: models are shared with it).
        recipe_args: extra command-line arguments of the original and subset trainings.
        output_dir: where ``<name>/`` goes.
        name: the run's folder name.
        jobs: trainings at once, as in ``unlearning score``.
        launcher: a ``submitit`` job array, as in ``unlearning score``.
        progress: show progress bars.
        grid: images per row (and per end) of the example grid.
        figures: draw the PNG figures (and TensorBoard).
        config: the command's own config, stored in the summary.

    Returns:
        The summary written to ``memorisation.json``.

    Raises:
        ValueError: on a bad setting, naming the value.
        FileNotFoundError: when a config or checkpoint does not exist.
    """
    t_start = time.perf_counter()
    if not isinstance(data, dict) or not data.get("class_path"):
        raise ValueError("data must be a data module section with a class_path")
    if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 2:
        raise ValueError(f"n_models must be an integer >= 2 (models on random subsets), got {n_models!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be an integer >= 1 (trainings at once), got {jobs!r}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1 (images per row), got {grid}")
    launcher = check_launcher(launcher)
    recipe_args = [str(a) for a in recipe_args or ()]
    cache_root = Path(cache_dir)

    dm = score_datamodule(data)
    dm.setup("fit")
    split, arrays = dm.split, dm.arrays
    rows = split.train  # source indices, sorted
    labels = arrays.train_y[rows].cpu()
    masks = subset_masks(rows.numel(), n_models, subset_fraction, subset_seed)

    if original.endswith(".ckpt"):
        if not Path(original).is_file():
            raise FileNotFoundError(f"original checkpoint {original!r} does not exist")
        orig_job, orig_identity = None, {"checkpoint_sha256": file_digest(original)}
    else:
        orig_cfg = load_stage_config(original, "original")
        orig_args = (*recipe_args, _DYNAMICS_ARG)
        orig_cache = RecipeCache(cache_root, "original", stage_recipe(orig_cfg, orig_args, data))
        orig_job = Job("original", orig_cache, _config_seed(orig_cfg), original, orig_args)
        orig_identity = {"original_key": orig_cache.key, "original_seed": orig_job.seed}

    oracle_cfg = load_stage_config(oracle, "oracle")
    if not (cache_root / "subsets").is_dir():
        check_writable(cache_root, "cache folder")
    subset_jobs = []
    for k in range(n_models):
        forget_file = _subset_file(cache_root, rows.numpy()[~masks[k]])
        args = (*recipe_args, "--data.init_args.forget_index_file", str(forget_file),
                "--data.init_args.forget_classes", "null")
        cache = RecipeCache(cache_root, "oracle", stage_recipe(oracle_cfg, args, data))
        subset_jobs.append(Job("oracle", cache, seed_base + k, oracle, args))
        if k == 0:
            _check_subset_split(data, forget_file, rows, masks[0])

    all_jobs = ([orig_job] if orig_job is not None else []) + subset_jobs
    work = [j for j in all_jobs if j.cache.get(j.seed) is None]
    if work:
        check_writable(cache_root, "cache folder")
    out = Path(output_dir) / name
    check_writable(out.parent, "output folder")
    for c in {id(j.cache): j.cache for j in work}.values():
        c.clean_stale()
    plan = TrainPlan(data, work, original, orig_job.cache if orig_job else None, orig_job.seed if orig_job else 0)
    t_train = time.perf_counter()
    bar = _progress(len(work), progress, "memorise: training models")
    try:
        trained = train_plan(plan, jobs, launcher, cache_root, bar)
    finally:
        bar.close()
    train_s = time.perf_counter() - t_train

    runs: list[CachedRun] = [j.cache.get(j.seed) for j in subset_jobs]  # type: ignore[misc]
    t_eval = time.perf_counter()
    bs = int(getattr(dm, "eval_batch_size", 256))
    correct = np.zeros(masks.shape, dtype=bool)
    lsc = np.zeros(masks.shape, dtype=np.float32)
    val_lsc_mean = np.zeros(n_models)
    val_rows = split.val
    val_labels = arrays.heldout_y[val_rows].cpu()
    bar = _progress(n_models, progress, "memorise: predicting")
    try:
        for k, run in enumerate(runs):
            net, _ = load_net(run.checkpoint)
            correct[k], lsc[k] = _answers(net, dm, arrays.train_x, rows, labels, bs)
            val_lsc_mean[k] = _answers(net, dm, arrays.heldout_x, val_rows, val_labels, bs)[1].mean()
            bar.update(1)
    finally:
        bar.close()
    estimate = memorisation_estimate(masks, correct)

    n = rows.numel()
    proxies = {key: np.full(n, np.nan) for key in PROXIES.values()}
    if orig_job is not None:
        orig_run = orig_job.cache.get(orig_job.seed)
        orig_ckpt = orig_run.checkpoint
        with np.load(orig_run.path / DYNAMICS_FILE) as dyn:
            pos = np.searchsorted(rows.numpy(), dyn["index"])
            proxies["confidence_proxy"][pos] = 1.0 - dyn["confidence"]
            proxies["accuracy_proxy"][pos] = 1.0 - dyn["accuracy"]
    else:
        orig_ckpt = Path(original)
    net, _ = load_net(orig_ckpt)
    feats, logits = penultimate_outputs(net, _batches(arrays.train_x, rows, bs), dm.eval_transform)
    original_loss = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none").numpy()
    distance = centroid_distance(feats, labels)
    quantile = within_class_quantile(distance, labels)
    eval_s = time.perf_counter() - t_eval

    in_forget = torch.isin(rows, split.forget).numpy()
    entanglement = {"forget": entanglement_score(feats[~in_forget], feats[in_forget])}
    size = int(in_forget.sum())
    for score, high, low in ((estimate, "high_memorisation", "low_memorisation"),
                             (original_loss, "highest_loss", "lowest_loss"),
                             (quantile, "far_from_centroid", "near_centroid")):
        entanglement.update(_band_entanglement(feats, score, size, high, low))

    correlations = {}
    for proxy, key in PROXIES.items():
        correlations[proxy] = spearman(proxies[key], estimate) if np.isfinite(proxies[key]).sum() >= 3 else None

    out.mkdir(parents=True, exist_ok=True)
    scores_path = out / SCORES_FILE
    with atomic_path(scores_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, index=rows.numpy(), label=labels.numpy(), estimate=estimate, in_forget=in_forget,
                 members=masks, correct=correct, lsc=lsc, val_lsc_mean=val_lsc_mean, original_loss=original_loss,
                 centroid_distance=distance, centroid_quantile=quantile, **proxies)

    images_trained = sum(float(r.record()["cost"].get("images_seen", 0.0))
                         for j in work if (r := j.cache.get(j.seed)) is not None)
    setting = {"data": data_recipe(data), "original": orig_identity,
               "models": [[j.cache.key, j.seed] for j in subset_jobs],
               "subset_fraction": subset_fraction, "subset_seed": subset_seed}
    finite_est = estimate[np.isfinite(estimate)]
    summary = {
        "setting_digest": recipe_key(setting),
        "scores_file": SCORES_FILE,
        "scores_sha256": file_digest(scores_path),
        "n_models": n_models,
        "subset_fraction": subset_fraction,
        "subset_seed": subset_seed,
        "num_examples": n,
        "num_without_estimate": int(n - finite_est.size),
        "estimate": {"mean": float(finite_est.mean()), "median": float(np.median(finite_est)),
                     "share_above_0.5": float((finite_est > 0.5).mean())} if finite_est.size else {},
        "spearman": correlations,
        "proxy_sign": ("proxies are 1 - the mean over training (higher = more memorised): "
                       "a good proxy has a positive Spearman"),
        "entanglement": entanglement,
        "original": orig_identity,
        "models": [{"kind": "oracle", "key": j.cache.key, "seed": j.seed} for j in subset_jobs],
        "timings": {"models_trained": len(trained), "train_s": train_s, "eval_s": eval_s,
                    "total_s": time.perf_counter() - t_start,
                    "images_processed": int(images_trained + (n_models + 1) * n)},
        "finished": now(),
        "config": config or {},
        "versions": versions(),
    }
    write_json_atomic(out / SUMMARY_FILE, summary)
    if figures:
        _figures(out, estimate, proxies, correlations, arrays.train_x[rows].cpu(), labels.numpy(),
                 list(arrays.classes), grid)
    summary["output_dir"] = str(out)
    return summary


def _band_entanglement(feats: torch.Tensor, score: np.ndarray, size: int, high: str, low: str) -> dict[str, float]:
    """The entanglement of the ``size`` examples with the highest finite ``score`` (named ``high``)
    and of the ``size`` with the lowest (``low``) against the rest: the sets ``ScoreBandForget``
    picks with ``band: high`` and ``low`` when the pool is the whole training set. Empty when
    fewer than ``size + 1`` examples have a finite score."""
    finite = np.flatnonzero(np.isfinite(score))
    if not 0 < size < finite.size:
        return {}
    order = finite[np.argsort(score[finite], kind="stable")]
    out = {}
    for name, chosen in ((high, order[-size:]), (low, order[:size])):
        mask = np.zeros(score.size, dtype=bool)
        mask[chosen] = True
        out[name] = entanglement_score(feats[~mask], feats[mask])
    return out


def _figures(out: Path, estimate: np.ndarray, proxies: dict[str, np.ndarray], correlations: dict[str, float | None],
             images: torch.Tensor, labels: np.ndarray, classes: list[str], grid: int) -> None:
    """``memorisation.png`` (the estimate's histogram, each proxy against it) and
    ``memorisation_examples.png`` (the most and the least memorised images), also in TensorBoard."""
    from unlearning.callbacks.figures import FigureWriter, _pyplot

    plt = _pyplot()
    finite = np.isfinite(estimate)
    shown = [p for p, key in PROXIES.items() if np.isfinite(proxies[key]).any()]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(3.8 * (1 + len(shown)), 3.2), squeeze=False)
    ax = axes[0][0]
    ax.hist(estimate[finite], bins=np.linspace(-1, 1, 41), color="tab:blue", alpha=0.8)
    ax.set_xlabel("memorisation estimate")
    ax.set_ylabel("examples")
    ax.set_title(f"{int(finite.sum())} examples", fontsize=10)
    for ax, proxy in zip(axes[0][1:], shown):
        key = PROXIES[proxy]
        ax.scatter(proxies[key], estimate, s=4, alpha=0.4, color="tab:red")
        rho = correlations.get(proxy)
        ax.set_title(f"{proxy} proxy: Spearman {rho:.2f}" if rho is not None else f"{proxy} proxy", fontsize=10)
        ax.set_xlabel(f"1 - mean {proxy} over training")
        ax.set_ylabel("memorisation estimate")
    fig.tight_layout()

    order = np.flatnonzero(finite)[np.argsort(estimate[finite], kind="stable")]
    k = min(grid, order.size // 2) if order.size >= 2 else 0
    with FigureWriter(out) as writer:
        writer.add_figure("memorisation", fig)
        if k and images.dim() == 4:  # images (N x C x H x W), not points
            ends = {"most memorised": order[::-1][:k], "least memorised": order[:k]}
            fig, axes = plt.subplots(2, k, figsize=(1.3 * k, 3.2), squeeze=False)
            for r, (title, chosen) in enumerate(ends.items()):
                for ax, i in zip(axes[r], chosen):
                    img = images[i].permute(1, 2, 0).numpy()
                    grey = img.shape[-1] == 1
                    ax.imshow(img.squeeze(-1) if grey else img, cmap="gray" if grey else None)
                    ax.set_title(f"{classes[labels[i]][:10]}\n{estimate[i]:.2f}", fontsize=7)
                    ax.axis("off")
                axes[r][0].text(-0.1, 0.5, title, transform=axes[r][0].transAxes, rotation=90, ha="right",
                                va="center", fontsize=8)
            fig.tight_layout()
            writer.add_figure("memorisation_examples", fig)


# ---- command line -----------------------------------------------------------------------------
def memorise_parser() -> Any:
    """The parser of ``unlearning memorise`` (a config file, a data section and
    :func:`run_memorise`'s arguments), built as ``unlearning score``'s."""
    return command_parser(run_memorise, "unlearning memorise", (
        "Per-example memorisation of a setting's training set: the Feldman-Zhang estimate from K "
        "cached models on random subsets, the original's training-dynamics proxies and their "
        "Spearman correlation with it, and the forget set's entanglement; writes memorisation.npz "
        "and memorisation.json for later steps, and figures."), data_help="the data split whose training set is scored")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` (default ``sys.argv``) and run :func:`run_memorise`.

    Returns:
        The content of ``memorisation.json``.
    """
    result = run_command_line(memorise_parser(), run_memorise, argv)
    rhos = ", ".join(f"{p} {v:.3f}" if v is not None else f"{p} -" for p, v in result["spearman"].items())
    print(f"unlearning memorise: K = {result['n_models']}, Spearman with the estimate: {rhos}; entanglement of "
          f"the forget set {result['entanglement']['forget']:.3g}; {result['timings']['models_trained']} models "
          f"trained, scores in {result['output_dir']}", flush=True)
    return result
