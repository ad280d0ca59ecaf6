"""Chaining the stages from Python: train, unlearn, evaluate, compare.

The same commands a user types (``unlearning fit -c ...``), run in-process, plus evaluation of
any checkpoint of the project against the split of a config, and a comparison of methods
(formatted by :mod:`unlearning.tables`; the helpers of example scripts are in
:mod:`unlearning.scripts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch import LightningModule

from unlearning.build import build_run, run_command
from unlearning.methods import declared_stages
from unlearning.registry import module_class
from unlearning.modules.base import load_checkpoint_meta, load_net
from unlearning.runfolder import run_finished

__all__ = [
    "evaluate_checkpoint",
    "evaluate_with_outputs",
    "evaluation_setup",
    "fit_stage",
    "pooled_accuracy",
    "run_comparison",
    "stage_checkpoint",
    "stage_finished",
]

def stage_checkpoint(config: str | Path, overrides: Sequence[str] = ()) -> Path:
    """Where ``unlearning fit -c config`` writes ``last.ckpt`` (from the config's logger)."""
    cfg = yaml.safe_load(Path(config).read_text())
    init = cfg["trainer"]["logger"]["init_args"]
    save_dir, name = init["save_dir"], init["name"]
    args = list(overrides)
    for i, a in enumerate(args[:-1]):
        if a == "--trainer.logger.init_args.save_dir":
            save_dir = args[i + 1]
        if a == "--trainer.logger.init_args.name":
            name = args[i + 1]
    return Path(save_dir) / name / "checkpoints" / "last.ckpt"


#: whether a stage's ``last.ckpt`` is that of a fit that ran to its end (``unlearning fit`` marks it)
stage_finished = run_finished


def fit_stage(config: str | Path, overrides: Sequence[str] = (), reuse: bool = True) -> Path:
    """Run ``unlearning fit -c config OVERRIDES``, unless (``reuse``) its ``last.ckpt`` is that of
    a finished fit; a ``last.ckpt`` that an interrupted fit left is resumed from, not taken as done.

    Returns:
        The path of the stage's ``last.ckpt``.
    """
    ckpt = stage_checkpoint(config, overrides)
    if reuse and stage_finished(ckpt):
        print(f"reusing {ckpt}", flush=True)
        return ckpt
    # an interrupted fit is resumed; without reuse, the run there is replaced
    resume = ["--ckpt_path", str(ckpt)] if reuse and ckpt.is_file() else []
    if resume:
        print(f"resuming {ckpt}: the fit that wrote it did not finish", flush=True)
    else:  # the progress bar that follows is this stage's
        print(f"training {ckpt.parent.parent} ({config})", flush=True)
    run_command(["fit", "-c", str(config), *overrides, *resume, *([] if reuse else ["--overwrite", "true"])])
    if not run_finished(ckpt):
        raise FileNotFoundError(f"fit -c {config} finished without writing {ckpt}")
    return ckpt


def evaluation_setup(data_config: str | Path, overrides: Sequence[str] = ()) -> tuple[Any, Any]:
    """A trainer and a data module from a config, to test checkpoints on its split.

    Build it once and pass it to :func:`evaluate_checkpoint` for every model to compare: the data
    is loaded and split once.
    """
    run = build_run(data_config, [*overrides, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                                  "--trainer.devices", "1"])
    return run.trainer, run.datamodule


def evaluate_checkpoint(
    ckpt: str | Path,
    data_config: str | Path,
    overrides: Sequence[str] = (),
    oracle: str | Path | None = None,
    setup: tuple[Any, Any] | None = None,
) -> dict[str, float]:
    """Test any checkpoint of the project on the split of ``data_config``.

    Args:
        ckpt: a checkpoint written by a ``Classifier``, ``RetrainOracle`` or ``UnlearnModule``.
        data_config: a config whose ``data`` section defines the split (and its trainer settings
            are used for the test run).
        overrides: extra command-line arguments for that config (e.g. the data root).
        oracle: an oracle checkpoint to compare with (gaps, KL, cost fractions).
        setup: ``(trainer, datamodule)`` from :func:`evaluation_setup`, to reuse across checkpoints
            (``data_config`` and ``overrides`` are then unused).

    Returns:
        The ``test/...`` metrics without the prefix; with an oracle, ``cost_time_fraction`` is the
        training wall time as a fraction of the oracle's.
    """
    return evaluate_with_outputs(ckpt, data_config, overrides, oracle, setup)[0]


def evaluate_with_outputs(
    ckpt: str | Path,
    data_config: str | Path,
    overrides: Sequence[str] = (),
    oracle: str | Path | None = None,
    setup: tuple[Any, Any] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
    """:func:`evaluate_checkpoint`, and the per-example outputs the metrics were computed from.

    Args: as :func:`evaluate_checkpoint`.

    Returns:
        ``(metrics, outputs)``: the metrics as :func:`evaluate_checkpoint` returns them, and
        ``{stream: {stat: values}}`` for the evaluated streams (``retain`` is the sampled
        ``retain_eval_size`` examples), with the statistics of
        :func:`~unlearning.metrics.per_example_stats` (``loss``, ``confidence``, ``lsc``,
        ``entropy``; ``ref_<stat>`` and ``kl_to_ref`` for the oracle when one is given).
    """

    meta = load_checkpoint_meta(ckpt)
    cls: type[LightningModule] = module_class(meta["module"])
    module = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    if oracle is not None:
        oracle_net, oracle_meta = load_net(oracle)
        module.set_reference(oracle_net, "oracle", cost=oracle_meta.get("cost"))
    trainer, datamodule = setup if setup is not None else evaluation_setup(data_config, overrides)
    own = list(trainer.callbacks)
    try:
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    finally:  # a reused trainer forgets this module's callbacks, so the next module's are added anew
        trainer.callbacks = own
    metrics = {k.removeprefix("test/"): float(v) for k, v in results.items()}
    return metrics, module.last_eval["outputs"]


def pooled_accuracy(
    metrics: dict[str, float],
    outputs: dict[str, dict[str, np.ndarray]],
    streams: Sequence[str] = ("retain", "forget"),
) -> float:
    """Accuracy over several evaluated streams together, e.g. the whole training set (retain and
    forget, the default), from :func:`evaluate_with_outputs`: the streams' accuracies weighted by
    how many examples each evaluated.

    Raises:
        ValueError: if a stream was not evaluated.
    """
    missing = [s for s in streams if f"{s}_acc" not in metrics or s not in outputs]
    if missing:
        raise ValueError(f"stream {missing[0]!r} was not evaluated: expected some of {sorted(outputs)}")
    sizes = [len(outputs[s]["loss"]) for s in streams]
    return sum(metrics[f"{s}_acc"] * n for s, n in zip(streams, sizes)) / sum(sizes)


def run_comparison(
    methods: Sequence[str],
    common: Sequence[str] = (),
    preset: str = "configs/cpu",
    reuse: bool = True,
    reuse_methods: bool | None = None,
    method_overrides: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, float]]:
    """Train (or reuse) the original and the oracle of a preset, unlearn with each method, and
    test every model on the same split against the oracle.

    Args:
        methods: names of ``<preset>/unlearn/<name>.yaml`` configs.
        common: overrides for every stage (e.g. ``["--data.init_args.root", PATH]``).
        preset: folder of ``original.yaml``, ``retrain.yaml`` and ``unlearn/``.
        reuse: reuse the original and oracle checkpoints of finished fits (one that an
            interrupted fit left is resumed from).
        reuse_methods: the same for the methods and their one-time stages, which depend on the
            original (default: as ``reuse``).
        method_overrides: more overrides of one method's fit, by name, after ``common``.

    Returns:
        ``{row name: test metrics}`` for ``original``, ``oracle (retrain)`` and each method.
    """
    preset_dir = Path(preset)
    original = fit_stage(preset_dir / "original.yaml", common, reuse=reuse)
    oracle = fit_stage(preset_dir / "retrain.yaml", common, reuse=reuse)
    unlearned = {}
    for name in methods:
        cfg = preset_dir / "unlearn" / f"{name}.yaml"
        if not cfg.is_file():
            raise FileNotFoundError(f"no config {cfg} for method {name!r}")
        overrides = [*common, "--model.init_args.original", str(original), "--model.init_args.oracle", str(oracle)]
        for arg in declared_stages(cfg):  # a one-time stage (e.g. a hypernetwork): <preset>/<arg>.yaml
            stage_cfg = preset_dir / f"{arg}.yaml"
            if not stage_cfg.is_file():
                raise FileNotFoundError(f"method {name!r} needs its one-time stage {arg!r}: no config {stage_cfg}")
            # a stage is trained for one original, so it is reused only as the methods are
            stage = fit_stage(stage_cfg, [*common, "--model.init_args.original", str(original)],
                              reuse=reuse if reuse_methods is None else reuse_methods)
            overrides += [f"--model.init_args.{arg}", str(stage)]
        overrides += list((method_overrides or {}).get(name, ()))
        unlearned[name] = fit_stage(cfg, overrides, reuse=reuse if reuse_methods is None else reuse_methods)
    data_config = preset_dir / "original.yaml"
    setup = evaluation_setup(data_config, common)
    models = {"original": original, "oracle (retrain)": oracle, **unlearned}
    return {name: evaluate_checkpoint(ckpt, data_config, oracle=oracle, setup=setup) for name, ckpt in models.items()}
