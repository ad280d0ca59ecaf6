"""The seed's methods under bf16-mixed precision and under 2-process DDP on CPU (and, for DDP, the
plain classifier that trains the original and the oracle)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

import unlearning.methods as methods
from tests.conftest import REPO
from tests.synthetic import datamodule, trainer

#: each seed module with small settings: (class, extra init args, stage it needs)
CASES = {
    "Classifier": {"net": {"class_path": "unlearning.nets.SmallCNN", "init_args": {"width": 4, "hidden": 16}}},
    "DiscriminatorUnlearn": {"lr": 0.05},
    "RetainFreeDiscriminator": {"lr": 0.05},
    "StreamingForget": {"request_size": 30, "steps_per_request": 2},
    "HypernetTrainer": {"patched_layers": 2, "rank": 4, "hidden": 32},
    "HypernetUnlearn": {"lr": 0.01},
}


@pytest.fixture(scope="module")
def hypernet(synthetic_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hyper_scaling")
    L.seed_everything(0)
    module = methods.HypernetTrainer(original=str(synthetic_models["original"]), **CASES["HypernetTrainer"])
    t = trainer(tmp, -1, max_steps=20, enable_checkpointing=False, limit_val_batches=0)
    t.fit(module, datamodule())
    t.save_checkpoint(tmp / "hypernet.ckpt")
    return tmp / "hypernet.ckpt"


def _args(name: str, models: dict[str, Path], hypernet: Path) -> dict:
    if name == "Classifier":
        return {**CASES[name], "log_distributions": False}
    args = {"original": str(models["original"]), **CASES[name]}
    if name != "HypernetTrainer":
        args["log_distributions"] = False
    if name == "HypernetUnlearn":
        args["hypernet"] = str(hypernet)
    return args


@pytest.mark.parametrize("name", sorted(set(CASES) - {"Classifier"}))
def test_bf16_mixed_computes_in_bf16_and_keeps_fp32_weights(
    name: str, synthetic_models: dict[str, Path], hypernet: Path, tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = methods.module_class(name)(**_args(name, synthetic_models, hypernet))
    # the layer that trains: the hypernetwork's first layer for its trainer, else the network's first conv
    layer = module.hypernet.embed[0] if name == "HypernetTrainer" else next(
        m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[torch.dtype] = []
    layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if module.trainer.training else None)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer(tmp_path, 1, max_steps=3, precision="bf16-mixed", enable_checkpointing=False,
            limit_val_batches=0).fit(module, datamodule())
    assert torch.bfloat16 in seen, seen  # autocast was on in the training steps
    changed = [k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, "nothing trained"
    for k in changed:
        assert module.state_dict()[k].dtype == torch.float32, k  # mixed: the weights stay fp32
        assert torch.isfinite(module.state_dict()[k]).all(), k


@pytest.mark.slow  # about 25 s per module on 2 cores: five DDP launches
@pytest.mark.parametrize("name", sorted(CASES))
def test_ddp_two_processes_keep_identical_replicas(
    name: str, synthetic_models: dict[str, Path], hypernet: Path, tmp_path: Path
) -> None:
    """Under 2-process DDP each rank trains on its shard and the replicas stay identical (every
    parameter's gradient is all-reduced); the cost counts both ranks' images."""
    args = json.dumps(_args(name, synthetic_models, hypernet))
    r = subprocess.run([sys.executable, "-m", "tests.ddp_worker", name, args, str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["sums"] == ranks[1]["sums"]
    assert ranks[0]["cost"]["images_seen"] == ranks[1]["cost"]["images_seen"] > 0
    if name == "Classifier":  # one stream: 6 steps of 64 images on each of the 2 ranks
        assert ranks[0]["cost"]["images_seen"] == 6 * 64 * 2
        return
    original = torch.load(synthetic_models["original"], weights_only=True)["state_dict"]
    trained = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    moved = [k for k, v in original.items() if k in trained and v.is_floating_point() and not torch.equal(v, trained[k])]
    assert moved or name == "HypernetTrainer", "the network did not train"
