"""``unlearning score -c FILE``: the command line of :func:`~unlearning.scoring.run_score`.

Configured like the other subcommands: a YAML file (``-c``) and dotted overrides, e.g.
``unlearning score -c configs/score/cpu.yaml --method configs/score/methods/scrub.yaml
--data.init_args.root ../shared/data/cifar10-jpeg --seeds 0:8``.
"""

from __future__ import annotations

from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch import LightningDataModule

import unlearning.data  # noqa: F401 - short class names of the data modules
from unlearning.scoring.score import run_score

__all__ = ["main", "score_parser"]


def score_parser() -> ArgumentParser:
    """The parser of ``unlearning score``."""
    parser = ArgumentParser(
        prog="unlearning score",
        description=(
            "Score an unlearning method with the NeurIPS 2023 competition's metric: N unlearned models "
            "against N retrained oracles, plus the ceiling from N more oracles. Models are cached by "
            "recipe and seed; rerunning trains only what is missing."
        ),
        default_meta=False,
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a score config (YAML)")
    parser.add_subclass_arguments(
        LightningDataModule, "data", required=True, instantiate=False,
        help="the data split every model trains and is tested on (replaces the stage configs' data)",
    )
    parser.add_function_arguments(run_score, skip={"data", "config"}, as_group=False)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Parse ``argv`` (default ``sys.argv``) and run the score.

    Returns:
        The content of ``score.json``, or ``None`` when this process trained only its shard.
    """
    parser = score_parser()
    cfg = parser.parse_args(argv)
    as_dict = cfg.as_dict()
    as_dict.pop("config", None)
    as_dict.pop("__path__", None)
    data = as_dict.pop("data")
    return run_score(data=data, config={"data": data, **as_dict}, **as_dict)
