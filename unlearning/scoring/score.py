"""``unlearning score``: the competition's forgetting score of a method against 2N oracles.

Given a data split, the oracle recipe, the original model and a method config, a score run

1. trains (or finds in the cache) 2N oracles with seeds ``0 .. 2N-1`` (from ``seed_base``): the
   first N to score against, the other N to measure the ceiling;
2. runs the method N times from the same original with seeds ``0 .. N-1`` (also cached);
3. gathers the logit-scaled confidence of every forget example under all models;
4. computes per-example epsilon, F and the final score, the ceiling (F between the two halves of
   the oracles: what perfect unlearning gets at this N) and F / ceiling;
5. summarises the base class's per-run metrics over the N runs and flags a method whose mean cost
   is over the competition's limit (20% of one oracle's training);
6. on corrupted training data (:class:`~unlearning.data.CorruptedForget`), adds how much of the
   corruption the original, the oracles and the method runs still show (``healing``, see
   :mod:`unlearning.scoring.healing`).

``seeds`` restricts which models this process trains, so that several processes, machines or a
SLURM array can fill one cache; the score is computed once every model is there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.metrics.forgetting import (
    EPSILON_CAP,
    final_score,
    forgetting_points,
    per_example_epsilon,
)
from unlearning.metrics.klom import klom
from unlearning.registry import module_class
from unlearning.scoring.cache import CachedRun, RecipeCache, now, write_json_atomic
from unlearning.scoring.fingerprint import code_identity
from unlearning.scoring.healing import HEALING_METRICS, healing_summary, original_healing
from unlearning.scoring.report import write_outputs
from unlearning.scoring.cached_model import (
    checkpoint_identity,
    complete_evaluation,
    load_stage_config,
    needs_completion,
    score_datamodule,
    stage_recipe,
    training_data,
)
from unlearning.scoring.setting import ScoreSetting
from unlearning.scoring.schedule import Job, TrainPlan, train_plan
from unlearning.utils import check_writable, versions

__all__ = ["RUN_METRICS", "json_ready", "run_score", "summarise"]

#: per-run metrics summarised over the N runs (mean, std, min, max)
RUN_METRICS = (
    "retain_acc", "forget_acc", "test_acc", "simple_mia", "predictive_mia", "mia_efficacy",
    "cost_time_s", "cost_time_fraction", "cost_images_fraction",
)


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def summarise(records: Sequence[dict[str, Any]], oracle_cost: dict[str, float]) -> dict[str, dict[str, float]]:
    """Mean, spread and range of each of :data:`RUN_METRICS` over runs; cost fractions are taken
    against ``oracle_cost`` (the mean training cost of the oracles)."""
    rows = []
    for rec in records:
        m = dict(rec["metrics"])
        cost = rec["cost"]
        if oracle_cost.get("train_time_s"):
            m["cost_time_fraction"] = cost["train_time_s"] / oracle_cost["train_time_s"]
        if oracle_cost.get("images_seen"):
            m["cost_images_fraction"] = cost["images_seen"] / oracle_cost["images_seen"]
        m["cost_time_s"] = cost["train_time_s"]
        rows.append(m)
    return {k: _stats([r.get(k, math.nan) for r in rows]) for k in RUN_METRICS}


def _config_seed(cfg: dict[str, Any]) -> int:
    """A stage config's ``seed_everything`` (0 when unset, ``null`` or a boolean)."""
    seed = cfg.get("seed_everything", 0)
    return 0 if seed is None or isinstance(seed, bool) else int(seed)


@dataclass
class _Caches:
    """The caches of one score: the oracles', the method's, the original's and each stage's."""

    oracles: RecipeCache
    methods: RecipeCache
    #: ``None`` for a given checkpoint
    original: RecipeCache | None
    original_seed: int
    #: one-time stage argument -> (its cache, its seed, its config)
    stages: dict[str, tuple[RecipeCache, int, str]]
    #: the code digests of every recipe
    code: dict[str, Any]


def _original_run(
    original: str, data: dict[str, Any], recipe_args: Sequence[str], cache_dir: Path
) -> tuple[RecipeCache | None, int, dict[str, Any]]:
    """The original's cache (``None`` for a given checkpoint), its seed and its identity."""
    if original.endswith(".ckpt"):
        if not Path(original).is_file():
            raise FileNotFoundError(f"original checkpoint {original!r} does not exist")
        return None, 0, checkpoint_identity(original)
    cfg = load_stage_config(original, "original")
    seed = _config_seed(cfg)
    cache = RecipeCache(cache_dir, "original", stage_recipe(cfg, recipe_args, training_data(data)))
    return cache, seed, {"original_key": cache.key, "original_seed": seed}


