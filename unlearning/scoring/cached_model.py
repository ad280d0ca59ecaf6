"""Training one cached model of a score run: a stage config, the score's data split, a seed.

Every model is built as ``unlearning fit`` builds it (:func:`~unlearning.build.build_run`, in-process,
one device, without validation, loggers or progress bars), then tested on the retain, forget and test streams;
the test metrics, the cost and the forget examples' logit-scaled confidences are stored beside
the weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unlearning.scoring.cache import (
    LSC_FILE,
    MARGIN_FILES,
    MODEL_FILE,
    RECORD_FILE,
    CachedRun,
    file_digest,
    now,
    write_json_atomic,
)
from unlearning.build import build_run
from unlearning.metrics.evaluation import evaluate
from unlearning.modules.base import load_checkpoint_meta
from unlearning.registry import find_object, module_class, resolve_class
from unlearning.scoring.fingerprint import code_digests, code_identity, module_files
from unlearning.utils import atomic_path, silence_lightning_noise, verbose, versions

__all__ = [
    "FORGET_SET_ARGS",
    "checkpoint_identity",
    "complete_evaluation",
    "data_recipe",
    "load_stage_config",
    "needs_completion",
    "score_datamodule",
    "stage_recipe",
    "train_cached_model",
    "training_data",
]

#: trainer settings that do not change the trained model (logging, progress, validation, placement)
_TRAINER_COSMETIC = {
    "logger", "enable_progress_bar", "enable_model_summary", "default_root_dir", "callbacks",
    "log_every_n_steps", "check_val_every_n_epoch", "val_check_interval", "limit_val_batches",
    "num_sanity_val_steps", "accelerator", "devices", "num_nodes", "strategy", "enable_checkpointing",
}
#: model arguments that do not change the trained model (set by the score run itself)
_MODEL_COSMETIC = {"original", "oracle", "oracle_train_time_s", "log_distributions"}
#: data arguments that say where the data is, not what it is
DATA_LOCATION = {"root", "cache_dir", "num_workers"}
#: the data module arguments that choose the forget set (see :func:`training_data`)
FORGET_SET_ARGS = ("forget_fraction", "forget_classes", "forget_index_file", "forget_scenario")
#: only these streams are evaluated for a score (val is not used)
SCORE_STREAMS = ("retain", "forget", "test")


def load_stage_config(path: str | Path, what: str) -> dict[str, Any]:
    """Read a fit config (YAML with ``model`` and ``trainer`` sections).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a fit config.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} config {str(path)!r} does not exist")
    cfg = yaml.safe_load(path.read_text())
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"{what} config {str(path)!r} is not a fit config: expected a 'model' section")
    return cfg


def stage_recipe(cfg: dict[str, Any], args: Sequence[str], data: dict[str, Any]) -> dict[str, Any]:
    """What determines a stage's model apart from the seed: its model and trainer settings (less
    logging, placement and paths set by the score run), its extra arguments, the data and the
    digests of the code that trains it (:func:`~unlearning.scoring.fingerprint.code_identity`)."""
    trainer = {k: v for k, v in (cfg.get("trainer") or {}).items() if k not in _TRAINER_COSMETIC}
    model = dict(cfg["model"]) if isinstance(cfg["model"], dict) else {"value": cfg["model"]}
    if isinstance(model.get("init_args"), dict):
        model["init_args"] = {k: v for k, v in model["init_args"].items() if k not in _MODEL_COSMETIC}
        cls = find_object(str(model.get("class_path")), ("unlearning.methods", "unlearning.modules"))
        for name in getattr(cls, "content_args", ()):  # files a method reads (a scores file): by content
            if model["init_args"].get(name) is not None:
                model["init_args"][name] = _content(model["init_args"][name], f"{cls.__name__}'s {name}")
    return {"model": model, "trainer": trainer, "args": list(args), "data": data_recipe(data),
            "code": code_digests(code_identity(cfg, data))}


