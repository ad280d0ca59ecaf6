"""The ``unlearning`` command: LightningCLI over every module and data module of the project.

``unlearning fit|validate|test|predict -c FILE`` with any ``LightningModule`` /
``LightningDataModule`` subclass selected by ``class_path`` (short names for the project's own),
and the project's own subcommands: ``unlearning score -c FILE`` (one method's forgetting score),
``unlearning leaderboard -c FILE`` (many methods side by side) and ``unlearning tune -c FILE``
(a method's hyperparameters searched with Optuna), see :mod:`unlearning.scoring`.
"""

from __future__ import annotations

import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import ArgumentParser, DefaultHelpFormatter
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

import unlearning
import unlearning.data
import unlearning.methods
import unlearning.modules  # noqa: F401 - imported so that short class names resolve
from unlearning.callbacks.hparams import FinalHparams
from unlearning.nets import Net
from unlearning.registry import find_object
from unlearning.runfolder import Snapshot, check_run_folder, clear_run_folder, mark_finished, safe_load
from unlearning.utils import silence_lightning_noise, verbose

__all__ = ["OWN_SUBCOMMANDS", "SUBCOMMANDS", "UnlearningArgumentParser", "UnlearningCLI", "main", "run"]

DESCRIPTION = (
    "unlearning: machine unlearning on image classifiers. Train an original model and its "
    "retrain-from-scratch oracle, run unlearning methods, and score how close each gets to the "
    "oracle and at what cost. Every subcommand takes a YAML config (-c FILE) and dotted overrides; "
    "-v (or UNLEARNING_VERBOSE=1) shows Lightning's own output, hidden otherwise: model summaries, "
    "seeds, devices, tips and its warnings about what the project does on purpose."
)
#: the flag (anywhere on the command line) that keeps Lightning's own output (sets ``UNLEARNING_VERBOSE``)
VERBOSE_FLAGS = ("-v", "--verbose")

#: one line of help per subcommand, in the order ``unlearning --help`` lists them
SUBCOMMANDS = {
    "fit": "train a model: an original, a retrain oracle, or an unlearning method from an original",
    "validate": "evaluate a checkpoint on the validation streams",
    "test": "evaluate a checkpoint on the test streams (accuracies, attacks, gaps to an oracle)",
    "predict": "a checkpoint's predictions on the data module's predict stream",
    "score": "one method's forgetting score: N runs against 2N retrained oracles",
    "leaderboard": "many methods scored side by side on one setting",
    "tune": "a method's hyperparameters searched with Optuna against its score",
}

#: the project's subcommands beside LightningCLI's: name -> "module:function(argv)"
OWN_SUBCOMMANDS = {
    "score": "unlearning.scoring.cli:main",
    "leaderboard": "unlearning.scoring.cli:leaderboard_main",
    "tune": "unlearning.scoring.tune:main",
}


#: packages whose ``nn.Module`` subclasses (layers, heads, metrics) are not offered as a network
_LIBRARIES = frozenset({"torch", "torchvision", "torchmetrics", "lightning", "lightning_fabric", "pytorch_lightning"})


