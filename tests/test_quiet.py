"""Quiet output: the quickstart (and every ``unlearning`` command) shows a progress bar per stage,
its results, where the logs went and what to run next, not Lightning's chatter (model summaries,
seeds, devices, tips); ``-v`` or ``UNLEARNING_VERBOSE=1`` brings that back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import quick_args, run_cli_here
from unlearning.utils import silence_lightning_noise

#: what Lightning prints on its own, several times over, that a quiet run must not show (the
#: model summary as a plain table, and as Rich draws it where Rich is installed)
NOISE = ("Seed set to", "GPU available", "TPU available", "HPU available", "Total Flops", "Total FLOPs",
         "| Name", "┃ Name", "Tip", "LOCAL_RANK")


def tiny_quickstart_args(root: Path, out: Path) -> list[str]:
    """The quickstart on the tiny image folder: one method, two batches a stage, logs under ``out``;
    the model summary and the progress bars left on, as a user gets them."""
    return [
        "--root", str(root), "--methods", "finetune", "--data.init_args.train_subset", "null",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
        "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1",
        "--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(out),
    ]


class _Records(logging.Handler):
    """Every record that gets past a logger's level, whatever handlers Lightning or pytest set up."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lightning_records() -> Iterator[list[str]]:
    """The messages that Lightning's loggers let through during a test (they reach its two
    packages' loggers, whether or not these pass them on to the root logger)."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def test_quickstart_prints_progress_results_logs_and_next_step_only(
        tiny_cifar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        lightning_records: list[str]) -> None:
    """The quickstart's path (in-process, to spare the seconds of a new interpreter): nothing of
    Lightning's chatter on stdout, stderr or through its loggers, and what the user needs is there."""
    from examples.quickstart import main as quickstart

    monkeypatch.delenv("UNLEARNING_VERBOSE", raising=False)
    monkeypatch.delenv("UNLEARNING_DEBUG", raising=False)
    quickstart(tiny_quickstart_args(tiny_cifar, tmp_path))
    captured = capfd.readouterr()
    said = "\n".join([captured.out, captured.err, *lightning_records])
    shown = [noise for noise in NOISE if noise in said]
    assert not shown, (shown, said[-3000:])
    for stage in ("original", "retrain", "finetune"):  # each stage says what it trains, then its bar
        assert f"training {tmp_path / stage} (" in captured.out, captured.out[-3000:]
    assert captured.out.count("Epoch 0") >= 3  # a progress bar (tqdm's, or Rich's where it is installed)
    assert "| finetune |" in captured.out and "| oracle (retrain) |" in captured.out
    assert f"tensorboard --logdir {tmp_path}" in captured.out
    assert "unlearning score -c configs/score/cpu.yaml --method configs/score/methods/finetune.yaml" in captured.out


def test_verbose_brings_lightnings_own_output_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   lightning_records: list[str]) -> None:
    """``unlearning fit -v`` (a toy fit) lets the seed, device and model summary lines through
    again, also in a process where a quiet run raised their loggers' levels before (``-v`` sets
    ``UNLEARNING_VERBOSE=1``, the variable a user may set instead)."""
    monkeypatch.setenv("UNLEARNING_VERBOSE", "")  # so that what -v sets is undone after the test
    silence_lightning_noise()  # as a quiet run before this one in the same process left them
    r = run_cli_here("fit", "-v", "-c", "configs/toy/original.yaml", *quick_args(tmp_path),
                     "--trainer.enable_model_summary", "null")  # the default: on when verbose
    assert r.returncode == 0, r.stderr[-3000:]
    said = "\n".join([*lightning_records, r.stdout, r.stderr])
    for line in ("Seed set to 0", "GPU available"):
        assert line in said, (line, said[-2000:])
    assert "| Name" in said or "┃ Name" in said, said[-2000:]  # the model summary, plain or Rich's


def test_the_scripts_verbose_flag_sets_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quickstart's and the examples' ``-v`` is ``UNLEARNING_VERBOSE=1``, which the stages read."""
    import argparse

    from unlearning.utils import verbose
    from unlearning.scripts import add_verbose_flag

    monkeypatch.setenv("UNLEARNING_VERBOSE", "")
    p = argparse.ArgumentParser()
    add_verbose_flag(p)
    args, extra = p.parse_known_args(["--trainer.max_epochs", "1"])
    assert not args.verbose and not verbose()
    args, extra = p.parse_known_args(["-v", "--trainer.max_epochs", "1"])
    assert args.verbose and verbose() and extra == ["--trainer.max_epochs", "1"]


def test_silencing_keeps_warnings_and_gives_levels_back(lightning_records: list[str]) -> None:
    """Only INFO chatter is dropped: a warning on the same loggers still shows, and turning the
    silence off gives each logger the level it had (here one a user set)."""
    from lightning.fabric.utilities.seed import seed_everything

    silence_lightning_noise(False)  # whatever an earlier test in this process left
    seed_log = logging.getLogger("lightning.fabric.utilities.seed")
    before = seed_log.level
    seed_log.setLevel(logging.DEBUG)
    try:
        silence_lightning_noise()
        seed_everything(0)
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning("a warning of the user's business")
        assert lightning_records == ["a warning of the user's business"]
        silence_lightning_noise(False)
        assert seed_log.level == logging.DEBUG
        seed_everything(0)
        assert "Seed set to 0" in lightning_records[-1]
    finally:
        silence_lightning_noise(False)
        seed_log.setLevel(before)
