"""``unlearning tune``: a method's hyperparameters searched with Optuna against ``unlearning score``.

Each trial samples values from a search space (a YAML file beside the method's config), runs
:func:`~unlearning.scoring.score.run_score` with them as method arguments and returns its final
score (0 when the runs' mean cost is over the competition's limit: such a method would be
disqualified). Optuna's TPE sampler proposes the values.

Honest by construction: the trials are scored on seeds disjoint from the reporting seeds. With
the defaults, tuning uses oracles and method runs with seeds ``1000 ..`` and the reported score
(``unlearning score`` / ``leaderboard`` with ``seed_base 0``) seeds ``0 .. 2N-1``, so no model a
reported number rests on took part in choosing the values (a ``seed_base`` whose seeds overlap the
reporting ones is refused). The oracles of the tuning seeds are trained once and shared by every
trial through the score's cache; a trial that repeats values already tried trains nothing.

The study lives in an Optuna storage: SQLite by default (``<output_dir>/<study>.db``), or any
URL Optuna accepts (``postgresql://...`` on a cluster). Several processes can work one study at
once, and a killed study resumes where it stopped: a trial whose process died is noticed by its
missing heartbeat, marked failed and retried with the same values (whose finished runs are in the
cache). ``n_trials`` counts completed trials over all processes.

Pruning is not used: the objective is one number over N complete runs, and a score over fewer runs
is not comparable (the metric depends on N), so there is no honest intermediate value to prune on.

Search space format (keys are dotted paths of the method's fit config; a value is a range or a
list of choices)::

    model.init_args.lr: {low: 0.01, high: 0.3, log: true}   # float (log scale)
    trainer.max_epochs: {low: 1, high: 4}                   # int (both ends integers)
    model.init_args.alpha: {choices: [0.5, 0.9, 0.99]}      # categorical
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import yaml

from unlearning.scoring.cache import write_json_atomic
from unlearning.scoring.cli import command_parser, run_command_line
from unlearning.scoring.score import json_ready, run_score
from unlearning.scoring.setting import ScoreSetting
from unlearning.tables import csv_table
from unlearning.utils import atomic_path

__all__ = ["apply_params", "load_search_space", "main", "run_tune", "space_path", "tune_parser"]


def space_path(method: str | Path) -> Path:
    """The search space beside a method config: ``finetune.yaml`` -> ``finetune.space.yaml``."""
    p = Path(method)
    return p.with_name(f"{p.stem}.space.yaml")


def load_search_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a search space (see the module docstring).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: on an entry that is neither a range nor a list of choices.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"search space {p} does not exist")
    space = yaml.safe_load(p.read_text()) or {}
    if not isinstance(space, dict) or not space:
        raise ValueError(f"search space {p} is empty: expected 'dotted.key: {{low: .., high: ..}}' entries")
    for key, spec in space.items():
        if not isinstance(spec, dict):
            raise ValueError(f"search space {p}: {key!r} must be a mapping with low/high or choices, got {spec!r}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ValueError(f"search space {p}: {key!r} choices must be a non-empty list, got {spec['choices']!r}")
        elif {"low", "high"} <= set(spec):
            lo, hi = spec["low"], spec["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
                raise ValueError(f"search space {p}: {key!r} needs numbers low < high, got low={lo!r}, high={hi!r}")
            if spec.get("log") and lo <= 0:
                raise ValueError(f"search space {p}: {key!r} is log-scaled, so low must be > 0, got {lo!r}")
            unknown = set(spec) - {"low", "high", "log", "step"}
            if unknown:
                raise ValueError(f"search space {p}: {key!r} has unknown fields {sorted(unknown)}: expected low, high, log, step")
        else:
            raise ValueError(f"search space {p}: {key!r} needs low and high, or choices, got {sorted(spec)}")
    return space


def _current_values(config: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The config's values of the space's keys, where set and inside the space."""
    out = {}
    for key, spec in space.items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or isinstance(node, dict):
            continue
        if "choices" in spec:
            if node in spec["choices"]:
                out[key] = node
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and spec["low"] <= node <= spec["high"]:
            out[key] = node
    return out


