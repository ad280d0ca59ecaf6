"""Errors that do not hide bugs (issue 26, section 6).

Bad input stays one line (``unlearning: error: ...``, exit 2); a ``TypeError`` raised by the code
itself, outside the instantiation of the config's classes, keeps its traceback. The one-line
reasons are cut out of jsonargparse's error text: the exact messages of the installed versions are
pinned here, so an upgrade that changes them fails loudly instead of printing a worse line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.loggers import TensorBoardLogger

import unlearning.build
from tests.conftest import quick_args, run_cli, run_cli_here
from unlearning.build import error_reason, run_command
from unlearning.modules import Classifier

_MODEL_UNION = ("Parser key \"model\":\n  Does not validate against any of the Union subtypes\n  Subtypes: "
                "[<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]\n  Errors:\n"
                "    - Problem with given class_path 'unlearning.modules.Classifier':\n")

#: override -> (the message jsonargparse 4.53 / Lightning 2.6 hand to the parser's error, its one line)
MESSAGES = {
    ("--model.init_args.lrr", "0.1"): (
        _MODEL_UNION + "        Option 'lrr' is not accepted\n    - Expected a <class 'NoneType'>\n"
        "  Given value type: <class 'jsonargparse._util.NestedArg'>\n  Given value: NestedArg(key='lrr', val='0.1')",
        "--model (unlearning.modules.Classifier): Option 'lrr' is not accepted",
    ),
    ("--model.init_args.scheduler", "cos"): (
        _MODEL_UNION + "        Parser key \"scheduler\":\n"
        "          Expected a typing.Literal['cosine', 'none', 'piecewise']. Got value: cos\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'jsonargparse._util.NestedArg'>\n"
        "  Given value: NestedArg(key='scheduler', val='cos')",
        "--model.init_args.scheduler (unlearning.modules.Classifier): "
        "Expected a typing.Literal['cosine', 'none', 'piecewise']. Got value: cos",
    ),
    ("--trainer.max_epochs", "abc"): (
        "Parser key \"trainer.max_epochs\":\n  Does not validate against any of the Union subtypes\n"
        "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc",
        "--trainer.max_epochs: expected int or null, got 'abc'",
    ),
    ("--trainer.max_epochz", "3"): (
        "unrecognized arguments: --trainer.max_epochz 3",
        "unrecognized arguments: --trainer.max_epochz 3",
    ),
    ("--data.init_args.forget_fraction", "x"): (
        "Parser key \"data\":\n  Does not validate against any of the Union subtypes\n  Subtypes: "
        "[<class 'lightning.pytorch.core.datamodule.LightningDataModule'>, <class 'NoneType'>]\n  Errors:\n"
        "    - Problem with given class_path 'unlearning.data.TwoCircles':\n"
        "        Parser key \"forget_fraction\":\n          Expected a <class 'float'>. Got value: x\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'jsonargparse._util.NestedArg'>\n"
        "  Given value: NestedArg(key='forget_fraction', val='x')",
        "--data.init_args.forget_fraction (unlearning.data.TwoCircles): Expected a <class 'float'>. Got value: x",
    ),
}


@pytest.mark.parametrize("override", list(MESSAGES))
def test_error_reason_cuts_the_one_line_out_of_each_pinned_message(override: tuple[str, str]) -> None:
    message, line = MESSAGES[override]
    assert error_reason(message) == line


@pytest.mark.parametrize("override", list(MESSAGES))
def test_the_installed_jsonargparse_still_writes_the_pinned_messages(
    override: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upgrade of jsonargparse or Lightning that rewords a message fails here: compare the new
    text with the pinned one and adapt :func:`~unlearning.build.error_reason` to it."""
    seen: list[str] = []
    monkeypatch.setattr(unlearning.build, "error_reason", lambda m: seen.append(m) or error_reason(m))
    with pytest.raises(SystemExit) as done:
        run_command(["-c", "configs/toy/original.yaml", "--trainer.logger", "false", *override],
                    run=False, save_config=False)
    assert done.value.code == 2
    assert seen == [MESSAGES[override][0]]
    assert capsys.readouterr().err.strip() == f"unlearning: error: {MESSAGES[override][1]} (see --help)"


def test_the_private_attributes_the_command_sets_still_exist(tmp_path: Path) -> None:
    """The CLI turns off TensorBoard's placeholder hp_metric and rewrites the subcommands' help
    through private attributes: an upgrade that renames them fails here, not silently."""
    logger = TensorBoardLogger(save_dir=str(tmp_path))
    assert isinstance(logger._default_hp_metric, bool)
    parser = LightningArgumentParser()
    parser.add_subcommands()
    assert isinstance(parser._subcommands_action._choices_actions, list)


class BuggyStep(Classifier):
    """A module whose training step has a bug that raises ``TypeError``."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        return len(batch_idx)  # planted bug: an int has no len()


class RefusesItsArguments(Classifier):
    """A module that refuses its init arguments with ``TypeError`` (as EUk does for a network
    without ``reset_parameters``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        raise TypeError("RefusesItsArguments cannot use this network: expected a planted one")


def test_a_type_error_inside_a_training_step_shows_its_traceback(tmp_path: Path) -> None:
    r = run_cli("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path),
                "--model.class_path", "tests.test_errors.BuggyStep")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback (most recent call last)" in r.stderr and "in training_step" in r.stderr
    assert "TypeError: object of type 'int' has no len()" in r.stderr
    assert "unlearning: error:" not in r.stderr


def test_a_type_error_from_init_arguments_is_one_line(tmp_path: Path) -> None:
    r = run_cli_here("fit", "-c", "configs/toy/original.yaml", *quick_args(tmp_path),
                     "--model.class_path", "tests.test_errors.RefusesItsArguments")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "unlearning: error: RefusesItsArguments cannot use this network: expected a planted one")
