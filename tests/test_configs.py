"""Every YAML under configs/ parses and runs for a few batches on tiny data (no test edit needed
for a new config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, quick_args, read_scalars
from unlearning.cli import main

CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml"))


def overrides_for(config: dict, tiny_cifar: Path, checkpoints: dict[str, Path]) -> list[str]:
    """Arguments that point a config at tiny data and tiny checkpoints."""
    args: list[str] = []
    data = config.get("data", {})
    if data.get("class_path", "").endswith("CIFAR10DataModule"):
        args += ["--data.init_args.root", str(tiny_cifar), "--data.init_args.train_subset", "null"]
        if "heldout_subset" in data.get("init_args", {}):
            args += ["--data.init_args.heldout_subset", "null"]
    init = config.get("model", {}).get("init_args", {})
    for key in ("original", "oracle"):
        if key in init:
            args += [f"--model.init_args.{key}", str(checkpoints[key])]
    return args


@pytest.mark.parametrize("config_path", CONFIGS)
def test_config_runs(config_path: str, tmp_path: Path, tiny_cifar: Path, request: pytest.FixtureRequest) -> None:
    config = yaml.safe_load((REPO / config_path).read_text())
    if "trainer" not in config:
        pytest.skip(f"{config_path} is not a fit config")
    needs_ckpt = any(k in config.get("model", {}).get("init_args", {}) for k in ("original", "oracle"))
    two_circles = config.get("data", {}).get("class_path", "").endswith("TwoCircles")
    fixture = "tiny_toy_checkpoints" if two_circles else "tiny_checkpoints"
    ckpts = request.getfixturevalue(fixture) if needs_ckpt else {}
    main(["fit", "-c", config_path, *quick_args(tmp_path), *overrides_for(config, tiny_cifar, ckpts)])
    run_dir = tmp_path / "run"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "config.yaml").is_file()
    scalars = read_scalars(run_dir)
    for stream in ("retain", "forget", "val", "test"):
        assert f"val/{stream}_acc" in scalars, sorted(scalars)
