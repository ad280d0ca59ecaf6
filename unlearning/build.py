"""Building a run from a config: the parser, the config's schema and the LightningCLI that
every way of running the project shares.

``unlearning fit|validate|test -c FILE`` (:mod:`unlearning.cli`), the pipeline's stages
(:mod:`unlearning.pipeline`) and the score's trainings (:mod:`unlearning.scoring`) all turn a
config and its overrides into a module, a data module and a trainer here: :func:`build_run` for
the three objects, :func:`run_command` to run a subcommand (``fit``) with the run-folder policy of
:class:`RunCLI`. The command line itself (help, the project's own subcommands, ``-v``, one-line
errors at exit) is :mod:`unlearning.cli`, on top.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
import typing
from typing import Any, NamedTuple, NoReturn

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

import unlearning
import unlearning.data
import unlearning.methods
import unlearning.modules  # noqa: F401 - imported so that short class names resolve
from unlearning.callbacks.hparams import FinalHparams
from unlearning.nets import Net
from unlearning.registry import find_object
from unlearning.runfolder import (
    Snapshot,
    check_checkpoint_network,
    check_run_folder,
    clear_run_folder,
    configured_network,
    mark_finished,
    safe_load,
)
from unlearning.utils import check_writable, silence_lightning_noise, verbose

__all__ = [
    "NO_CHECKPOINTS", "ConfigParser", "InitArgumentError", "NetworkHelpFormatter", "Run", "RunCLI", "build_run",
    "error_reason", "run_command",
]

#: overrides that keep the two checkpoint callbacks from writing anything (a run whose caller saves
#: what it needs itself)
NO_CHECKPOINTS = ("--checkpoint.save_top_k", "0", "--last_checkpoint.save_top_k", "0")


class InitArgumentError(TypeError):
    """A class of the config refused its init arguments: a ``TypeError`` raised while the config's
    classes were instantiated (e.g. a network a method cannot work with). It is bad input, printed
    as one line by the command; a ``TypeError`` raised anywhere else is a bug and keeps its traceback.
    The original error is its ``__cause__``."""


#: packages whose ``nn.Module`` subclasses (layers, heads, metrics) are not offered as a network
_LIBRARIES = frozenset({"torch", "torchvision", "torchmetrics", "lightning", "lightning_fabric", "pytorch_lightning", "timm"})


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


def _hinted_types(hint: Any) -> set[Any]:
    """The types a type hint names, through ``Optional``, ``Union`` and ``list``."""
    args = typing.get_args(hint)
    return {hint} if not args else set().union(*(_hinted_types(a) for a in args))


class NetworkHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the "known subclasses" of an ``nn.Module`` argument (a network)
    cut to the project's networks and the user's, and those of a ``Callback`` argument to the
    project's callbacks, instead of every layer that torch, torchvision and Lightning define and
    every callback Lightning ships (hundreds of lines)."""

    def _get_help_string(self, action: Any) -> str:
        text = super()._get_help_string(action)
        types = _hinted_types(getattr(action, "_typehint", None))
        head, sep, tail = text.partition(", known subclasses: ")
        if not sep or not types & {nn.Module, Callback}:
            return text
        paths = [s.strip() for s in tail.rstrip(")").split(",")]
        if nn.Module in types:
            kept, base = [s for s in paths if _offered_network(s)], "torch.nn.Module"
        else:
            kept, base = [s for s in paths if s.startswith("unlearning.callbacks.")], "lightning.Callback"
        listed = f", known subclasses: {', '.join(kept)}" if kept else ""
        return f"{head}{listed}; or any {base} by class path)"


class ConfigParser(LightningArgumentParser):
    """The parser of a run's config: a bad argument or config key is one line."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """A bad argument or config key: one line, ``unlearning: error: ...``, and exit status 2,
        instead of the whole usage and a nested report (``UNLEARNING_DEBUG=1``: jsonargparse's own)."""
        if not self.exit_on_error or os.environ.get("UNLEARNING_DEBUG"):
            super().error(message, ex)
        print(f"unlearning: error: {error_reason(message)} (see --help)", file=sys.stderr)
        sys.exit(2)


class RunCLI(LightningCLI):
    """LightningCLI with the project's defaults: checkpoints ``last.ckpt`` (after every epoch) and
    the best model by ``val/val_acc``, seed 0, the run's config saved beside its logs, and a run
    folder that is never overwritten by accident.

    ``fit`` refuses to start into a folder that already holds a run's checkpoints, unless it
    resumes (``--ckpt_path last``) or is told ``--overwrite true``; a fit that runs to its end marks
    its ``last.ckpt`` as finished; a run that fails before its first training step removes what it
    created; TensorBoard gets each run's hyperparameters with its final metrics (no placeholder
    ``hp_metric``).
    """

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

    def instantiate_classes(self) -> None:
        """Instantiate the config's classes; a ``TypeError`` they raise becomes an
        :class:`InitArgumentError` (bad input), with the original as its cause."""
        try:
            super().instantiate_classes()
        except InitArgumentError:
            raise
        except TypeError as err:
            raise InitArgumentError(str(err)) from err

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


class Run(NamedTuple):
    """What a config builds: the module, its data and the trainer that fits or tests it."""

    module: LightningModule
    datamodule: LightningDataModule
    trainer: Trainer


def run_command(
    args: ArgsType,
    run: bool = True,
    save_config: bool = True,
    cli_class: type[RunCLI] | None = None,
    parser_class: type[LightningArgumentParser] = ConfigParser,
) -> RunCLI:
    """Parse a command line (``fit -c FILE ...``, or without a subcommand when ``run`` is false)
    into a :class:`RunCLI` and run its subcommand, as ``unlearning`` does.

    Args:
        args: the arguments, as a list or a dict.
        run: run the subcommand; with ``False`` only instantiate.
        save_config: write the run's ``config.yaml`` beside its logs.
        cli_class: the LightningCLI class (default :class:`RunCLI`; the command line's adds its help).
        parser_class: the parser class (the command line's adds its help).

    Returns:
        The LightningCLI instance (its ``model``, ``datamodule`` and ``trainer``).
    """
    silence_lightning_noise(not verbose())
    return (cli_class or RunCLI)(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_callback=SaveConfigCallback if save_config else None,
        save_config_kwargs={"overwrite": True},
        parser_class=parser_class,
        parser_kwargs={"version": unlearning.__version__},
        args=args,
        run=run,
    )


def build_run(config: str | Path, overrides: list[str] | tuple[str, ...] = (), checkpoints: bool = False) -> Run:
    """Build the module, the data module and the trainer of a fit config, without running anything
    and without saving the config.

    Args:
        config: a fit config (``model``, ``data``, ``trainer`` sections).
        overrides: dotted overrides, as on the command line (``--trainer.max_epochs 3``).
        checkpoints: keep the checkpoint callbacks; by default they write nothing
            (:data:`NO_CHECKPOINTS`, after the overrides).

    Returns:
        The three objects, built as ``unlearning fit -c config OVERRIDES`` builds them.
    """
    args = ["-c", str(config), *overrides, *([] if checkpoints else NO_CHECKPOINTS)]
    cli = run_command(args, run=False, save_config=False)
    return Run(cli.model, cli.datamodule, cli.trainer)


def error_reason(message: str) -> str:
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
