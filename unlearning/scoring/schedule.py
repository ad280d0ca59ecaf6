"""Who trains the models a score is missing: this process, ``K`` local worker processes, or a
job array on a cluster (through ``submitit``).

A :class:`TrainPlan` lists the models to train (original, oracles, one-time stages, method runs)
and how to start each. Every trainer of a plan works the same list: it claims a model before
training it (:meth:`~unlearning.scoring.cache.RecipeCache.claim`), skips what another has claimed
and waits for it last, so that however many work one plan (or one cache, from several score
commands), no model is trained twice and a worker killed midway loses only its model, which
another takes over.

- ``jobs = 1``, no launcher: this process trains the plan.
- ``jobs = K > 1``: ``K`` worker processes (``spawn``) train it together; each gets ``1/K`` of the
  CPU threads and, on a machine with GPUs, a GPU in turn (``K`` per GPU is allowed: small models
  leave a GPU mostly idle). One progress bar counts the models as they land in the cache.
- a launcher (``{"name": "slurm", ...}`` or ``{"name": "local"}``): the plan is submitted as a job
  array through `submitit <https://github.com/facebookincubator/submitit>`_ (``local`` runs the
  array as processes of this machine, for testing); the score waits for the array and scores.
  Why a thin layer over ``submitit`` and not a Lightning plugin: each array task is a series of
  whole trainings, not one distributed training.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearning.scoring.cache import RecipeCache
from unlearning.scoring.cached_model import train_cached_model

__all__ = ["DEFAULT_TIMEOUT_MIN", "LAUNCHER_KEYS", "Job", "TrainPlan", "check_launcher", "train_plan"]


@dataclass(frozen=True)
class Job:
    """One model to train: its kind, cache, seed, fit config and extra arguments."""

    kind: str
    cache: RecipeCache
    seed: int
    config: str
    args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``<kind>-<key>/seed-NNNN``, as the score's timings list it."""
        return f"{self.kind}-{self.cache.key}/seed-{self.seed:04d}"


@dataclass
class TrainPlan:
    """The models a score run must train and what each one starts from.

    Args:
        data: the score's data section.
        jobs: the models, in the order to try them (the original and stages before the methods).
        original: the original's fit config or ``.ckpt`` path.
        original_cache: the original's cache (``None`` for a given checkpoint).
        original_seed: the original's seed.
        stages: ``{init argument: (cache, seed)}`` of the method's one-time stages.
    """

    data: dict[str, Any]
    jobs: list[Job]
    original: str
    original_cache: RecipeCache | None
    original_seed: int
    stages: dict[str, tuple[RecipeCache, int]] = field(default_factory=dict)

    def original_checkpoint(self) -> Path:
        """The original's checkpoint (given, or from the cache)."""
        if self.original_cache is None:
            return Path(self.original)
        run = self.original_cache.get(self.original_seed)
        if run is None:
            raise FileNotFoundError(f"the original of {self.original} is not in the cache")  # pragma: no cover
        return run.checkpoint

    def ready(self, job: Job) -> bool:
        """Whether what ``job`` starts from (the original, the one-time stages) is in the cache."""
        if job.kind in ("method", "stage") and self.original_cache is not None \
                and self.original_cache.get(self.original_seed) is None:
            return False
        return job.kind != "method" or all(c.get(s) is not None for c, s in self.stages.values())

    def job_args(self, job: Job) -> list[str]:
        """The command-line arguments of ``job``'s training: its own, then the paths it starts from."""
        args = list(job.args)
        if job.kind in ("method", "stage"):
            args += ["--model.init_args.original", str(self.original_checkpoint())]
        if job.kind == "method":
            args += ["--model.init_args.oracle", "null"]
            for arg, (c, seed) in self.stages.items():
                run = c.get(seed)
                if run is None:
                    raise FileNotFoundError(f"stage {arg!r} is not in the cache")  # pragma: no cover
                args += [f"--model.init_args.{arg}", str(run.checkpoint)]
        return args

    def done(self) -> int:
        """How many of the plan's models are in the cache."""
        return sum(j.cache.get(j.seed) is not None for j in self.jobs)

    def work(self, on_model: Callable[[Job, bool], None] | None = None) -> list[str]:
        """Train every model of the plan that nobody else has trained or is training.

        A model claimed by another process is put off; once nothing else is left, this process
        waits for that claim, and trains the model itself if its holder died without it.

        Args:
            on_model: called with each job once it is in the cache, and whether this process
                trained it.

        Returns:
            The labels of the models this process trained.
        """
        trained: list[str] = []
        pending, wait = list(self.jobs), False
        while pending:
            put_off = []
            for job in pending:
                if not self.ready(job):
                    put_off.append(job)
                    continue
                with job.cache.claim(job.seed, wait=wait and not put_off) as held:
                    if not held:
                        put_off.append(job)
                        continue
                    mine = job.cache.get(job.seed) is None  # not finished by another meanwhile
                    if mine:
                        with job.cache.writing(job.seed) as tmp:
                            train_cached_model(job.config, self.data, job.seed, self.job_args(job), tmp,
                                               evaluate=job.kind != "stage")
                        trained.append(job.label)
                if on_model is not None:
                    on_model(job, mine)
            if wait and len(put_off) == len(pending):
                raise RuntimeError(f"score: no model of {len(pending)} left could be trained "  # pragma: no cover
                                   f"(first: {pending[0].kind} seed {pending[0].seed})")
            pending, wait = put_off, True
        return trained


#: an array task's time limit when the launcher names none, in minutes
DEFAULT_TIMEOUT_MIN = 60

