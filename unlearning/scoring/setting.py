"""The setting a method is scored in: what ``unlearning score``, ``unlearning leaderboard`` and
``unlearning tune`` share, declared once.

A score compares a method's models with oracles; everything that decides which oracles, how many
models, where they are cached and how they are trained lives in :class:`ScoreSetting`. The data
split is its companion (a data module section, parsed by the command line as a subclass), and each
command adds what is its own (the method, or a list of methods, or a search space).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from unlearning.scoring.schedule import check_launcher

__all__ = ["ScoreSetting", "parse_seed_range"]


def parse_seed_range(text: str | None, stop: int) -> range:
    """``"START:STOP"`` (stop excluded) or a single seed ``"K"``; ``None`` is ``0:stop``.

    Raises:
        ValueError: if the text is not a non-empty range of non-negative integers.
    """
    if text is None:
        return range(stop)
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            a, b = int(parts[0]), int(parts[0]) + 1
        elif len(parts) == 2:
            a = int(parts[0]) if parts[0] else 0
            b = int(parts[1]) if parts[1] else stop
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"seeds must be 'START:STOP' or 'K' (non-negative integers), got {text!r}") from None
    if a < 0 or b <= a:
        raise ValueError(f"seeds must be a non-empty range START:STOP with 0 <= START < STOP, got {text!r}")
    return range(a, b)


@dataclass
class ScoreSetting:
    """The oracles, the original and the training plan a method is scored against.

    Args:
        oracle: fit config of the oracle recipe (a ``RetrainOracle``).
        original: fit config of the original (trained once, cached, with its config's seed) or
            the path of a ``.ckpt``.
        n_models: N, the number of unlearned models per method (and 2N oracles, shared by every
            method of the setting).
        cache_dir: the model cache, shared by every score run.
        seeds: ``START:STOP``: train only the oracles and method runs with these seeds (for
            parallel shards; counted from ``seed_base``); ``None``: everything.
        seed_base: the first seed: oracles use ``seed_base .. seed_base + 2N - 1`` and method runs
            ``seed_base .. seed_base + N - 1``. Choose hyperparameters with a ``seed_base`` that
            the reported score does not use (e.g. 1000), so that no reported model took part.
        recipe_args: extra command-line arguments of the original and oracle trainings.
        cost_limit: flag a method whose mean training time exceeds this fraction of an oracle's
            (the competition's limit is 0.2).
        progress: show a progress bar over the models to train.
        jobs: how many trainings run at once: ``K`` worker processes on this machine, each with
            ``1/K`` of the CPU threads and a GPU in turn (several per GPU when ``K`` is larger);
            with a ``launcher``, the number of array tasks (default: one per model to train on a
            cluster, one on this machine with ``local``). Workers claim each model, so none is
            trained twice.
        launcher: submit the models as a job array through ``submitit`` instead:
            ``{"name": "slurm", "partition": ..., "timeout_min": ..., "gpus_per_node": ...}``
            (keys: :data:`~unlearning.scoring.schedule.LAUNCHER_KEYS`), or ``{"name": "local"}``
            to run the array as processes of this machine. The score waits for the array.

    Raises:
        ValueError: on a bad N, seed range, seed base, cost limit, job count or launcher, naming
            the value.
    """

    oracle: str
    original: str
    n_models: int = 16
    cache_dir: str = "runs/score/cache"
    seeds: str | None = None
    seed_base: int = 0
    recipe_args: list[str] = field(default_factory=list)
    cost_limit: float = 0.2
    progress: bool = True
    jobs: int | None = None
    launcher: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.n_models < 2:
            raise ValueError(f"n_models must be >= 2 (the metric compares samples of N models), got {self.n_models}")
        if not 0 < self.cost_limit:
            raise ValueError(f"cost_limit must be > 0, got {self.cost_limit}")
        self.shard  # noqa: B018 - a bad range fails here, before any work
        if self.seed_base < 0:
            raise ValueError(f"seed_base must be >= 0, got {self.seed_base}")
        jobs = self.jobs
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ValueError(f"jobs must be an integer >= 1 (trainings at once), got {jobs!r}")
        self.launcher = check_launcher(self.launcher)
        self.recipe_args = [str(a) for a in self.recipe_args or ()]

    @property
    def shard(self) -> range:
        """The seeds (counted from :attr:`seed_base`) this process trains: :attr:`seeds` parsed."""
        return parse_seed_range(self.seeds, 2 * self.n_models)

    @classmethod
    def take(cls, values: dict[str, Any]) -> ScoreSetting:
        """The setting of a command's parsed arguments: its fields are removed from ``values``.

        Args:
            values: the parsed arguments (a dict; changed in place).

        Returns:
            The setting.
        """
        return cls(**{f.name: values.pop(f.name) for f in fields(cls) if f.name in values})