def _recipe_caches(setting: ScoreSetting, data: dict[str, Any], method: str, method_args: Sequence[str],
                   stages: dict[str, str]) -> _Caches:
    """Every cache a score of ``method`` reads, keyed by the recipes (configs, arguments, data,
    original) of its models; checks the method's one-time stages against ``stages``."""
    cache_root = Path(setting.cache_dir)
    oracle_cfg = load_stage_config(setting.oracle, "oracle")
    method_cfg = load_stage_config(method, "method")
    orig_cache, orig_seed, orig_identity = _original_run(setting.original, data, setting.recipe_args, cache_root)
    oracles = RecipeCache(cache_root, "oracle", stage_recipe(oracle_cfg, setting.recipe_args, data))
    _check_stages(method, method_cfg, stages)
    code = {"oracle": code_identity(oracle_cfg, data), "method": code_identity(method_cfg, data)}
    if orig_cache is not None:
        code["original"] = code_identity(load_stage_config(setting.original, "original"), data)
    stage_caches: dict[str, tuple[RecipeCache, int, str]] = {}
    for arg, cfg_path in stages.items():
        cfg = load_stage_config(cfg_path, f"stage {arg!r}")
        stage_caches[arg] = (RecipeCache(cache_root, "stage", {**stage_recipe(cfg, (), data), **orig_identity}),
                             _config_seed(cfg), str(cfg_path))
        code[f"stage {arg}"] = code_identity(cfg, data)
    method_recipe = {**stage_recipe(method_cfg, method_args, data), **orig_identity}
    if stage_caches:
        method_recipe["stages"] = {arg: c.key for arg, (c, _, _) in stage_caches.items()}
    return _Caches(oracles, RecipeCache(cache_root, "method", method_recipe), orig_cache, orig_seed, stage_caches, code)


def _missing_work(setting: ScoreSetting, caches: _Caches, method: str, method_args: Sequence[str]) -> list[Job]:
    """What this process trains: its shard's oracles and method runs missing from the cache, and
    the original and one-time stages they need."""
    n, base = setting.n_models, setting.seed_base
    oracle_seeds = [base + s for s in setting.shard if s < 2 * n]
    method_seeds = [base + s for s in setting.shard if s < n]
    need_methods = caches.methods.missing(method_seeds)
    recipe = tuple(setting.recipe_args)
    work: list[Job] = []
    if caches.original is not None and need_methods and caches.original.get(caches.original_seed) is None:
        work.append(Job("original", caches.original, caches.original_seed, setting.original, recipe))
    work += [Job("oracle", caches.oracles, s, setting.oracle, recipe) for s in caches.oracles.missing(oracle_seeds)]
    if need_methods:
        work += [Job("stage", c, seed, cfg_path) for c, seed, cfg_path in caches.stages.values() if c.get(seed) is None]
    work += [Job("method", caches.methods, s, method, tuple(method_args)) for s in need_methods]
    return work


