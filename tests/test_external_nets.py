"""Other libraries' models as networks: torchvision's and timm's by name, rebuilt from a
checkpoint's spec under ``weights_only`` loading like the project's own nets."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision
import yaml
from torch import nn

from tests.conftest import REPO, run_cli_here

from unlearning.data import SyntheticImageDataModule
from unlearning.modules import Classifier
from unlearning.modules.checkpoint import load_net, read_checkpoint
from unlearning.nets import (
    SmallCNN, TimmNet, TorchvisionNet, build_net, net_num_classes, net_spec, weights_module,
)
from unlearning.nets.external import MissingExtraError


def fit_and_reload(net: nn.Module, tmp_path: Path) -> tuple[Classifier, nn.Module, dict]:
    """Two training steps of a Classifier of ``net`` on tiny synthetic images, then its
    checkpoint's network rebuilt from the checkpoint alone."""
    data = SyntheticImageDataModule(num_train=32, num_heldout=16, num_classes=4, image_size=16,
                                    batch_size=8, eval_batch_size=16)
    module = Classifier(net=net, lr=0.01)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, default_root_dir=tmp_path, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, data)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    rebuilt, meta = load_net(path)  # read with weights_only=True (read_checkpoint -> safe_load)
    return module, rebuilt, meta


def test_torchvision_net_round_trip(tmp_path: Path) -> None:
    net = TorchvisionNet("resnet18", num_classes=4, cifar_stem=True)
    module, rebuilt, meta = fit_and_reload(net, tmp_path)
    assert meta["net"] == {"class_path": "unlearning.nets.external.TorchvisionNet",
                           "init_args": {"name": "resnet18", "num_classes": 4, "cifar_stem": True, "kwargs": {}}}
    assert meta["num_classes"] == 4 and module.num_classes == 4  # taken from the net
    x = torch.randn(3, 3, 16, 16)
    module.net.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), module.net(x))
    # the trained weights came back, not a fresh initialisation
    assert not torch.equal(build_net(meta["net"]).eval()(x), rebuilt(x))


def test_timm_net_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    net = TimmNet("resnet18", num_classes=4, cifar_stem=True, kwargs={"drop_rate": 0.1})
    module, rebuilt, meta = fit_and_reload(net, tmp_path)
    assert meta["net"]["init_args"] == {"name": "resnet18", "num_classes": 4, "pretrained": False,
                                        "cifar_stem": True, "kwargs": {"drop_rate": 0.1}}
    x = torch.randn(3, 3, 16, 16)
    module.net.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), module.net(x))
    assert read_checkpoint(tmp_path / "model.ckpt")["hyper_parameters"]["num_classes"] == 4


def test_spec_by_short_name_as_a_config_gives_it() -> None:
    net = build_net({"class_path": "TorchvisionNet", "init_args": {"name": "resnet18", "num_classes": 10}})
    assert isinstance(net, TorchvisionNet) and net.model.fc.out_features == 10
    assert net_spec(net)["init_args"] == {"name": "resnet18", "num_classes": 10, "cifar_stem": False, "kwargs": {}}


def test_cifar_stem() -> None:
    plain = TorchvisionNet("resnet18", num_classes=10)
    cifar = TorchvisionNet("resnet18", num_classes=10, cifar_stem=True)
    assert plain.model.conv1.kernel_size == (7, 7) and isinstance(plain.model.maxpool, nn.MaxPool2d)
    assert cifar.model.conv1.kernel_size == (3, 3) and cifar.model.conv1.stride == (1, 1)
    assert isinstance(cifar.model.maxpool, nn.Identity)
    # a 32x32 image keeps its resolution through the stem (8x8 maps before the pool of layer4 -> 4x4)
    feats = []
    cifar.model.layer4.register_forward_hook(lambda _m, _i, out: feats.append(out.shape))
    cifar.eval()(torch.zeros(1, 3, 32, 32))
    assert feats == [torch.Size([1, 512, 4, 4])]
    with pytest.raises(ValueError, match=r"cifar_stem needs a ResNet-style model .*'vgg11'"):
        TorchvisionNet("vgg11", num_classes=10, cifar_stem=True)


