"""Every YAML under configs/ parses and runs for a few batches on tiny data (no test edit needed
for a new config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, quick_args, read_scalars, run_cli_here
from unlearning.cli import main
from unlearning.methods import module_class

#: the fit configs (score, leaderboard and search-space files are tested where they are read)
CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml")
                 if "trainer" in (yaml.safe_load(p.read_text()) or {}))


@pytest.fixture(scope="module")
def tiny_cifar100(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CIFAR-100 in torchvision's format (300 training, 100 test images)."""
    from tests.test_datasets import write_cifar100

    return write_cifar100(tmp_path_factory.mktemp("tiny_cifar100"), n_train=300, n_test=100)


def overrides_for(config: dict, tiny_cifar: Path, checkpoints: dict[str, Path], tiny_cifar100: Path | None = None) -> list[str]:
    """Arguments that point a config at tiny data and tiny checkpoints (a score-preset method
    config, which has no data section of its own, gets the tiny CIFAR-10 folder; a CIFAR-100
    preset gets ``tiny_cifar100``, files in torchvision's format)."""
    args: list[str] = []
    data = config.get("data", {})
    if not data:
        args += ["--data", "CIFAR10DataModule"]
        data = {"class_path": "CIFAR10DataModule"}
    if data.get("class_path", "").endswith("CIFAR10DataModule"):
        args += ["--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null"]
        if "heldout_subset" in data.get("init_args", {}):
            args += ["--data.init_args.heldout_subset", "null"]
    if data.get("class_path", "").endswith("CIFAR100DataModule"):
        args += ["--data.init_args.root", str(tiny_cifar100)]
    init = config.get("model", {}).get("init_args", {})
    for key in ("original", "oracle", "hypernet"):
        if key in init:
            args += [f"--model.init_args.{key}", str(checkpoints[key])]
    if "steps_per_request" in init:  # a whole forget set as one request would run all its steps
        args += ["--model.init_args.steps_per_request", "2"]
    return args


#: every method has three fit configs: the CPU preset's fit runs in the default test run, the
#: full-scale and score-preset fits (the same classes with other settings) run with ``-m slow``
#: and are parsed in the default run (unknown keys, wrong types, a class that does not exist)
SLOW_PREFIXES = ("configs/unlearn/", "configs/score/methods/", "configs/cifar100/", "configs/timm/", "configs/torchvision/")


def _param(path: str) -> object:
    return pytest.param(path, marks=pytest.mark.slow) if path.startswith(SLOW_PREFIXES) else path


@pytest.mark.parametrize("config_path", [c for c in CONFIGS if c.startswith(SLOW_PREFIXES)])
def test_config_parses(config_path: str) -> None:
    out = run_cli_here("fit", "-c", config_path, "--print_config")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["model"]["class_path"].endswith(
        yaml.safe_load((REPO / config_path).read_text())["model"]["class_path"].split(".")[-1])


@pytest.mark.parametrize("config_path", [_param(c) for c in CONFIGS])
def test_config_runs(config_path: str, tmp_path: Path, tiny_cifar: Path, request: pytest.FixtureRequest) -> None:
    config = yaml.safe_load((REPO / config_path).read_text())
    init = config.get("model", {}).get("init_args", {})
    needs_ckpt = any(k in init for k in ("original", "oracle", "hypernet"))
    two_circles = config.get("data", {}).get("class_path", "").endswith("TwoCircles")
    fixture = "tiny_toy_checkpoints" if two_circles else "tiny_checkpoints"
    ckpts = dict(request.getfixturevalue(fixture)) if needs_ckpt else {}
    if "hypernet" in init:
        ckpts["hypernet"] = request.getfixturevalue("tiny_toy_hypernet" if two_circles else "tiny_hypernet")
    cifar100 = request.getfixturevalue("tiny_cifar100") if config.get("data", {}).get("class_path", "").endswith(
        "CIFAR100DataModule") else None
    extra = []
    if "simulated_oracles" in init:  # a memorise run's scores on the tiny training set
        extra = ["--model.init_args.simulated_oracles", str(_simulated_oracles(tmp_path, tiny_cifar))]
    main(["fit", "-c", config_path, *quick_args(tmp_path), *overrides_for(config, tiny_cifar, ckpts, cifar100), *extra])
    run_dir = tmp_path / "run"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "config.yaml").is_file()
    scalars = read_scalars(run_dir)
    if module_class(config["model"]["class_path"]).evaluated:
        for stream in ("retain", "forget", "val", "test"):
            assert f"val/{stream}_acc" in scalars, sorted(scalars)
    else:  # a one-time stage (a hypernetwork): it logs its training, it is no classifier to evaluate
        assert any(k.startswith("train/") for k in scalars), sorted(scalars)


def _simulated_oracles(out: Path, tiny_cifar: Path) -> Path:
    """A ``memorisation.npz`` with the subset models' answers for every tiny training example."""
    import numpy as np

    from tests.synthetic import write_simulated_oracles
    from unlearning.data import CIFAR10DataModule

    dm = CIFAR10DataModule(root=str(tiny_cifar), train_subset=None)
    dm.setup("fit")
    rows = np.sort(dm.stream_source("train")[2].numpy())
    rng = np.random.default_rng(0)
    return write_simulated_oracles(out / "memorisation.npz", rows, rng.normal(size=(4, rows.size)),
                                   members=rng.random((4, rows.size)) < 0.5)


def _tiny_hypernet(out: Path, config: str, tiny_cifar: Path, checkpoints: dict[str, Path]) -> Path:
    """A hypernetwork trained for a few steps for a tiny original (for configs that take one)."""
    main(["fit", "-c", config, *quick_args(out, "hypernet"),
          *overrides_for(yaml.safe_load((REPO / config).read_text()), tiny_cifar, checkpoints)])
    path = out / "hypernet" / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def tiny_hypernet(tmp_path_factory: pytest.TempPathFactory, tiny_cifar: Path, tiny_checkpoints: dict[str, Path]) -> Path:
    return _tiny_hypernet(tmp_path_factory.mktemp("hyper"), "configs/cpu/hypernet.yaml", tiny_cifar, tiny_checkpoints)


@pytest.fixture(scope="module")
def tiny_toy_hypernet(tmp_path_factory: pytest.TempPathFactory, tiny_cifar: Path, tiny_toy_checkpoints: dict[str, Path]) -> Path:
    return _tiny_hypernet(tmp_path_factory.mktemp("toy_hyper"), "configs/toy/hypernet.yaml", tiny_cifar, tiny_toy_checkpoints)