def _stage_costs(caches: _Caches, oracle_cost: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each one-time stage's config, cache and cost, also as fractions of one oracle's."""
    out = {}
    for arg, (c, stage_seed, cfg_path) in caches.stages.items():
        run = c.get(stage_seed)
        cost = run.record()["cost"] if run is not None else {}
        out[arg] = {"config": cfg_path, "cache": c.dir.name, "cost": cost}
        for unit, key in (("time", "train_time_s"), ("images", "images_seen")):
            out[arg][f"cost_{unit}_fraction"] = (cost.get(key, math.nan) / oracle_cost[key]
                                                 if oracle_cost[key] else math.nan)
    return out


def run_score(
    data: dict[str, Any],
    method: str,
    setting: ScoreSetting,
    name: str | None = None,
    output_dir: str = "runs/score",
    method_args: Sequence[str] = (),
    stages: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Train what is missing, then score (see the module docstring).

    Args:
        data: the data split every stage trains and is tested on (a ``class_path``/``init_args``
            section, as in a fit config; it replaces the stage configs' own).
        method: fit config of the unlearning method; its ``original``/``oracle`` paths are set by
            the score.
        setting: the oracles, the original, N, the cache and the training plan.
        name: the score's name (default: the method config's file name without extension).
        output_dir: where ``<name>/`` with ``score.json``, arrays, report and TensorBoard go.
        method_args: extra command-line arguments of the method runs.
        stages: one-time stages of an amortised method, ``{init argument: fit config}``: each is
            trained once per original (its config's seed, ``--model.init_args.original`` set to
            the original), cached like the original, and its checkpoint passed to every method
            run as ``--model.init_args.<argument>`` (e.g. ``{hypernet: configs/cpu/hypernet.yaml}``).
            Its cost is reported apart from the per-run cost.
        config: the score's own config, stored in ``score.json``.

    Returns:
        The content of ``score.json``, or ``None`` when models are still missing after training
        this process's share (``seeds``).

    Raises:
        ValueError: on a bad config.
        FileNotFoundError: when a config or checkpoint does not exist.
    """
    t_start = time.perf_counter()
    if not isinstance(data, dict) or not data.get("class_path"):
        raise ValueError("data must be a data module section with a class_path")
    name = name or Path(method).stem
    n = setting.n_models
    caches = _recipe_caches(setting, data, method, method_args, stages or {})
    work = _missing_work(setting, caches, method, method_args)
    if work:  # a folder that could not take the models or the score fails now, not after the training
        check_writable(Path(setting.cache_dir), "cache folder")
    check_writable(Path(output_dir), "output folder")
    for c in {id(j.cache): j.cache for j in work}.values():
        c.clean_stale()
    plan = TrainPlan(data, work, setting.original, caches.original, caches.original_seed,
                     {arg: (c, seed) for arg, (c, seed, _) in caches.stages.items()})

    t_train = time.perf_counter()
    bar = _progress(len(work), setting.progress)
    try:
        trained = train_plan(plan, setting.jobs, setting.launcher, Path(setting.cache_dir), bar)
    finally:
        bar.close()
    train_s = time.perf_counter() - t_train

    oracle_runs = [caches.oracles.get(setting.seed_base + s) for s in range(2 * n)]
    method_runs = [caches.methods.get(setting.seed_base + s) for s in range(n)]
    missing = sum(r is None for r in (*oracle_runs, *method_runs))
    if missing:
        print(f"unlearning score: {missing} of {3 * n} models are not in the cache yet "
              f"(this process trained {len(trained)}); run again without --seeds once every shard is done")
        return None

    # entries cached before the margins and the predictive attack were kept: evaluate them once more
    incomplete = [r for r in (*oracle_runs, *method_runs) if needs_completion(r)]
    dm = score_datamodule(data) if incomplete else None
    for run in incomplete:
        complete_evaluation(run, data, dm)
    result = _score(oracle_runs, method_runs, n, setting.cost_limit)
    result["stages"] = _stage_costs(caches, result["oracle_cost"])
    method_recs = [r.record() for r in method_runs]
    if any(m in method_recs[0]["metrics"] for m in HEALING_METRICS.values()):  # corrupted training data
        result["healing"] = healing_summary([r.record() for r in oracle_runs], method_recs,
                                            _original_healing(setting, caches, data))
    result.update(
        name=name,
        method_config=str(method),
        oracle_config=str(setting.oracle),
        original=str(setting.original),
        cache={"dir": str(setting.cache_dir), "oracle": caches.oracles.dir.name, "method": caches.methods.dir.name,
               "original": caches.original.dir.name if caches.original is not None else str(setting.original)},
        config=config or {},
        code=caches.code,
        finished=now(),
        versions=versions(),
    )
    result["timings"].update(train_s=train_s, models_trained=len(trained), trained=trained)
    out = Path(output_dir) / name
    result["output_dir"] = str(out)
    write_outputs(out, result)
    result["timings"]["total_s"] = time.perf_counter() - t_start
    write_json_atomic(out / "score.json", json_ready({k: v for k, v in result.items() if k != "arrays"}))
    return result


def _original_healing(setting: ScoreSetting, caches: _Caches, data: dict[str, Any]) -> dict[str, Any] | None:
    """The original's healing metrics on this score's split (``None`` when its cache entry is gone)."""
    if caches.original is None:
        checkpoint: Path | None = Path(setting.original)
    else:
        run = caches.original.get(caches.original_seed)
        checkpoint = run.checkpoint if run is not None else None
    return original_healing(checkpoint, score_datamodule(data)) if checkpoint is not None else None


def _check_stages(method: str, cfg: dict[str, Any], stages: dict[str, str]) -> None:
    """Every one-time stage the method declares is given a config, and no other."""
    model = cfg.get("model")
    path = model.get("class_path") if isinstance(model, dict) else model
    cls = module_class(path) if isinstance(path, str) else None
    declared = dict(getattr(cls, "stages", {}) or {})
    missing = [a for a in declared if a not in stages]
    if missing:
        raise ValueError(
            f"{cls.__name__} ({method}) needs its one-time stage {missing[0]!r}: give its fit config with "
            f"--stages.{missing[0]} CONFIG (a {declared[missing[0]].rpartition('.')[2]})"
        )
    extra = [a for a in stages if a not in declared]
    if extra and cls is not None:
        raise ValueError(f"{cls.__name__} ({method}) has no one-time stage {extra[0]!r}: expected some of {sorted(declared)}")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="score: training models", unit="model", disable=not enabled or total == 0,
                dynamic_ncols=True)