def _offered_network(class_path: str) -> bool:
    """Whether ``--model.net``'s help lists ``class_path``: a network of :mod:`unlearning.nets`
    or a user's ``nn.Module``, not a library's layer, a LightningModule or a part of a method."""
    root = class_path.split(".", 1)[0]
    if root in _LIBRARIES:
        return False
    try:
        cls = find_object(class_path)
    except ImportError:  # pragma: no cover - listed by jsonargparse, so importable
        return False
    if cls is None:  # pragma: no cover - listed by jsonargparse, so importable
        return False
    if root == "unlearning":
        return isinstance(cls, type) and issubclass(cls, Net) and cls is not Net
    return not (isinstance(cls, type) and issubclass(cls, LightningModule))


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the "known subclasses" of an ``nn.Module`` argument (a network)
    cut to the project's networks and the user's, instead of every layer that torch, torchvision
    and Lightning define (hundreds of lines)."""

    def _get_help_string(self, action: Any) -> str:
        text = super()._get_help_string(action)
        hint = getattr(action, "_typehint", None)
        head, sep, tail = text.partition(", known subclasses: ")
        if not sep or nn.Module not in (hint, *typing.get_args(hint)):
            return text
        paths = [s.strip() for s in tail.rstrip(")").split(",")]
        kept = [s for s in paths if _offered_network(s)]
        listed = f", known subclasses: {', '.join(kept)}" if kept else ""
        return f"{head}{listed}; or any torch.nn.Module by class path)"


class UnlearningArgumentParser(LightningArgumentParser):
    """The parser of every ``unlearning`` subcommand: the program's description and a help that
    fits on a screen or two."""

    def __init__(self, *args: Any, description: str = DESCRIPTION, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, description=description, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """A bad argument or config key: one line, ``unlearning: error: ...``, and exit status 2,
        instead of the whole usage and a nested report (``UNLEARNING_DEBUG=1``: jsonargparse's own)."""
        if not self.exit_on_error or os.environ.get("UNLEARNING_DEBUG"):
            super().error(message, ex)
        print(f"unlearning: error: {_reason(message)} (see --help)", file=sys.stderr)
        sys.exit(2)


class UnlearningCLI(LightningCLI):
    """LightningCLI with the project's defaults: checkpoints ``last.ckpt`` (after every epoch) and
    the best model by ``val/val_acc``, seed 0, the run's config saved beside its logs, and a run
    folder that is never overwritten by accident.

    ``fit`` refuses to start into a folder that already holds a run's checkpoints, unless it
    resumes (``--ckpt_path last``) or is told ``--overwrite true``; a fit that runs to its end marks
    its ``last.ckpt`` as finished; a run that fails before its first training step removes what it
    created; TensorBoard gets each run's hyperparameters with its final metrics (no placeholder
    ``hp_metric``).
    """

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        # LightningCLI's own version takes each subcommand's help from the Trainer's docstrings
        # (two cut-off lines each) and knows only the Trainer's subcommands; this one gives each
        # one line and lists the project's own, which main() dispatches before any parsing.
        super()._add_subcommands(parser, **kwargs)
        subcommands = parser._subcommands_action
        for action in subcommands._choices_actions:
            action.help = SUBCOMMANDS.get(action.dest, action.help)
        for name in OWN_SUBCOMMANDS:
            subcommands.add_subcommand(name, ArgumentParser(description=SUBCOMMANDS[name]), help=SUBCOMMANDS[name])

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the always-on checkpoint callbacks (``--checkpoint.*`` and ``--last_checkpoint.*``)
        and ``--overwrite``."""
        parser.add_argument(
            "--overwrite", type=bool, default=False,
            help="fit: replace the run already in the run folder (its checkpoints, events and config) "
                 "instead of refusing to start",
        )
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

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with :class:`~unlearning.callbacks.hparams.FinalHparams` added,
        TensorBoard's placeholder ``hp_metric`` turned off and, unless ``-v`` or asked for
        (``--trainer.enable_model_summary true``), no model summary: its table, repeated by every
        stage, is printed by Rich's console where Rich is installed, past any logging level."""
        if not verbose() and self._get(self.config_init, "trainer", default={}).get("enable_model_summary") is None:
            kwargs.setdefault("enable_model_summary", False)
        trainer = super().instantiate_trainer(**kwargs)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Lightning logs hp_metric = -1 with the hyperparameters at the start of every run
                # unless the logger was built with default_hp_metric=False; the real metrics are
                # logged with the hyperparameters at the end by FinalHparams.
                logger._default_hp_metric = False
        if not any(isinstance(cb, FinalHparams) for cb in trainer.callbacks):
            trainer.callbacks.append(FinalHparams())
        return trainer

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the hyperparameters of a --ckpt_path file here (weights_only), with
        # torch's own message for a file it refuses; on a failure, safe_load says it naming the file
        from unlearning.runfolder import check_checkpoint_network, configured_network

        sub = self.config.get("subcommand")
        given = configured_network(self.config[sub]) if sub else None
        try:
            super()._parse_ckpt_path()
        except Exception:
            ckpt_path = self.config[sub].get("ckpt_path") if sub else None
            if ckpt_path and Path(ckpt_path).is_file():
                safe_load(ckpt_path)
            raise
        if sub:  # the checkpoint's hyperparameters replaced the config's network: it must be the same
            check_checkpoint_network(self.config[sub].get("ckpt_path"), given, configured_network(self.config[sub]))

    def _run_dirs(self) -> tuple[Path, list[Path]]:
        """The run's folder and the folders its checkpoint callbacks write into, as Lightning will
        resolve them (before any of them exists)."""
        trainer = self.trainer
        logger = trainer.loggers[0] if trainer.loggers else None
        run_dir = Path(logger.log_dir if logger is not None and logger.log_dir else trainer.default_root_dir)
        ckpt_dirs = [Path(cb.dirpath) if cb.dirpath else run_dir / "checkpoints"
                     for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
        return run_dir, ckpt_dirs

    def _run_subcommand(self, subcommand: str) -> None:
        run_dir, ckpt_dirs = self._run_dirs()
        if subcommand == "fit" and self.trainer.is_global_zero:
            from unlearning.utils import check_writable

            for folder in dict.fromkeys([run_dir, *ckpt_dirs]):  # before anything is written
                check_writable(folder, "run folder" if folder == run_dir else "checkpoint folder")
            cfg = self.config_init[subcommand]
            if cfg.get("overwrite"):
                clear_run_folder(run_dir, ckpt_dirs)
            elif cfg.get("ckpt_path") is None:
                check_run_folder(run_dir, ckpt_dirs)
        before = Snapshot(run_dir)
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if self.trainer.global_step == 0 and self.trainer.is_global_zero:
                before.restore()  # a run that failed before it trained leaves nothing
            raise
        if subcommand == "fit" and self.trainer.is_global_zero and not self.trainer.interrupted:
            for last in {d.absolute() / "last.ckpt" for d in ckpt_dirs}:  # both callbacks share a folder
                if last.is_file():
                    mark_finished(last)


def main(args: ArgsType = None, run: bool = True, save_config: bool = True) -> Any:
    """Entry point of the ``unlearning`` console script and of ``python -m unlearning``.

    Args:
        args: command-line arguments (default ``sys.argv[1:]``), as a list or a dict.
        run: run the subcommand; with ``False`` only instantiate (for scripting).
        save_config: write the run's ``config.yaml`` beside its logs.

    Returns:
        The :class:`UnlearningCLI` instance (for ``score``, ``leaderboard`` and ``tune``: what they return).
    """
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list) and any(a in VERBOSE_FLAGS for a in argv):
        argv = args = [a for a in argv if a not in VERBOSE_FLAGS]
        os.environ["UNLEARNING_VERBOSE"] = "1"
    silence_lightning_noise(not verbose())
    if isinstance(argv, list) and argv[:1] and argv[0] in OWN_SUBCOMMANDS:
        import importlib

        module, _, fn = OWN_SUBCOMMANDS[argv[0]].partition(":")
        return getattr(importlib.import_module(module), fn)(argv[1:])
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
        parser_class=UnlearningArgumentParser,
        parser_kwargs={"version": unlearning.__version__},
        args=args,
        run=run,
    )


