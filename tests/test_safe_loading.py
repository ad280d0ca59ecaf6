"""No file the framework loads can run code: a checkpoint whose unpickling would run a command is
refused with a line naming it, wherever it is given, and the command never runs; a file that is no
checkpoint at all is named as such."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import quick_args, run_cli_here


class _Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "unlearning": _Payload(marker), "epoch": 0}, path)
    return path, marker


def test_a_malicious_checkpoint_is_refused_as_original_and_as_ckpt_path(tmp_path: Path, evil: tuple[Path, Path]) -> None:
    path, marker = evil
    for args in (
        ["-c", "configs/toy/unlearn/finetune.yaml", "--model.init_args.original", str(path)],
        ["-c", "configs/toy/original.yaml", "--ckpt_path", str(path)],
    ):
        r = run_cli_here("fit", *args, *quick_args(tmp_path / "out"))
        assert r.returncode == 2, r.stderr[-2000:]
        line = r.stderr.strip().splitlines()[-1]
        assert line == (f"unlearning: error: checkpoint {str(path)!r} holds objects that cannot be loaded safely "
                        "(only tensors and plain containers are allowed); it was refused and nothing in it ran")
        assert "weights_only=False" not in r.stderr and "weights_only` set to `False`" not in r.stderr
        assert not marker.exists()  # the payload never ran
        assert not (tmp_path / "out").exists()


def test_a_file_that_is_no_checkpoint_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.ckpt"
    bad.write_text("101 not a checkpoint\n")
    r = run_cli_here("fit", "-c", "configs/toy/unlearn/finetune.yaml", "--model.init_args.original", str(bad),
                *quick_args(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"unlearning: error: {str(bad)!r} is not a checkpoint: expected a file written by torch.save (the .ckpt of `unlearning fit`)")


def test_every_loader_of_the_project_refuses_it(evil: tuple[Path, Path]) -> None:
    """The Python API too: the network of a checkpoint, its metadata, a hypernetwork, an evaluation."""
    from unlearning.methods.hypernet.trainer import load_hypernet
    from unlearning.modules.base import load_checkpoint_meta, load_net

    path, marker = evil
    for load in (load_net, load_checkpoint_meta, load_hypernet):
        with pytest.raises(ValueError, match="cannot be loaded safely"):
            load(path)
    assert not marker.exists()


def test_a_malicious_cache_entry_is_refused(tmp_path: Path, evil: tuple[Path, Path]) -> None:
    """In the score cache: as the cached original a method run starts from, and as a cached oracle
    that the score evaluates once more (an entry missing its retain margins)."""
    import shutil

    from tests.conftest import REPO
    from unlearning.cli import main

    path, marker = evil
    score = ["score", "-c", str(REPO / "configs/score/toy.yaml"), "--n_models", "2", "--progress", "false",
             "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert main([*score, "--seeds", "0:1"]) is None  # the original, oracle 0 and method run 0
    finally:
        os.chdir(cwd)
    cache = tmp_path / "cache"
    (original,) = cache.glob("original-*/seed-0000")
    shutil.copy(path, original / "model.ckpt")
    for run in cache.glob("method-*/seed-*"):
        shutil.rmtree(run)  # a method run must start from the cached original again
    r = run_cli_here(*score, "--seeds", "0:1")
    assert r.returncode == 2 and "cannot be loaded safely" in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
    assert not marker.exists()

    (oracle,) = cache.glob("oracle-*/seed-0000")
    shutil.copy(path, oracle / "model.ckpt")
    (oracle / "retain_lsc.npy").unlink()  # an entry from before KLOM: the score evaluates it again
    from unlearning.scoring.cache import CachedRun
    from unlearning.scoring.cached_model import complete_evaluation

    with pytest.raises(ValueError, match="cannot be loaded safely"):
        complete_evaluation(CachedRun(0, oracle), {"class_path": "TwoCircles", "init_args": {"num_train": 200}})
    assert not marker.exists()
