"""Chaining the stages from Python: train, unlearn, evaluate, compare.

The same commands a user types (``unlearning fit -c ...``), run in-process, plus evaluation of
any checkpoint of the project against the split of a config and a comparison table.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch import LightningModule

from unlearning.cli import main
from unlearning.modules.base import load_checkpoint_meta, load_net

__all__ = [
    "COLUMNS",
    "declared_stages",
    "evaluate_checkpoint",
    "evaluate_with_outputs",
    "fit_stage",
    "markdown_table",
    "pooled_accuracy",
    "require_positive",
    "run_comparison",
    "run_script",
    "script_parser",
    "stage_checkpoint",
    "evaluation_setup",
]

#: (metric key, column title) of the comparison table.
COLUMNS = (
    ("retain_acc", "retain acc"),
    ("forget_acc", "forget acc"),
    ("val_acc", "val acc"),
    ("test_acc", "test acc"),
    ("simple_mia", "simple MIA"),
    ("mia_efficacy", "MIA-efficacy"),
    ("cost_time_fraction", "cost (x oracle)"),
)


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


def fit_stage(config: str | Path, overrides: Sequence[str] = (), reuse: bool = True) -> Path:
    """Run ``unlearning fit -c config OVERRIDES`` unless its ``last.ckpt`` exists (``reuse``).

    Returns:
        The path of the stage's ``last.ckpt``.
    """
    ckpt = stage_checkpoint(config, overrides)
    if reuse and ckpt.is_file():
        print(f"reusing {ckpt}")
        return ckpt
    main(["fit", "-c", str(config), *overrides])
    if not ckpt.is_file():
        raise FileNotFoundError(f"fit -c {config} finished without writing {ckpt}")
    return ckpt


def evaluation_setup(data_config: str | Path, overrides: Sequence[str] = ()) -> tuple[Any, Any]:
    """A trainer and a data module from a config, to test checkpoints on its split.

    Build it once and pass it to :func:`evaluate_checkpoint` for every model to compare: the data
    is loaded and split once.
    """
    cli = main(
        [
            "-c", str(data_config), *overrides,
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.devices", "1",
        ],
        run=False,
        save_config=False,
    )
    return cli.trainer, cli.datamodule


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
    import importlib

    meta = load_checkpoint_meta(ckpt)
    module_path, _, cls_name = meta["module"].rpartition(".")
    cls: type[LightningModule] = getattr(importlib.import_module(module_path), cls_name)
    module = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    if oracle is not None:
        oracle_net, oracle_meta = load_net(oracle)
        module.set_reference(oracle_net, "oracle", cost=oracle_meta.get("cost"))
    trainer, datamodule = setup if setup is not None else evaluation_setup(data_config, overrides)
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
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


def markdown_table(rows: dict[str, dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """A Markdown table, one row per model, one column per metric."""
    head = "| model | " + " | ".join(title for _, title in columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    lines = [head, sep]
    for name, metrics in rows.items():
        cells = []
        for key, _ in columns:
            v = metrics.get(key)
            cells.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_comparison(
    methods: Sequence[str],
    common: Sequence[str] = (),
    preset: str = "configs/cpu",
    reuse: bool = True,
    reuse_methods: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Train (or reuse) the original and the oracle of a preset, unlearn with each method, and
    test every model on the same split against the oracle.

    Args:
        methods: names of ``<preset>/unlearn/<name>.yaml`` configs.
        common: overrides for every stage (e.g. ``["--data.init_args.root", PATH]``).
        preset: folder of ``original.yaml``, ``retrain.yaml`` and ``unlearn/``.
        reuse: reuse the original and oracle checkpoints when they exist.
        reuse_methods: reuse the methods' checkpoints when they exist (default: as ``reuse``).

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
            stage = fit_stage(stage_cfg, [*common, "--model.init_args.original", str(original)], reuse=reuse)
            overrides += [f"--model.init_args.{arg}", str(stage)]
        unlearned[name] = fit_stage(cfg, overrides, reuse=reuse if reuse_methods is None else reuse_methods)
    data_config = preset_dir / "original.yaml"
    setup = evaluation_setup(data_config, common)
    models = {"original": original, "oracle (retrain)": oracle, **unlearned}
    return {name: evaluate_checkpoint(ckpt, data_config, oracle=oracle, setup=setup) for name, ckpt in models.items()}


def declared_stages(config: str | Path) -> list[str]:
    """The one-time stages (init argument names) that the module of a fit config declares."""
    from unlearning.methods import module_class

    cls = module_class(yaml.safe_load(Path(config).read_text())["model"]["class_path"])
    return list(getattr(cls, "stages", {}) or {})


_PASS_THROUGH_HELP = (
    "Any other --key value argument is passed to every `unlearning fit` stage and to the evaluation "
    "(e.g. --trainer.precision bf16-mixed); see `unlearning fit --help`."
)


def script_parser(doc: str, out: str, cifar_root: bool = False) -> argparse.ArgumentParser:
    """The argument parser of a script (an example) that passes the arguments it does not know on
    to every stage: parse it with ``parse_known_args``.

    Args:
        doc: the script's docstring; its first line is the description.
        out: default of ``--out``, the output folder.
        cifar_root: add ``--root``, a local copy of CIFAR-10 (default: torchvision downloads it).

    Returns:
        The parser, with ``--out`` (and ``--root``) and an epilog about the passed-on arguments.
    """
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0], epilog=_PASS_THROUGH_HELP)
    if cifar_root:
        p.add_argument("--root", default=None,
                       help="local CIFAR-10: an image folder or torchvision's batches (default: download)")
    p.add_argument("--out", default=out, help=f"output folder (default: {out})")
    return p


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Check that the flags ``names`` (attribute names of ``args``) are at least 1 where given.

    Raises:
        ValueError: naming the first flag below 1, e.g. ``--train-subset must be >= 1, got 0``.
    """
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run_script(main_fn: Callable[[], Any], prog: str) -> None:
    """Entry point of a script (an example, a benchmark): run ``main_fn()``; errors in what the
    user asked for (``ValueError``, ``FileNotFoundError``) are printed as one line,
    ``<prog>: error: ...`` (the first line of the innermost cause), with exit status 2. Set
    ``UNLEARNING_DEBUG=1`` for the traceback.
    """
    try:
        main_fn()
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("UNLEARNING_DEBUG"):
            raise
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        print(f"{prog}: error: {lines[0] if lines else type(cause).__name__}", file=sys.stderr)
        sys.exit(2)