def data_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """The data section without where the data lives, and with every file it reads for the split
    (an index file, a scores file) keyed by its content: a file rewritten in place is a new recipe.
    A scenario that changes the training data adds the digests of its code (its ``code``).

    Raises:
        ValueError: when such a file does not exist, naming it.
    """
    init = {k: v for k, v in (data.get("init_args") or {}).items() if k not in DATA_LOCATION}
    if init.get("forget_index_file") is not None:
        init["forget_index_file"] = _content(init["forget_index_file"], "forget index file")
    scenario = init.get("forget_scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("class_path"), str):
        cls = find_object(scenario["class_path"], ("unlearning.data",))
        args = dict(scenario.get("init_args") or {})
        for name in getattr(cls, "content_args", ()):
            if args.get(name) is not None:
                args[name] = _content(args[name], f"{cls.__name__}'s {name}")
        init["forget_scenario"] = {"class_path": cls.__name__ if cls is not None else scenario["class_path"],
                                   "init_args": args}
        if getattr(cls, "training_args", ()):  # it changes the training data: its code trains every model
            init["forget_scenario"]["code"] = module_files(cls)
    return {"class_path": data.get("class_path"), "init_args": init}


def training_data(data: dict[str, Any]) -> dict[str, Any]:
    """The data section as the original's recipe sees it: without the forget set, which does not
    change what the original trains on (retain and forget together), unless it pins examples into a
    training subset (an index file with ``train_subset``). Every scenario of one setting then shares
    one original. A scenario that changes the training data itself (corrupted data, see
    :class:`~unlearning.data.corruption.CorruptedForget`) keeps the arguments that name the
    change (its ``training_args``, defaults filled in) and loses the others (the discovery rate):
    every discovery rate of one corruption shares one original.

    Args:
        data: a data section (``class_path``/``init_args``).

    Returns:
        A new section without the forget-set arguments (or ``data`` itself when they shape the
        training set).

    Raises:
        ValueError: from a corrupting scenario's bad argument.
    """
    init = dict(data.get("init_args") or {})
    scenario = init.get("forget_scenario")
    cls = find_object(scenario["class_path"], ("unlearning.data",)) if isinstance(scenario, dict) else None
    pins = init.get("forget_index_file") is not None or bool(getattr(cls, "pins_examples", False))
    if pins and init.get("train_subset") is not None:
        return data
    kept = {k: v for k, v in init.items() if k not in FORGET_SET_ARGS}
    changed = getattr(cls, "training_args", ())
    if changed:
        args = cls(**dict(scenario.get("init_args") or {})).spec()["init_args"]
        kept["forget_scenario"] = {"class_path": scenario["class_path"],
                                   "init_args": {k: args[k] for k in changed if k in args}}
    return {**data, "init_args": kept}


def _content(path: str | Path, what: str) -> dict[str, str]:
    """How a file a recipe reads enters its key: the digest of its bytes."""
    if not Path(path).is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist: expected a file")
    return {"sha256": file_digest(path)}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's per-run info lines and known warnings (the score shows a progress bar);
    nothing is silenced with ``-v`` or ``UNLEARNING_DEBUG=1``."""
    if verbose():
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            silence_lightning_noise()  # what every command hides, and what only a score run's trainings raise:
            warnings.filterwarnings("ignore", message=".*(does not have many workers|callbacks returned in|"
                                    "could not find the monitored key).*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def train_cached_model(
    config: str | Path,
    data: dict[str, Any],
    seed: int,
    args: Sequence[str],
    dest: Path,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train one model of a stage config on the score's data with ``seed``, test it, and write
    ``model.ckpt``, ``record.json`` and ``forget_lsc.npy`` into ``dest``.

    Args:
        config: the stage's fit config.
        data: the score's data section (``class_path``/``init_args``); replaces the config's.
        seed: ``seed_everything`` of the run.
        args: extra command-line arguments of the stage (after the data, so they may refine it).
        dest: an empty folder to write into.
        evaluate: test the model (forget-set confidences and metrics); ``False`` for a one-time
            stage that is no classifier (e.g. a hypernetwork): only the checkpoint and its cost.

    Returns:
        The record written.
    """
    t0 = time.perf_counter()
    overrides = [
        "--data", json.dumps(score_data(data)), *args,
        "--seed_everything", str(seed),
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.devices", "1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.default_root_dir", str(dest),
    ]
    with _quiet():
        module, dm, trainer = build_run(config, overrides)
        trainer.fit(module, datamodule=dm)
        if trainer.interrupted or trainer.state.status.value != "finished":
            raise RuntimeError(f"training of {config} with seed {seed} did not finish")
        if not evaluate:
            return _write_stage(trainer, module, config, seed, dest, t0)
        trainer.test(module, datamodule=dm, verbose=False)
    evaluation = getattr(module, "last_eval", {})
    if "forget" not in evaluation.get("outputs", {}):
        raise ValueError(f"{type(module).__name__} from {config} is not an EvaluatedModule: a score needs its test outputs")
    lsc = np.asarray(evaluation["outputs"]["forget"]["lsc"], dtype=np.float64)
    forget_index = dm.split.forget.cpu().numpy()
    trainer.save_checkpoint(dest / MODEL_FILE, weights_only=True)
    np.save(dest / LSC_FILE, lsc)
    _save_margins(dest, evaluation["outputs"])
    return _write_record(dest, module, config, seed, t0, metrics=evaluation["scalars"],
                         num_forget=int(lsc.size), forget_index_digest=_array_digest(forget_index))


def _save_margins(dest: Path, outputs: dict[str, dict[str, np.ndarray]]) -> None:
    """The retain-sample and held-out margins of an evaluation, beside the forget ones."""
    for group, stream in (("retain", "retain"), ("heldout", "test")):
        with atomic_path(dest / MARGIN_FILES[group]) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(outputs[stream]["lsc"], dtype=np.float64))


