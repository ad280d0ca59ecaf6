"""The ``unlearning`` command: LightningCLI over every module and data module of the project.

``unlearning fit|validate|test|predict -c FILE`` with any ``LightningModule`` /
``LightningDataModule`` subclass selected by ``class_path`` (short names for the project's own),
and the project's own subcommands: ``unlearning score -c FILE`` (one method's forgetting score),
``unlearning leaderboard -c FILE`` (many methods side by side) and ``unlearning tune -c FILE``
(a method's hyperparameters searched with Optuna), see :mod:`unlearning.scoring`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

import unlearning
import unlearning.data
import unlearning.methods
import unlearning.modules  # noqa: F401 - imported so that short class names resolve
from unlearning.utils import silence_lightning_noise

__all__ = ["OWN_SUBCOMMANDS", "UnlearningCLI", "main", "run"]

#: the project's subcommands beside LightningCLI's: name -> "module:function(argv)"
OWN_SUBCOMMANDS = {
    "score": "unlearning.scoring.cli:main",
    "leaderboard": "unlearning.scoring.cli:leaderboard_main",
    "tune": "unlearning.scoring.tune:main",
}


class UnlearningCLI(LightningCLI):
    """LightningCLI with the project's defaults: checkpoints ``last.ckpt`` (after every epoch) and
    the best model by ``val/val_acc``, seed 0, and the run's config saved beside its logs."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the always-on checkpoint callbacks (``--checkpoint.*`` and ``--last_checkpoint.*``)."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/val_acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # Lightning's save_last only writes when a top-k checkpoint is written; a second callback
        # keeps last.ckpt current after every epoch, at a fixed path later stages can name.
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.monitor": None,
                "last_checkpoint.filename": "last",
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.save_on_train_epoch_end": True,
                "last_checkpoint.enable_version_counter": False,
            }
        )


def main(args: ArgsType = None, run: bool = True, save_config: bool = True) -> Any:
    """Entry point of the ``unlearning`` console script and of ``python -m unlearning``.

    Args:
        args: command-line arguments (default ``sys.argv[1:]``), as a list or a dict.
        run: run the subcommand; with ``False`` only instantiate (for scripting).
        save_config: write the run's ``config.yaml`` beside its logs.

    Returns:
        The :class:`UnlearningCLI` instance (for ``score``, ``leaderboard`` and ``tune``: what they return).
    """
    silence_lightning_noise()
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list) and argv[:1] and argv[0] in OWN_SUBCOMMANDS:
        import importlib

        module, _, fn = OWN_SUBCOMMANDS[argv[0]].partition(":")
        return getattr(importlib.import_module(module), fn)(argv[1:])
    if isinstance(argv, list) and argv[:1] in (["-h"], ["--help"]):
        # LightningCLI's help lists its own subcommands only: name the project's too
        try:
            _cli(args, run, save_config)
        finally:
            print("\nThe project's own subcommands (each with --help):\n"
                  "    score        one method's forgetting score (N runs against 2N retrained oracles)\n"
                  "    leaderboard  many methods scored side by side on one setting\n"
                  "    tune         a method's hyperparameters searched with Optuna against its score")
    return _cli(args, run, save_config)


def _cli(args: ArgsType, run: bool, save_config: bool) -> UnlearningCLI:
    from lightning.pytorch.cli import SaveConfigCallback

    return UnlearningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_callback=SaveConfigCallback if save_config else None,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"version": unlearning.__version__},
        args=args,
        run=run,
    )


def _one_line(err: BaseException) -> str:
    """The user-facing line of an error, unwrapping jsonargparse's nested Union reports."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        text = ln[2:].strip()  # jsonargparse lists nested reasons as "- reason"
        if ln.startswith("- ") and not text.startswith(("Expected a <class", "Problem with given class_path")):
            if not text.startswith(("Parser key", "Does not validate")):
                return text
    return lines[0] if lines else type(err).__name__


def run() -> None:
    """Console-script entry point.

    Errors in what the user asked for (a bad split spec, a missing dataset or checkpoint) are
    printed as one line, ``unlearning: error: ...``, with exit status 2; set
    ``UNLEARNING_DEBUG=1`` to get the traceback instead.
    """
    try:
        main()
    except (ValueError, FileNotFoundError, TypeError) as err:
        if os.environ.get("UNLEARNING_DEBUG"):
            raise
        print(f"unlearning: error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