def test_torchvision_state_dict_loads_into_the_wrapped_model() -> None:
    plain = torchvision.models.resnet18(num_classes=10)
    net = TorchvisionNet("resnet18", num_classes=10)
    weights_module(net).load_state_dict(plain.state_dict())  # strict: the same keys and shapes
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net.eval()(x), plain.eval()(x))
    small = SmallCNN(num_classes=10, width=4, hidden=8)
    assert weights_module(small) is small


def test_bad_arguments_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"torchvision has no classification model 'resnt18' \(did you mean resnet18"):
        TorchvisionNet("resnt18", num_classes=10)
    with pytest.raises(ValueError, match=r"TorchvisionNet kwargs must not set \['weights'\]"):
        TorchvisionNet("resnet18", num_classes=10, kwargs={"weights": "IMAGENET1K_V1"})
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        TorchvisionNet("resnet18", num_classes=1)


def test_timm_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(MissingExtraError, match=r"^TimmNet needs timm, .*pip install 'unlearning\[timm\]'$") as info:
        TimmNet("resnet18", num_classes=10)
    assert isinstance(info.value, ValueError)  # printed as one line by the command


def test_timm_unknown_name() -> None:
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"timm has no model 'resnet181'"):
        TimmNet("resnet181", num_classes=10)


def test_classifier_takes_its_classes_from_the_net() -> None:
    assert Classifier(net=TorchvisionNet("resnet18", num_classes=7)).num_classes == 7
    assert Classifier(net=SmallCNN(num_classes=3, width=4, hidden=8)).num_classes == 3
    assert Classifier().num_classes == 10  # the default network
    with pytest.raises(ValueError, match=r"num_classes is 10 but the network TorchvisionNet outputs 7 classes"):
        Classifier(net=TorchvisionNet("resnet18", num_classes=7), num_classes=10)
    assert net_num_classes(nn.Linear(3, 5)) is None  # no guess from a last layer


def test_timm_pretrained_from_a_local_file(tmp_path: Path) -> None:
    """A fine-tuned original's oracle starts from the same pretrained weights file, offline."""
    timm = pytest.importorskip("timm")
    backbone = timm.create_model("resnet18", pretrained=False)
    nn.init.constant_(backbone.layer1[0].conv1.weight, 0.125)  # not what an initialisation draws
    path = tmp_path / "pretrained.pth"
    torch.save(backbone.state_dict(), path)
    spec = {"name": "resnet18", "num_classes": 10, "pretrained": True,
            "kwargs": {"pretrained_cfg_overlay": {"file": str(path)}}}
    a, b = TimmNet(**spec), build_net({"class_path": "TimmNet", "init_args": spec})
    assert torch.equal(a.model.layer1[0].conv1.weight, backbone.layer1[0].conv1.weight)
    assert torch.equal(a.model.layer1[0].conv1.weight, b.model.layer1[0].conv1.weight)
    assert a.model.fc.out_features == 10


PRESETS = sorted(p.relative_to(REPO).as_posix() for d in ("torchvision", "timm") for p in (REPO / "configs" / d).glob("*.yaml"))


@pytest.mark.parametrize("config_path", PRESETS)
def test_preset_parses(config_path: str) -> None:
    """The GPU presets parse (their fit on tiny data runs in tests/test_configs.py)."""
    out = run_cli_here("fit", "-c", config_path, "--print_config")
    assert out.returncode == 0, out.stderr
    net = yaml.safe_load(out.stdout)["model"]["init_args"]["net"]
    assert net["class_path"].rsplit(".", 1)[-1] in ("TorchvisionNet", "TimmNet")
    assert net["init_args"]["num_classes"] == 10 and net["init_args"]["cifar_stem"] is True


@pytest.mark.parametrize("family", ["torchvision", "timm"])
def test_original_and_oracle_presets_share_network_and_recipe(family: str) -> None:
    """The oracle must be the original's architecture, initialisation and recipe on the retain set:
    the two presets differ only in the module and the run's name."""
    original, oracle = (yaml.safe_load((REPO / "configs" / family / f"{s}.yaml").read_text()) for s in ("original", "retrain"))
    assert (original["model"]["class_path"], oracle["model"]["class_path"]) == ("Classifier", "RetrainOracle")
    assert original["model"]["init_args"] == oracle["model"]["init_args"]
    assert original["data"] == oracle["data"] and original["seed_everything"] == oracle["seed_everything"]
    for cfg in (original, oracle):
        cfg["trainer"]["logger"]["init_args"].pop("name")
    assert original["trainer"] == oracle["trainer"]
