"""``unlearning score --jobs K`` and ``--launcher``: several trainers fill one cache, none trains a
model twice, and the score is the one a single process gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli_here
from tests.test_score import N, _score_args, _seed_dirs
from unlearning.cli import main

MODELS = 1 + 2 * N + N  # the original, 2N oracles, N method runs


def _margins(cache: Path) -> dict[str, np.ndarray]:
    return {f"{d.parent.name.split('-')[0]}/{d.name}": np.load(d / "forget_lsc.npy") for d in _seed_dirs(cache)}


@pytest.mark.slow  # about 20 s: two spawned workers, then the same score in one process
def test_jobs_train_every_model_once_and_score_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    two = main(_score_args(tmp_path / "two", "--jobs", "2"))
    assert two is not None
    trained = two["timings"]["trained"]
    # every model trained by exactly one of the two workers (a claim granted twice trains it twice)
    assert len(trained) == len(set(trained)) == MODELS, trained
    assert len(_seed_dirs(tmp_path / "two" / "cache")) == MODELS
    assert not list((tmp_path / "two" / "cache").glob("*/.tmp-*"))

    one = main(_score_args(tmp_path / "one"))
    a, b = _margins(tmp_path / "two" / "cache"), _margins(tmp_path / "one" / "cache")
    assert a.keys() == b.keys() and len(a) == MODELS
    for key in a:  # the same models, whichever process trained them
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
    assert two["forgetting_quality"] == pytest.approx(one["forgetting_quality"], abs=1e-9)
    # a second run with workers finds everything in the cache and starts none
    assert main(_score_args(tmp_path / "two", "--jobs", "2"))["timings"]["models_trained"] == 0


@pytest.mark.slow  # about 30 s: submitit's local executor starts each array task as a new process
def test_submitit_local_array_fills_the_cache_and_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = main(_score_args(tmp_path, "--jobs", "2", "--launcher", '{"name": "local", "timeout_min": 10}'))
    assert result is not None and result["timings"]["models_trained"] == MODELS
    trained = result["timings"]["trained"]
    assert len(trained) == len(set(trained)) == MODELS
    logs = list((tmp_path / "cache" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs  # two array tasks, each with its own log
    assert (tmp_path / "out" / "finetune" / "score.json").is_file()


def test_bad_jobs_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli_here(*_score_args(tmp_path), "--jobs", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "unlearning: error: jobs must be an integer >= 1 (trainings at once), got 0"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("launcher", "message"),
    [
        ('{"name": "pbs"}', "launcher name must be one of slurm, local, got 'pbs'"),
        ('{"name": "slurm", "partitions": "gpu"}', "unknown launcher key 'partitions': expected one of"),
    ],
)
def test_bad_launcher_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: str, message: str
) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        main(_score_args(tmp_path, "--launcher", launcher))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


class _FakeJob:
    """A submitit job that failed: what its logs hold, and where."""

    def __init__(self, stdout: str, stderr: str) -> None:
        self._out, self._err = stdout, stderr
        self.paths = type("Paths", (), {"stderr": Path("task_0_log.err")})()

    def done(self) -> bool:
        return True

    def result(self) -> list[str]:
        raise RuntimeError("Job (task=0) failed during processing with trace:\n  - task_0_log.out")

    def stdout(self) -> str:
        return self._out

    def stderr(self) -> str:
        return self._err


class _FakeExecutor:
    """Stands for ``submitit.AutoExecutor``: records what the score asks of it."""

    seen: dict = {}
    logs = ("", "")

    def __init__(self, folder: str, cluster: str) -> None:
        _FakeExecutor.seen = {"cluster": cluster}

    def update_parameters(self, **params) -> None:  # noqa: ANN003
        _FakeExecutor.seen["params"] = params

    def map_array(self, fn, plans, *rest) -> list[_FakeJob]:  # noqa: ANN001
        _FakeExecutor.seen["tasks"] = len(plans)
        return [_FakeJob(*_FakeExecutor.logs) for _ in plans]


@pytest.mark.parametrize(
    ("launcher", "logs", "tasks", "message"),
    [  # a local array runs one task unless --jobs asks for more; a task past its limit says so
        ('{"name": "local"}', ("submitit WARNING - Caught signal SIGUSR2: this job is timed-out.", ""), 1,
         "it ran past timeout_min (60 min"),
        ('{"name": "local", "timeout_min": 7}', ("", "Traceback ...\nValueError: bad batch\n\n"), 1,
         "failed: ValueError: bad batch (log: task_0_log.err)"),
    ],
)
def test_a_failed_array_task_says_why_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: str, logs: tuple[str, str], tasks: int, message: str
) -> None:
    import submitit

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(submitit, "AutoExecutor", _FakeExecutor)
    _FakeExecutor.logs = logs
    with pytest.raises(RuntimeError, match="array task 0 of 1 failed") as err:
        main(_score_args(tmp_path, "--launcher", launcher))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _FakeExecutor.seen["tasks"] == tasks
    assert _FakeExecutor.seen["params"]["timeout_min"] == (7 if "7" in launcher else 60)  # not submitit's 5
