"""The ``unlearning`` command: LightningCLI over every module and data module of the project.

``unlearning fit|validate|test|predict -c FILE`` with any ``LightningModule`` /
``LightningDataModule`` subclass selected by ``class_path`` (short names for the project's own),
and the project's own subcommands: ``unlearning score -c FILE`` (one method's forgetting score),
``unlearning leaderboard -c FILE`` (many methods side by side) and ``unlearning tune -c FILE``
(a method's hyperparameters searched with Optuna), see :mod:`unlearning.scoring`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from jsonargparse import ArgumentParser
from lightning.pytorch.cli import ArgsType, LightningArgumentParser

from unlearning.build import ConfigParser, InitArgumentError, NetworkHelpFormatter, RunCLI, error_reason, run_command
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
    "import": "a model trained elsewhere (network spec + state_dict) as an original checkpoint",
    "memorise": "per-example memorisation of the training set: K subset models, proxies, entanglement",
}

#: the project's subcommands beside LightningCLI's: name -> "module:function(argv)"
OWN_SUBCOMMANDS = {
    "score": "unlearning.scoring.cli:main",
    "leaderboard": "unlearning.scoring.cli:leaderboard_main",
    "tune": "unlearning.scoring.tune:main",
    "import": "unlearning.importing:main",
    "memorise": "unlearning.memorisation:main",
}


class UnlearningArgumentParser(ConfigParser):
    """The parser of every ``unlearning`` subcommand: the program's description and a help that
    fits on a screen or two (its one-line errors: :class:`~unlearning.build.ConfigParser`)."""

    def __init__(self, *args: Any, description: str = DESCRIPTION, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", NetworkHelpFormatter)
        super().__init__(*args, description=description, **kwargs)


class UnlearningCLI(RunCLI):
    """The ``unlearning`` command's LightningCLI: :class:`~unlearning.build.RunCLI` (the config,
    the trainer's defaults and the run-folder policy) with a help line per subcommand, the
    project's own subcommands listed beside Lightning's."""

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
    if isinstance(argv, list) and argv[:1] and argv[0] in OWN_SUBCOMMANDS:
        silence_lightning_noise(not verbose())
        module, _, fn = OWN_SUBCOMMANDS[argv[0]].partition(":")
        return getattr(importlib.import_module(module), fn)(argv[1:])
    return run_command(args, run, save_config, cli_class=UnlearningCLI, parser_class=UnlearningArgumentParser)


def _one_line(err: BaseException) -> str:
    """The user-facing line of an error, unwrapping jsonargparse's nested Union reports."""
    while err.__cause__ is not None:
        err = err.__cause__
    return error_reason(str(err)) or type(err).__name__


def run() -> None:
    """Console-script entry point.

    Errors in what the user asked for (a bad split spec, a missing dataset or checkpoint, a folder
    that cannot be written, init arguments a class of the config refuses) are printed as one line,
    ``unlearning: error: ...``, with exit status 2; set ``UNLEARNING_DEBUG=1`` to get the traceback
    instead. Any other ``TypeError`` (a bug, e.g. in a method's ``training_step``) keeps its traceback.
    """
    try:
        main()
    except (ValueError, OSError, InitArgumentError, FloatingPointError) as err:
        if os.environ.get("UNLEARNING_DEBUG"):
            raise
        print(f"unlearning: error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