def _suggest(trial: Any, key: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    lo, hi = spec["low"], spec["high"]
    if isinstance(lo, int) and isinstance(hi, int) and not spec.get("log") and isinstance(spec.get("step", 1), int):
        return trial.suggest_int(key, lo, hi, step=spec.get("step", 1))
    return trial.suggest_float(key, float(lo), float(hi), log=bool(spec.get("log", False)), step=spec.get("step"))


def _as_args(params: dict[str, Any]) -> list[str]:
    out = []
    for key, value in sorted(params.items()):
        out += [f"--{key}", yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()]
    return out


def apply_params(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a fit config with each dotted key of ``params`` set (``model.init_args.lr``)."""
    out = copy.deepcopy(config)
    for key, value in params.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot set {key!r}: {part!r} is not a section of the config")
        node[leaf] = value
    return out


def _storage(url: str) -> Any:
    """An Optuna RDB storage whose trials send heartbeats: a trial whose process died is marked
    failed after its grace period and retried (up to twice) with the same values."""
    import inspect
    import warnings

    import optuna

    kwargs: dict[str, Any] = {"heartbeat_interval": 30, "grace_period": 90}
    params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna: nothing a user must act on
        warnings.simplefilter("ignore")
        if "heartbeat_stale_trial_callback" in params:  # Optuna >= 4.9
            kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
        else:
            kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=2)
        return optuna.storages.RDBStorage(url, **kwargs)


def _check_seeds(seed_base: int, n_models: int, report_seed_base: int, report_n_models: int) -> None:
    tune = range(seed_base, seed_base + 2 * n_models)
    report = range(report_seed_base, report_seed_base + 2 * report_n_models)
    if tune.start < report.stop and report.start < tune.stop:
        raise ValueError(
            f"tuning seeds {tune.start}..{tune.stop - 1} overlap the reporting seeds {report.start}..{report.stop - 1}: "
            f"choose a seed_base of at least {report.stop} (values tuned on the reported models would be reported)")


def run_tune(
    data: dict[str, Any],
    oracle: str,
    original: str,
    method: str,
    search_space: str | None = None,
    n_trials: int = 20,
    n_models: int = 8,
    seed_base: int = 1000,
    report_seed_base: int = 0,
    report_n_models: int = 16,
    study_name: str | None = None,
    storage: str | None = None,
    sampler_seed: int = 0,
    cache_dir: str = "runs/score/cache",
    output_dir: str = "runs/tune",
    recipe_args: list[str] | None = None,
    method_args: list[str] | None = None,
    stages: dict[str, str] | None = None,
    cost_limit: float = 0.2,
    write_config: str | None = None,
    start_from_config: bool = True,
    progress: bool = True,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a study and write its best values (see the module docstring).

    Args:
        data: the data split (a ``class_path``/``init_args`` section), as in ``unlearning score``.
        oracle: fit config of the oracle recipe.
        original: fit config of the original, or a ``.ckpt``.
        method: fit config of the method to tune.
        search_space: the search space (default: ``<method>.space.yaml`` beside the config).
        n_trials: completed trials the study should reach (over all processes working it).
        n_models: N of each trial's score (2N oracles, shared by all trials).
        seed_base: first seed of the tuning runs; must not overlap the reporting seeds.
        report_seed_base: first seed of the reported score.
        report_n_models: N of the reported score (its seeds are ``report_seed_base`` on, 2N of them).
        study_name: the study's name in the storage (default: the method config's name).
        storage: an Optuna storage URL (default: SQLite in ``output_dir/<study_name>.db``).
        sampler_seed: seed of the TPE sampler (a resumed study continues from ``sampler_seed``
            plus its number of trials, so that it does not propose its first values again).
        cache_dir: the model cache shared with ``unlearning score``.
        output_dir: the study's database, trials' score reports and ``<study_name>/`` results.
        recipe_args: extra arguments of the original and oracle trainings.
        method_args: fixed extra arguments of every method run (before the sampled ones).
        stages: one-time stages of an amortised method, as in ``unlearning score``.
        cost_limit: a trial whose runs' mean cost is over this fraction of an oracle's scores 0.
        write_config: also write the method config with the best values to this path.
        start_from_config: make a new study's first trial the config's own values (those of the
            space's keys it sets within their ranges), so that the study measures the point to
            beat on the tuning seeds.
        progress: print one line per trial.
        config: the command's own config, stored in ``tuning.json``.

    Returns:
        The content of ``tuning.json``: the best trial, every trial, the seeds and the wall time.

    Raises:
        ValueError: on a bad search space, trial count or overlapping seeds.
        FileNotFoundError: when a config or the search space does not exist.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_models < 3:
        raise ValueError(f"n_models must be >= 3 (at N = 2 every example earns 0 points, so every trial scores 0), got {n_models}")
    _check_seeds(seed_base, n_models, report_seed_base, report_n_models)
    setting = ScoreSetting(oracle, original, n_models=n_models, cache_dir=cache_dir, seed_base=seed_base,
                           recipe_args=recipe_args or [], cost_limit=cost_limit, progress=False)
    space_file = Path(search_space) if search_space else space_path(method)
    space = load_search_space(space_file)
    method_cfg = yaml.safe_load(Path(method).read_text()) if Path(method).is_file() else None
    if method_cfg is None:
        raise FileNotFoundError(f"method config {method} does not exist")
    name = study_name or Path(method).stem
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / f'{name}.db').as_posix()}"
    rdb = _storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=rdb, direction="maximize", load_if_exists=True)
    # a resumed study must not replay the proposals of its start: the sampler's seed moves on
    # with the number of trials already in the study
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    if start_from_config and not study.trials:  # trial 0: the config as it is, the point to beat
        current = _current_values(method_cfg, space)
        if current:
            study.enqueue_trial(current, user_attrs={"start": "the config's own values"})
    study.set_user_attr("method", str(method))
    study.set_user_attr("seeds", {"tuning": [seed_base, seed_base + 2 * n_models - 1],
                                  "reporting": [report_seed_base, report_seed_base + 2 * report_n_models - 1]})

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, spec) for key, spec in space.items()}
        t0 = time.perf_counter()
        r = run_score(data, method, setting, name=f"trial-{trial.number:04d}", output_dir=str(out / name / "trials"),
                      method_args=[*(method_args or []), *_as_args(params)], stages=stages)
        assert r is not None  # no seed shard: every model is trained
        attrs = {"final_score": r["final_score"], "relative_forgetting": r["relative_forgetting"],
                 "forgetting_quality": r["forgetting_quality"], "ceiling": r["ceiling"],
                 "cost_time_fraction": r["unlearned"]["cost_time_fraction"]["mean"],
                 "over_cost_limit": r["over_cost_limit"], "models_trained": r["timings"]["models_trained"],
                 "wall_s": time.perf_counter() - t0}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        value = 0.0 if r["over_cost_limit"] else float(r["final_score"])
        if progress:
            print(f"trial {trial.number}: final {value:.4f} (F / ceiling {r['relative_forgetting']:.3f}, cost "
                  f"{attrs['cost_time_fraction']:.3f}) {params}", flush=True)
        return value

    t0 = time.perf_counter()
    done = optuna.trial.TrialState.COMPLETE
    if sum(t.state == done for t in study.trials) < n_trials:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=(done,))])
    wall = time.perf_counter() - t0
    return _write_results(study, out / name, method, method_cfg, space_file, write_config, wall,
                          {"tuning": [seed_base, seed_base + 2 * n_models - 1],
                           "reporting": [report_seed_base, report_seed_base + 2 * report_n_models - 1]},
                          n_models, config)


def _write_results(study: Any, out: Path, method: str, method_cfg: dict[str, Any], space_file: Path,
                   write_config: str | None, wall: float, seeds: dict[str, list[int]], n_models: int,
                   config: dict[str, Any] | None) -> dict[str, Any]:
    import optuna

    out.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [{"trial": t.number, "state": t.state.name, "value": t.value, **t.params, **t.user_attrs} for t in study.trials]
    with atomic_path(out / "trials.csv") as tmp:
        Path(tmp).write_text(csv_table(rows))
    best = study.best_trial if complete else None
    payload: dict[str, Any] = {
        "study": study.study_name, "method": str(method), "search_space": str(space_file), "n_models": n_models,
        "seeds": seeds, "trials_complete": len(complete), "trials_total": len(study.trials),
        "wall_s_this_process": wall,
        "trials_wall_s": float(sum(t.user_attrs.get("wall_s", 0.0) for t in complete)),
        "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                           **best.user_attrs},
        "trials": rows, "config": config or {},
    }
    if best is not None:
        tuned = apply_params(method_cfg, best.params)
        header = (f"# {Path(method).name} tuned by `unlearning tune` (study {study.study_name!r}, {len(complete)} trials, "
                  f"N = {n_models} on seeds {seeds['tuning'][0]}..{seeds['tuning'][1]}, disjoint from the reporting "
                  f"seeds {seeds['reporting'][0]}..{seeds['reporting'][1]}): best final score {best.value:.4f} with "
                  f"{best.params}\n")
        lead = []  # the config's leading comment block, less an earlier record of how values were chosen
        for line in Path(method).read_text().splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith(("# Values chosen", "# tuned by", f"# {Path(method).name} tuned by")):
                lead.append(line)
        text = "\n".join(lead) + ("\n" if lead else "") + header + yaml.safe_dump(tuned, sort_keys=False)
        with atomic_path(out / "best.yaml") as tmp:
            Path(tmp).write_text(text)
        if write_config:
            with atomic_path(write_config) as tmp:
                Path(tmp).write_text(text)
            payload["written_config"] = str(write_config)
    write_json_atomic(out / "tuning.json", json_ready(payload))
    if best is not None and math.isfinite(best.value):
        print(f"best of {len(complete)} trials: final {best.value:.4f} with {best.params} -> {out / 'best.yaml'}")
    return payload


def tune_parser() -> Any:
    """The parser of ``unlearning tune``."""
    return command_parser(run_tune, "unlearning tune", (
        "Search an unlearning method's hyperparameters with Optuna (TPE) against its final score "
        "from `unlearning score`, on seeds disjoint from the reporting ones; the study is stored in "
        "a database (SQLite by default), resumable and shareable by several processes."))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` and run the study; returns the content of ``tuning.json``."""
    return run_command_line(tune_parser(), run_tune, argv)
