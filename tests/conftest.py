"""Shared fixtures: a tiny CIFAR-10-style image folder, a private cache, CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import torch

matplotlib.use("Agg")
# Tiny models run fastest on one thread, and two OpenMP teams on two cores (pytest plus a CLI
# subprocess, or two test processes) slow each other down many times over.
# UNLEARNING_TEST_THREADS overrides it, to check that a test's verdict does not hang on the thread
# count (CI runs the method tests once more with 2 threads and another vector unit).
THREADS = int(os.environ.get("UNLEARNING_TEST_THREADS", "1"))
torch.set_num_threads(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["UNLEARNING_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10-layout image folder: 10 classes x 16 train and 8 test random JPEGs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny_cifar")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 8)):
        for c, name in enumerate(CIFAR10_CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                base = np.full((32, 32, 3), 25 * c, dtype=np.uint8)
                img = np.clip(base + rng.integers(0, 60, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.jpg", quality=95)
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m unlearning ARGS`` in a subprocess (the way a user runs it)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "unlearning", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_here(*args: str) -> subprocess.CompletedProcess:
    """Run the console script's entry point (``unlearning ARGS``) in this process, from the
    repository root, with its exit code and what it printed: the same code path as
    :func:`run_cli` without the seconds a new interpreter takes to import torch and Lightning."""
    import contextlib
    import io

    from unlearning.cli import run

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = ["unlearning", *args]
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return subprocess.CompletedProcess(["unlearning", *args], code, out.getvalue(), err.getvalue())


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of the TensorBoard event files under ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        ea = EventAccumulator(str(f))
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    return out


def last_scalars(log_dir: Path) -> dict[str, float]:
    """The value at the highest step of every scalar under ``log_dir`` (all its event files)."""
    return {tag: max(points, key=lambda p: p[0])[1] for tag, points in read_scalars(log_dir).items()}


def read_csv_metrics(path: Path) -> dict[str, float]:
    """The last value of every column of a ``CSVLogger``'s ``metrics.csv``."""
    import csv

    out: dict[str, float] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


def quick_args(tmp: Path, name: str = "run") -> list[str]:
    """Trainer overrides for a few-batch run writing under ``tmp``."""
    return [
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.check_val_every_n_epoch", "1",
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu",
        "--trainer.logger.init_args.save_dir", str(tmp),
        "--trainer.logger.init_args.name", name,
    ]


def train_pair(out: Path, preset: str, extra: list[str]) -> dict[str, Path]:
    """A few-batch original and oracle from ``<preset>/original.yaml`` and ``retrain.yaml``."""
    from unlearning.cli import main

    paths = {}
    for key, cfg in (("original", f"{preset}/original.yaml"), ("oracle", f"{preset}/retrain.yaml")):
        main(["fit", "-c", cfg, *quick_args(out, key), *extra])
        paths[key] = out / key / "checkpoints" / "last.ckpt"
        assert paths[key].is_file()
    return paths


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_cifar: Path) -> dict[str, Path]:
    """A tiny original and oracle (SmallCNN, 2 batches) for configs that start from them."""
    return train_pair(tmp_path_factory.mktemp("ckpts"), "configs/cpu",
                      ["--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null"])


@pytest.fixture(scope="session")
def tiny_toy_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny two-circles original and oracle (MLP, 2 batches) for two-circles configs."""
    return train_pair(tmp_path_factory.mktemp("toy_ckpts"), "configs/toy", [])


@pytest.fixture(scope="session")
def synthetic_models() -> dict[str, Path]:
    """The original and the retrain oracle of the synthetic problem (``tests/synthetic.py``), as
    shipped under ``tests/fixtures/synthetic/`` (read-only: copy a file before changing it)."""
    from tests.synthetic import reference_models

    ref = reference_models()
    return {"original": ref["original"], "oracle": ref["oracle"]}


@pytest.fixture(scope="session")
def synthetic_class_models() -> dict[str, Path]:
    """The class-forgetting variant (``tests.synthetic.CLASS_FORGET``): the same original, and an
    oracle retrained without class 0 (shipped)."""
    from tests.synthetic import reference_models

    ref = reference_models()
    return {"original": ref["original"], "oracle": ref["class_oracle"]}


@pytest.fixture(scope="session")
def synthetic_hypernet() -> Path:
    """The hypernetwork stage (``tests.synthetic.HYPERNET_STAGE``) of the synthetic original (shipped)."""
    from tests.synthetic import reference_models

    return reference_models()["hypernet"]
