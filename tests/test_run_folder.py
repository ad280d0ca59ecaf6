"""A run folder is never lost to a repeated command: ``fit`` refuses to start over a run, resumes it
with ``--ckpt_path last``, replaces it only with ``--overwrite true``, and a run that fails before
it trains leaves nothing; later stages name an original by its run folder. Also the help a
newcomer meets: ``unlearning --help`` and ``--model.help`` of every project module."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

from tests.conftest import quick_args, run_cli_here
from unlearning.cli import SUBCOMMANDS, main
from unlearning.methods import Finetune
from unlearning.runfolder import run_finished

TOY = "configs/toy/original.yaml"


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished toy fit in ``tmp_path/orig`` (two epochs of two batches)."""
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    main(["fit", "-c", TOY, *quick_args(tmp_path, "orig"), "--trainer.max_epochs", "2"])
    run = tmp_path / "orig"
    assert run_finished(run / "checkpoints" / "last.ckpt")
    return run


def test_a_repeated_fit_refuses_with_one_line_and_changes_nothing(finished_run: Path) -> None:
    before = _state(finished_run)
    r = run_cli_here("fit", "-c", TOY, *quick_args(finished_run.parent, "orig"))
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("unlearning: error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert str(finished_run) in err[0] and "finished run" in err[0]
    assert "--overwrite true" in err[0] and "--trainer.logger.init_args.version" in err[0]
    assert _state(finished_run) == before  # no event file, config or checkpoint touched


def test_an_unfinished_run_is_resumed_with_ckpt_path_last(finished_run: Path) -> None:
    ckpt = finished_run / "checkpoints" / "last.ckpt"
    ckpt.with_name("last.ckpt.finished").unlink()  # what a killed fit leaves: no mark
    r = run_cli_here("fit", "-c", TOY, *quick_args(finished_run.parent, "orig"))
    assert r.returncode == 2 and "did not finish" in r.stderr and "--ckpt_path last" in r.stderr, r.stderr[-2000:]
    steps = torch.load(ckpt, weights_only=True)["global_step"]
    main(["fit", "-c", TOY, *quick_args(finished_run.parent, "orig"), "--trainer.max_epochs", "4", "--ckpt_path", "last"])
    resumed = torch.load(ckpt, weights_only=True)
    assert resumed["global_step"] == 2 * steps  # it went on from epoch 2, it did not restart
    assert run_finished(ckpt)


class _OneTimePrePass(Finetune):
    """A method whose on_train_start would change the weights: it must not resume."""

    resumable = False


def test_a_method_that_cannot_resume_refuses_ckpt_path_last(finished_run: Path, tmp_path: Path) -> None:
    cfg = "configs/toy/unlearn/finetune.yaml"
    method = [*quick_args(tmp_path, "m"), "--model.init_args.original", str(finished_run),
              "--model.class_path", f"{__name__}._OneTimePrePass"]
    main(["fit", "-c", cfg, *method])
    ckpt = tmp_path / "m" / "checkpoints" / "last.ckpt"
    ckpt.with_name("last.ckpt.finished").unlink()
    before = ckpt.read_bytes()
    r = run_cli_here("fit", "-c", cfg, *method, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "unlearning: error: _OneTimePrePass cannot resume an interrupted fit: its on_train_start changes the weights "
        "or keeps state outside the checkpoint; start the run over with --overwrite true"], r.stderr[-2000:]
    assert ckpt.read_bytes() == before


def test_overwrite_replaces_the_run(finished_run: Path) -> None:
    old_events = set(finished_run.glob("events.out.tfevents.*"))
    old_ckpt = (finished_run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    (finished_run / "notes.txt").write_text("mine")
    main(["fit", "-c", TOY, *quick_args(finished_run.parent, "orig"), "--overwrite", "true"])
    assert old_events and not (old_events & set(finished_run.glob("events.out.tfevents.*")))
    assert (finished_run / "checkpoints" / "last.ckpt").stat().st_mtime_ns != old_ckpt
    assert run_finished(finished_run / "checkpoints" / "last.ckpt")
    assert (finished_run / "notes.txt").read_text() == "mine"  # what fit did not write is left alone


def test_a_run_that_fails_before_training_leaves_nothing(finished_run: Path, tmp_path: Path) -> None:
    before = _state(finished_run)
    # fails after the Trainer has started (and opened its TensorBoard file), before any step
    r = run_cli_here("fit", "-c", TOY, *quick_args(tmp_path, "orig"), "--ckpt_path", str(tmp_path / "missing.ckpt"))
    assert r.returncode != 0 and "missing.ckpt" in r.stderr
    assert _state(finished_run) == before
    r = run_cli_here("fit", "-c", TOY, *quick_args(tmp_path / "new", "run"), "--ckpt_path", str(tmp_path / "missing.ckpt"))
    assert r.returncode != 0 and not (tmp_path / "new").exists()


def test_an_original_is_named_by_its_run_folder(finished_run: Path) -> None:
    cli = main(["-c", "configs/toy/unlearn/finetune.yaml", *quick_args(finished_run.parent, "un"),
                "--model.init_args.original", str(finished_run)], run=False, save_config=False)
    ref = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    got = cli.model.net.state_dict()
    assert all(torch.equal(got[k[len("net."):]], v) for k, v in ref.items() if k.startswith("net."))
    r = run_cli_here("fit", "-c", "configs/toy/unlearn/finetune.yaml", *quick_args(finished_run.parent, "un2"),
                "--model.init_args.original", str(finished_run.parent))
    assert r.returncode == 2 and "a folder without checkpoints/last.ckpt" in r.stderr, r.stderr[-2000:]


def test_help_names_the_program_and_every_subcommand_on_one_line() -> None:
    r = run_cli_here("--help")
    assert r.returncode == 0
    assert "machine unlearning" in r.stdout and "Lightning Trainer command line tool" not in r.stdout
    listed = dict(re.findall(r"^    (\w+) +(.+)$", r.stdout, flags=re.M))
    for name, line in SUBCOMMANDS.items():
        assert name in listed and line.startswith(listed[name]), (name, listed.get(name))
    for name in ("score", "leaderboard", "tune"):  # the project's own subcommands answer --help too
        sub = run_cli_here(name, "--help")
        assert sub.returncode == 0 and "usage" in sub.stdout.lower(), sub.stderr[-1000:]


def _project_modules() -> list[str]:
    from lightning.pytorch import LightningModule

    import unlearning.methods
    import unlearning.modules

    names = set()
    for mod in (unlearning.modules, unlearning.methods):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, type) and issubclass(obj, LightningModule):
                names.add(name)
    return sorted(names)


@pytest.mark.parametrize("name", _project_modules())
def test_model_help_of_every_module_fits_on_two_screens(name: str) -> None:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["fit", "--model.help", name])
    assert done.value.code == 0
    text = out.getvalue()
    assert len(text.splitlines()) <= 120, len(text.splitlines())
    assert "torch.nn.Linear" not in text and "torch.ao." not in text
    assert "lightning.pytorch.callbacks.ModelPruning" not in text  # Lightning's callbacks are not listed
    if "--model.net NET" in text:  # a module with a network argument offers the project's
        flat = " ".join(text.split())
        assert "unlearning.nets.SmallCNN" in flat and "any torch.nn.Module by class path" in flat
