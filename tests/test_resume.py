"""Kill and resume: a real ``unlearning fit`` of an original, an oracle and a method (RandomLabel,
which draws from the global random generator at every step) is killed with SIGKILL in the middle
of an epoch, rerun with the resume command of docs/workflow.md (the same command plus
``--ckpt_path last``), and ends exactly where the uninterrupted run ends: the same weights bit for
bit, the same final metrics and the same number of training images.

Why exactly: the resumed fit starts from the checkpoint of the last finished epoch, which holds
the weights, optimiser, scheduler and loop state (Lightning) and the random generators' states
(this project); the training streams shuffle by (seed, epoch), not by how many passes the process
has made; on one CPU thread the same operations in the same order give the same bits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, read_scalars
from unlearning.runfolder import run_finished

pytestmark = pytest.mark.slow


def _fit(config: str, folder: Path, *extra: str, beacon: Path | None = None) -> list[str]:
    callbacks = [] if beacon is None else [{"class_path": "tests.beacon.Beacon",
                                            "init_args": {"path": str(beacon), "sleep": 0.03}}]
    return [sys.executable, "-m", "unlearning", "fit", "-c", config,
            "--trainer.logger.init_args.save_dir", str(folder.parent), "--trainer.logger.init_args.name", folder.name,
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.callbacks", json.dumps(callbacks), *extra]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _killed_mid_epoch(cmd: list[str], beacon: Path, epoch: int, batch: int) -> None:
    """Start ``cmd`` and SIGKILL it once it has finished batch ``batch`` of epoch ``epoch``."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if beacon.is_file():
                e, b = map(int, beacon.read_text().split())
                if (e, b) >= (epoch, batch):
                    break
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            time.sleep(0.005)
        else:  # pragma: no cover
            raise AssertionError("the run never reached the epoch to kill it in")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    e, b = map(int, beacon.read_text().split())
    assert e == epoch and b >= batch, "killed at an epoch boundary, not in the middle of one"


def _final(folder: Path) -> dict:
    ckpt = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    scalars = read_scalars(folder)  # every event file of the run folder, the killed part's too
    return {"state": ckpt["state_dict"], "epoch": ckpt["epoch"], "step": ckpt["global_step"],
            "cost": ckpt["unlearning"]["cost"],
            # every final metric (its step and value) but the wall time itself
            "metrics": {tag: max(points) for tag, points in scalars.items()
                        if tag.startswith("val/") and not tag.startswith("val/cost_time")}}


def _images(root: Path, epochs: int) -> list[str]:
    """The CPU preset on the tiny image folder, with augmentation (random crops and flips from the
    global generator)."""
    return ["--data.init_args.root", str(root), "--data.init_args.train_subset", "null",
            "--data.init_args.batch_size", "16", "--data.init_args.augment", "true",
            "--trainer.max_epochs", str(epochs), "--trainer.accelerator", "cpu"]


@pytest.mark.parametrize("stage", ["original", "oracle", "method", "fast"])
def test_a_fit_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path: Path, stage: str, tiny_cifar: Path) -> None:
    """The original: the two-circles toy; the oracle and the method (RandomLabel, whose labels are
    random too): the small CNN on images with augmentation, so that the random generators matter;
    fast: the fast recipe's original, whose whitening (done once) and lookahead copy (kept in the
    checkpoint) must survive the kill."""
    if stage == "original":
        config, extra = "configs/toy/original.yaml", []
    elif stage == "fast":
        config, extra = "configs/fast/cpu_original.yaml", _images(tiny_cifar, 4)
    elif stage == "oracle":
        config, extra = "configs/cpu/retrain.yaml", _images(tiny_cifar, 4)
    else:
        orig = tmp_path / "orig"
        _run(_fit("configs/cpu/original.yaml", orig, *_images(tiny_cifar, 2)))
        config, extra = "configs/cpu/unlearn/random_label.yaml", [*_images(tiny_cifar, 4), "--model.init_args.original", str(orig),
                                                               "--model.init_args.oracle", "null"]
    beacon = tmp_path / "beacon.txt"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(_fit(config, whole, *extra, beacon=tmp_path / "unused.txt"))

    cmd = _fit(config, killed, *extra, beacon=beacon)
    _killed_mid_epoch(cmd, beacon, epoch=2, batch=2)
    at_kill = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert at_kill["epoch"] == 1 and not run_finished(killed / "checkpoints" / "last.ckpt")
    _run([*cmd, "--ckpt_path", "last"])  # the resume command of docs/workflow.md

    a, b = _final(whole), _final(killed)
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    assert a["state"].keys() == b["state"].keys()
    different = [k for k in a["state"] if not torch.equal(a["state"][k], b["state"][k])]
    assert not different, f"weights differ after the resume: {different[:5]}"
    assert a["metrics"] and a["metrics"] == b["metrics"]
    # the cost: every image counted once (the killed half epoch is redone and counted once), and
    # the time up to the checkpoint is kept (the killed half epoch's time is not: it left nothing)
    assert a["cost"]["images_seen"] == b["cost"]["images_seen"]
    assert b["cost"]["train_time_s"] > at_kill["unlearning"]["cost"]["train_time_s"] > 0
    assert run_finished(killed / "checkpoints" / "last.ckpt")