#: the keys a launcher section may have (besides ``name``), passed to ``submitit``
LAUNCHER_KEYS = {
    "folder": "where submitit keeps the jobs' scripts and logs (default: ``<cache_dir>/.submitit``)",
    "partition": "SLURM partition",
    "timeout_min": "time limit of each array task, in minutes (default 60)",
    "gpus_per_node": "GPUs of each array task",
    "cpus_per_task": "CPU cores of each array task",
    "mem_gb": "memory of each array task",
    "array_parallelism": "most array tasks running at once",
    "account": "SLURM account",
    "qos": "SLURM quality of service",
    "constraint": "SLURM constraint",
    "setup": "shell lines each task runs first (e.g. a module load or a venv activation)",
}
_CLUSTERS = ("slurm", "local")


def check_launcher(launcher: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate a launcher section: ``None``, or ``{"name": "slurm" | "local", <LAUNCHER_KEYS>...}``.

    Raises:
        ValueError: naming the bad name or key and what is expected.
    """
    if launcher is None:
        return None
    if not isinstance(launcher, dict):
        raise ValueError(f"launcher must be a mapping with a name ({' or '.join(_CLUSTERS)}), got {launcher!r}")
    name = launcher.get("name")
    if name not in _CLUSTERS:
        raise ValueError(f"launcher name must be one of {', '.join(_CLUSTERS)}, got {name!r}")
    unknown = sorted(set(launcher) - {"name", *LAUNCHER_KEYS})
    if unknown:
        raise ValueError(f"unknown launcher key {unknown[0]!r}: expected one of {', '.join(sorted(LAUNCHER_KEYS))}")
    return dict(launcher)


def _worker(plan: TrainPlan, threads: int, gpu: int | None, results: Any = None) -> list[str]:
    """Body of a local worker or an array task: train the plan's unclaimed models."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    trained = plan.work()
    if results is not None:
        results.put(trained)
    return trained


def _threads_share(k: int) -> int:
    import torch

    return max(1, torch.get_num_threads() // k)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _follow(plan: TrainPlan, bar: Any, alive: Callable[[], bool], poll_s: float = 0.5) -> None:
    """Move ``bar`` as the plan's models land in the cache, until ``alive()`` is false."""
    start = plan.done() - bar.n

    def move() -> None:
        n = plan.done() - start
        if n != bar.n:  # repaint only on news: a log file gets one line per model, not per poll
            bar.n = n
            bar.refresh()

    while alive():
        move()
        time.sleep(poll_s)
    move()


def _local_workers(plan: TrainPlan, k: int, bar: Any) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    threads, gpus = _threads_share(k), _gpus()
    procs = [ctx.Process(target=_worker, args=(plan, threads, i % gpus if gpus else None, results),
                         name=f"score-worker-{i}", daemon=True) for i in range(k)]
    for p in procs:
        p.start()
    trained: list[str] = []
    try:
        def alive() -> bool:
            while not results.empty():
                trained.extend(results.get())
            return any(p.is_alive() for p in procs)

        _follow(plan, bar, alive)
        for p in procs:
            p.join()
        while not results.empty():
            trained.extend(results.get())
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        i, code = failed[0]
        raise RuntimeError(f"score: worker {i} of {k} failed (exit code {code}; its error is above); "
                           f"the models the others finished are in the cache")
    return trained


def _submitit(plan: TrainPlan, k: int, launcher: dict[str, Any], cache_dir: Path, bar: Any) -> list[str]:
    try:
        import submitit
    except ImportError as e:  # pragma: no cover - an install without the extra
        raise ValueError("launcher needs submitit: pip install submitit") from e
    opts = dict(launcher)
    name = opts.pop("name")
    folder = Path(opts.pop("folder", None) or cache_dir / ".submitit")
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=name)
    # submitit's own default limit (5 min) would end most trainings
    params: dict[str, Any] = {"name": "unlearning-score", "timeout_min": int(opts.pop("timeout_min", DEFAULT_TIMEOUT_MIN))}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
        if key in opts:
            params[key] = opts.pop(key)
    if name == "slurm":
        for key in ("partition", "array_parallelism", "account", "qos", "constraint", "setup"):
            if key in opts:
                params[f"slurm_{key}"] = opts.pop(key)
    executor.update_parameters(**params)
    threads = int(launcher.get("cpus_per_task") or 0) if name == "slurm" else _threads_share(k)
    submitted = executor.map_array(_worker, [plan] * k, [threads] * k, [None] * k)
    _follow(plan, bar, lambda: not all(j.done() for j in submitted))
    trained: list[str] = []
    for i, job in enumerate(submitted):
        try:
            trained += job.result()
        except Exception as e:  # submitit re-raises the task's error with its log
            if "timed-out" in (job.stdout() or ""):
                why = f"it ran past timeout_min ({params['timeout_min']} min; set a longer one in --launcher)"
            else:
                why = next((ln.strip() for ln in reversed((job.stderr() or str(e)).splitlines()) if ln.strip()),
                           type(e).__name__)
            raise RuntimeError(f"score: array task {i} of {k} failed: {why} (log: {job.paths.stderr})") from e
    return trained


def train_plan(plan: TrainPlan, jobs: int | None, launcher: dict[str, Any] | None, cache_dir: Path,
               bar: Any) -> list[str]:
    """Train ``plan`` here, with ``jobs`` local workers or through ``launcher``; return the
    labels of the models trained (by this process or its workers)."""
    if not plan.jobs:
        return []
    if launcher is not None:  # a cluster: one task per model; this machine: as many as --jobs says
        k = jobs or (len(plan.jobs) if launcher["name"] != "local" else 1)
        return _submitit(plan, min(k, len(plan.jobs)), launcher, cache_dir, bar)
    k = min(jobs or 1, len(plan.jobs))
    if k <= 1:
        return plan.work(lambda job, mine: bar.update(1))
    return _local_workers(plan, k, bar)