def _one_line(err: BaseException) -> str:
    """The user-facing line of an error, unwrapping jsonargparse's nested Union reports."""
    while err.__cause__ is not None:
        err = err.__cause__
    return _reason(str(err)) or type(err).__name__


def _reason(message: str) -> str:
    """The one useful line of a (jsonargparse) error message: for a nested report, the reason
    given under the class that was tried (``Option 'lrr' is not accepted``), with the key and class."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    key = next((m.group(1) for ln in lines if (m := re.match(r'Parser key "([^"]+)"', ln))), None)
    for i, ln in enumerate(lines):
        m = re.match(r"- Problem with given class_path '([^']+)':", ln)
        if m and i + 1 < len(lines) and not lines[i + 1].startswith("- "):
            block = []  # the reason under the class: up to the next "- " item
            for nxt in lines[i + 1:]:
                if nxt.startswith("- "):
                    break
                block.append(nxt)
            inner = re.match(r'Parser key "([^"]+)":', block[0])
            if inner and len(block) > 1:
                return f"--{key}.init_args.{inner.group(1)} ({m.group(1)}): {block[1]}" if key else block[1]
            where = f"--{key} ({m.group(1)})" if key else m.group(1)
            return f"{where}: {block[0]}"
    for ln in lines:
        text = ln[2:].strip()  # jsonargparse lists nested reasons as "- reason"
        if ln.startswith("- ") and not text.startswith(("Expected a <class", "Problem with given class_path")):
            if not text.startswith(("Parser key", "Does not validate")):
                return text
    given = next((ln.removeprefix("Given value:").strip() for ln in lines if ln.startswith("Given value:")), None)
    expected = [m.group(1) for ln in lines if (m := re.match(r"- Expected a <class '([^']+)'>", ln))]
    if key and given is not None and expected:
        return f"--{key}: expected {' or '.join(e.replace('NoneType', 'null') for e in expected)}, got {given!r}"
    if key and len(lines) > 1 and lines[0].startswith("Parser key"):
        return f"--{key}: {lines[1]}"
    return lines[0] if lines else ""


def run() -> None:
    """Console-script entry point.

    Errors in what the user asked for (a bad split spec, a missing dataset or checkpoint, a folder
    that cannot be written) are printed as one line, ``unlearning: error: ...``, with exit status
    2; set ``UNLEARNING_DEBUG=1`` to get the traceback instead.
    """
    try:
        main()
    except (ValueError, OSError, TypeError, FloatingPointError) as err:
        if os.environ.get("UNLEARNING_DEBUG"):
            raise
        print(f"unlearning: error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