def _score(oracle_runs: list[CachedRun], method_runs: list[CachedRun], n: int, cost_limit: float) -> dict[str, Any]:
    """The numbers of ``score.json`` from finished runs (``2N`` oracles, ``N`` method runs)."""
    oracle_recs = [r.record() for r in oracle_runs]
    method_recs = [r.record() for r in method_runs]
    digests = {rec["forget_index_digest"] for rec in (*oracle_recs, *method_recs)}
    if len(digests) != 1:
        raise ValueError("the cached models were not all tested on the same forget set")
    conf_oracle = np.stack([r.forget_lsc() for r in oracle_runs], axis=1)  # (E, 2N)
    conf_method = np.stack([r.forget_lsc() for r in method_runs], axis=1)  # (E, N)
    t0 = time.perf_counter()
    eps = per_example_epsilon(conf_oracle[:, :n], conf_method)
    eps_ceiling = per_example_epsilon(conf_oracle[:, :n], conf_oracle[:, n:])
    epsilon_s = time.perf_counter() - t0
    f = float(forgetting_points(eps, n).mean())
    f_ceiling = float(forgetting_points(eps_ceiling, n).mean())

    def mean_metric(recs: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([rec["metrics"][key] for rec in recs]))

    klom_summary = {}
    if all(r.has_margins() for r in (*oracle_runs, *method_runs)):
        for group in ("forget", "retain", "heldout"):
            o = np.stack([r.margins(group) for r in oracle_runs], axis=1)
            u = np.stack([r.margins(group) for r in method_runs], axis=1)
            k, k_ceiling = klom(o[:, :n], u), klom(o[:, :n], o[:, n:])
            klom_summary[group] = {"mean": float(k.mean()), "median": float(np.median(k)),
                                   "ceiling_mean": float(k_ceiling.mean()), "examples": int(k.size)}
    first, second = oracle_recs[:n], oracle_recs[n:]
    ra_u, ra_r, ra_r2 = (mean_metric(x, "retain_acc") for x in (method_recs, first, second))
    ta_u, ta_r, ta_r2 = (mean_metric(x, "test_acc") for x in (method_recs, first, second))
    oracle_cost = {k: float(np.mean([rec["cost"][k] for rec in oracle_recs])) for k in ("train_time_s", "images_seen")}
    unlearned = summarise(method_recs, oracle_cost)
    mean_cost = unlearned["cost_time_fraction"]["mean"]
    return {
        "n_models": n,
        "num_forget": int(conf_method.shape[0]),
        "forgetting_quality": f,
        "ceiling": f_ceiling,
        "relative_forgetting": f / f_ceiling if f_ceiling > 0 else math.nan,
        "final_score": final_score(f, ra_u, ra_r, ta_u, ta_r),
        "ceiling_final_score": final_score(f_ceiling, ra_r2, ra_r, ta_r2, ta_r),
        "retain_acc_ratio": ra_u / ra_r,
        "test_acc_ratio": ta_u / ta_r,
        "unlearned": unlearned,
        "oracle": summarise(oracle_recs, oracle_cost),
        "oracle_train_time_s": oracle_cost["train_time_s"],
        "oracle_cost": oracle_cost,
        "confidence_spread": {
            "unlearned": float(np.median(conf_method.std(axis=1, ddof=1))),
            "oracle": float(np.median(conf_oracle[:, :n].std(axis=1, ddof=1))),
        },
        "cost_limit": cost_limit,
        "over_cost_limit": bool(mean_cost > cost_limit),
        "klom": klom_summary,
        "epsilon": _eps_summary(eps, n),
        "epsilon_ceiling": _eps_summary(eps_ceiling, n),
        "timings": {"epsilon_s": epsilon_s},
        "arrays": {"epsilon": eps, "epsilon_ceiling": eps_ceiling,
                   "confidences_oracle": conf_oracle, "confidences_unlearned": conf_method},
    }


def _eps_summary(eps: np.ndarray, n: int) -> dict[str, float]:
    limit = math.ceil(math.log(n - 1))  # epsilon from here on earns 0 points
    return {"mean": float(eps.mean()), "median": float(np.median(eps)), "max": float(eps.max()),
            "share_zero_points": float((eps >= limit).mean()), "share_at_cap": float((eps >= EPSILON_CAP).mean())}


def json_ready(obj: Any) -> Any:
    """NaN and infinities as ``null``; numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