#: per-run metrics added after the first cache entries were written: completed, not retrained
COMPLETED_METRICS = ("predictive_mia",)


def needs_completion(run: CachedRun) -> bool:
    """Whether a cached evaluated model lacks margins or metrics that later versions keep."""
    metrics = run.record().get("metrics") or {}
    return bool(metrics) and (not run.has_margins() or any(k not in metrics for k in COMPLETED_METRICS))


def score_data(data: dict[str, Any]) -> dict[str, Any]:
    """A score's ``data`` section that asks for the score's evaluation streams (:data:`SCORE_STREAMS`).

    Args:
        data: the score's data section (``class_path``/``init_args``).

    Returns:
        The section with ``init_args.eval_streams`` set (a new dict; ``data`` is not changed).
    """
    return {**data, "init_args": {**dict(data.get("init_args") or {}), "eval_streams": list(SCORE_STREAMS)}}


def score_datamodule(data: dict[str, Any]) -> Any:
    """The data module of a score's ``data`` section, set up for evaluation on the score's streams.

    Args:
        data: the score's data section (``class_path``/``init_args``).

    Returns:
        The data module (not set up: its data is loaded at its first use).
    """
    init = dict(score_data(data)["init_args"])
    scenario = init.get("forget_scenario")
    if isinstance(scenario, dict):  # a section, as the command line's parser would build it
        init["forget_scenario"] = resolve_class(str(scenario["class_path"]), "data")(
            **dict(scenario.get("init_args") or {}))
    return resolve_class(str(data["class_path"]), "data")(**init)


def complete_evaluation(run: CachedRun, data: dict[str, Any], datamodule: Any = None) -> None:
    """Evaluate a cached model once more on the score's data and store what its entry lacks (the
    retain and held-out margins, the metrics of :data:`COMPLETED_METRICS`): the model is not
    retrained, and the metrics it has keep their values. Pass one ``datamodule`` (from
    :func:`score_datamodule`) to complete many entries without loading the data each time.

    The model is measured on one device by :func:`~unlearning.metrics.evaluate`, as its test
    measured it, without a ``Trainer``."""
    cls = module_class(load_checkpoint_meta(run.checkpoint)["module"])
    module = cls.load_from_checkpoint(str(run.checkpoint), map_location="cpu", weights_only=True).eval()
    dm = datamodule if datamodule is not None else score_datamodule(data)
    dm.setup("test")
    evaluation = evaluate(module, {s: dm.stream_loader(s, train=False) for s in dm.eval_streams}, seed=module.mia_seed)
    _save_margins(run.path, evaluation["outputs"])
    record = run.record()
    scalars = evaluation["scalars"]
    record["metrics"].update({k: float(scalars[k]) for k in COMPLETED_METRICS if k in scalars and k not in record["metrics"]})
    write_json_atomic(run.path / RECORD_FILE, record)


def _write_stage(trainer: Any, module: Any, config: str | Path, seed: int, dest: Path, t0: float) -> dict[str, Any]:
    """Write the checkpoint and record of a one-time stage that is not evaluated."""
    trainer.save_checkpoint(dest / MODEL_FILE, weights_only=True)
    return _write_record(dest, module, config, seed, t0)


def _write_record(dest: Path, module: Any, config: str | Path, seed: int, t0: float,
                  metrics: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Write (atomically) and return the record of a cached model: its seed, config, test
    ``metrics`` (none for an unevaluated stage), cost, ``extra`` keys, wall time and versions."""
    record = {
        "seed": seed, "config": str(config),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "cost": {k: float(v) for k, v in module.cost.items()},
        **extra,
        "wall_s": time.perf_counter() - t0, "finished": now(), "versions": versions(),
    }
    write_json_atomic(dest / RECORD_FILE, record)  # a failed write names the file
    return record


def _array_digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()[:16]


def checkpoint_identity(path: str | Path) -> dict[str, str]:
    """How a given original checkpoint enters a method's recipe: its bytes' digest."""
    return {"checkpoint_sha256": file_digest(path)}
