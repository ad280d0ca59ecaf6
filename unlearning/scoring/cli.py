"""The command lines of :func:`~unlearning.scoring.run_score` (``unlearning score``) and of
:func:`~unlearning.scoring.leaderboard.run_leaderboard` (``unlearning leaderboard``).

Configured like the other subcommands: a YAML file (``-c``) and dotted overrides, e.g.
``unlearning score -c configs/score/cpu.yaml --method configs/score/methods/scrub.yaml
--data.init_args.root ../shared/data/cifar10-jpeg --seeds 0:8`` or
``unlearning leaderboard -c configs/leaderboard/cpu.yaml --data.init_args.root ../shared/data/cifar10-jpeg``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch import LightningDataModule

import unlearning.data  # noqa: F401 - short class names of the data modules
from unlearning.scoring.leaderboard import run_leaderboard
from unlearning.scoring.score import run_score
from unlearning.scoring.setting import ScoreSetting
from unlearning.tables import fmt_number

__all__ = ["command_parser", "leaderboard_main", "leaderboard_parser", "main", "run_command_line", "score_parser"]


def _takes_setting(fn: Callable[..., Any]) -> bool:
    return "setting" in inspect.signature(fn).parameters


def command_parser(fn: Callable[..., Any], prog: str, description: str, data_help: str = (
        "the data split every model trains and is tested on (replaces the stage configs' data)")) -> ArgumentParser:
    """A parser of ``fn``'s arguments with a config file and a data module section (``data``,
    described by ``data_help``); the fields of a :class:`ScoreSetting` are arguments of their own,
    at the top level, when ``fn`` takes one. The commands that train cached models (``score``,
    ``leaderboard``, ``tune``, ``memorise``) are all built so."""
    parser = ArgumentParser(prog=prog, description=description, default_meta=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a config (YAML)")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True, instantiate=False, help=data_help)
    if _takes_setting(fn):
        parser.add_class_arguments(ScoreSetting, nested_key=None, as_group=False)
    parser.add_function_arguments(fn, skip={"data", "config", "setting"}, as_group=False)
    return parser


def score_parser() -> ArgumentParser:
    """The parser of ``unlearning score``."""
    return command_parser(run_score, "unlearning score", (
        "Score an unlearning method with the NeurIPS 2023 competition's metric: N unlearned models "
        "against N retrained oracles, plus the ceiling from N more oracles. Models are cached by "
        "recipe and seed; rerunning trains only what is missing."))


def leaderboard_parser() -> ArgumentParser:
    """The parser of ``unlearning leaderboard``."""
    return command_parser(run_leaderboard, "unlearning leaderboard", (
        "Score many unlearning methods on one setting (one cache, 2N shared oracles) and write a "
        "leaderboard: Markdown, JSON, CSV, a Pareto figure of forgetting against cost and the "
        "per-example epsilon distributions."))


def run_command_line(parser: ArgumentParser, fn: Callable[..., Any], argv: list[str] | None) -> Any:
    """Parse ``argv`` with ``parser`` (from :func:`command_parser`) and call ``fn`` with the data
    section, the rest of the arguments and ``config`` (everything parsed, recorded with the result)."""
    cfg = parser.parse_args(argv)
    as_dict = cfg.as_dict()
    as_dict.pop("config", None)
    as_dict.pop("__path__", None)
    data = as_dict.pop("data")
    config = {"data": data, **as_dict}
    if _takes_setting(fn):
        as_dict["setting"] = ScoreSetting.take(as_dict)
    return fn(data=data, config=config, **as_dict)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Parse ``argv`` (default ``sys.argv``) and run the score.

    Returns:
        The content of ``score.json``, or ``None`` when this process trained only its shard.
    """
    result = run_command_line(score_parser(), run_score, argv)
    if result is not None:
        print(f"unlearning score: F {fmt_number(result['forgetting_quality'])} (ceiling {fmt_number(result['ceiling'])}, "
              f"F / ceiling {fmt_number(result['relative_forgetting'])}), final {fmt_number(result['final_score'])}; "
              f"{result['timings']['models_trained']} models trained, report in {result['output_dir']}", flush=True)
    return result


def leaderboard_main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Parse ``argv`` and run the leaderboard.

    Returns:
        The content of ``leaderboard.json``, or ``None`` when this process trained only its shard.
    """
    return run_command_line(leaderboard_parser(), run_leaderboard, argv)
