"""``unlearning import``: a state_dict trained elsewhere becomes an original checkpoint that the
other commands take, after its keys, shapes and classes are checked and it is evaluated."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from tests.conftest import run_cli_here
from unlearning.data import SyntheticImageDataModule
from unlearning.importing import chance_hint, main, run_import
from unlearning.modules.checkpoint import load_net, read_checkpoint
from unlearning.nets import SmallCNN

DATA_ARGS = dict(num_train=96, num_heldout=48, num_classes=4, image_size=16, signal=0.5, forget_fraction=0.25)
DATA = {"class_path": "SyntheticImageDataModule", "init_args": DATA_ARGS}
SMALL = {"class_path": "SmallCNN", "init_args": {"num_classes": 4, "width": 4, "hidden": 16}}
RESNET = {"class_path": "TorchvisionNet", "init_args": {"name": "resnet18", "num_classes": 4, "cifar_stem": True}}


def data_args(data: dict = DATA) -> list[str]:
    args = ["--data", data["class_path"]]
    for k, v in data["init_args"].items():
        args += [f"--data.{k}", str(v)]
    return args


def trained_small_cnn(steps: int = 60) -> nn.Module:
    """A SmallCNN trained "elsewhere": a plain PyTorch loop on the data module's training images,
    prepared as its evaluation prepares them."""
    torch.manual_seed(0)
    dm = SyntheticImageDataModule(**DATA_ARGS)
    dm.setup()
    x, y, idx = dm.stream_source("train")
    inputs, labels = dm.eval_transform(x[idx]), y[idx]
    net = SmallCNN(num_classes=4, width=4, hidden=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(inputs), labels).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    net = trained_small_cnn()
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    torch.save({"epoch": 9, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path, net


def accuracy_by_hand(net: nn.Module) -> dict[str, float]:
    dm = SyntheticImageDataModule(**DATA_ARGS)
    dm.setup()
    out = {}
    for stream in ("train", "retain", "forget", "val", "test"):
        x, y, idx = dm.stream_source(stream)
        with torch.no_grad():
            out[f"{stream}_acc"] = float((net(dm.eval_transform(x[idx])).argmax(1) == y[idx]).float().mean())
    return out


def test_import_evaluates_and_writes_an_original(small_weights: tuple[Path, nn.Module], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    path, net = small_weights
    out = tmp_path / "original.ckpt"
    result = main(["--net", "SmallCNN", "--net.num_classes", "4", "--net.width", "4", "--net.hidden", "16",
                   *data_args(), "--weights", str(path), "--output", str(out), "--strip_prefix", "module."])
    expected = accuracy_by_hand(net)
    assert result["accuracy"] == pytest.approx(expected)
    assert expected["train_acc"] > 0.9 and result["hint"] is None  # trained on these images: no hint
    printed = capsys.readouterr().out
    for stream in ("train", "retain", "forget", "val", "test"):
        assert f"{stream} acc {expected[f'{stream}_acc']:.4f}" in printed
    rebuilt, meta = load_net(out)  # weights_only reading of the written checkpoint
    assert meta["module"].endswith(".Classifier") and meta["num_classes"] == 4
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))
    assert read_checkpoint(out)["hyper_parameters"]["net"]["class_path"] == "unlearning.nets.cnn.SmallCNN"


def test_imported_torchvision_model_is_an_original_for_a_method(tmp_path: Path) -> None:
    """A plain torchvision ResNet-18 state_dict (as saved by someone's own code) -> import ->
    ``unlearning fit`` of a method that starts from it."""
    plain = torchvision.models.resnet18(num_classes=4)
    plain.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    plain.maxpool = nn.Identity()
    weights = tmp_path / "resnet18.pt"
    torch.save(plain.state_dict(), weights)
    original = tmp_path / "original.ckpt"
    run_import(RESNET, DATA, str(weights), str(original), progress=False)
    net, _ = load_net(original)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), plain.eval()(x))
    res = run_cli_here(
        "fit", "--model", "Finetune", "--model.original", str(original), *data_args(),
        "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_checkpointing", "true")
    assert res.returncode == 0, res.stderr
    ckpts = list((tmp_path / "run").rglob("*.ckpt"))
    assert ckpts, "the method wrote no checkpoint"
    _, meta = load_net(ckpts[0])
    assert meta["net"]["class_path"].endswith("TorchvisionNet") and meta["module"].endswith("Finetune")


def test_near_chance_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net = SmallCNN(num_classes=4, width=4, hidden=16)
    last = net.head[-1]
    nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # always class 0: a quarter right
    weights = tmp_path / "w.pt"
    torch.save({"model": net.state_dict()}, weights)
    main(["--net", "SmallCNN", "--net.num_classes", "4", "--net.width", "4", "--net.hidden", "16", *data_args(),
          "--weights", str(weights), "--output", str(tmp_path / "o.ckpt")])
    assert "hint: training accuracy 0.2" in capsys.readouterr().out
    assert chance_hint({"train_acc": 0.32}, 4) is not None and chance_hint({"train_acc": 0.33}, 4) is None
    assert chance_hint({"train_acc": math.nan}, 4) is None


def _err(*args: str) -> str:
    res = run_cli_here("import", *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_bad_input_is_one_line(small_weights: tuple[Path, nn.Module], tmp_path: Path) -> None:
    path, net = small_weights
    base = ["--net", "SmallCNN", "--net.num_classes", "4", "--net.width", "4", "--net.hidden", "16", *data_args(),
            "--output", str(tmp_path / "o.ckpt")]
    assert "weights file 'nope.pt' does not exist" in _err(*base, "--weights", "nope.pt")
    line = _err(*base, "--weights", str(path))  # the prefix not stripped
    assert "does not fit the network SmallCNN" in line and "missing features.0.weight" in line
    assert "unexpected module.features.0.weight" in line and "add --strip_prefix module." in line
    wider = ["--net", "SmallCNN", "--net.num_classes", "4", "--net.width", "8", "--net.hidden", "16", *data_args(),
             "--output", str(tmp_path / "o.ckpt"), "--weights", str(path), "--strip_prefix", "module."]
    assert "mis-shaped features.0.weight (4, 3, 3, 3) (expected (8, 3, 3, 3))" in _err(*wider)
    assert "has no entry 'ema'" in _err(*base, "--weights", str(path), "--key", "ema")
    code = tmp_path / "pickled.pt"
    torch.save({"state_dict": net.state_dict(), "model_object": net}, code)  # a whole module: pickled code
    assert "holds objects that cannot be loaded safely" in _err(*base, "--weights", str(code))
    counts = tmp_path / "counts.pt"
    torch.save({"epoch": 3, "best": {"acc": 0.9}}, counts)
    assert "holds no state_dict (a dict of tensors)" in _err(*base, "--weights", str(counts))
    five = SmallCNN(num_classes=5, width=4, hidden=16)
    w5 = tmp_path / "five.pt"
    torch.save(five.state_dict(), w5)
    line = _err("--net", "SmallCNN", "--net.num_classes", "5", "--net.width", "4", "--net.hidden", "16", *data_args(),
                "--output", str(tmp_path / "o.ckpt"), "--weights", str(w5))
    assert "has 5 classes: expected the data's 4" in line
    assert "output must be a .ckpt file" in _err(*base[:-2], "--output", str(tmp_path / "o.pt"), "--weights", str(path))
    (tmp_path / "o.ckpt").write_text("")
    assert "exists: choose another path or pass --overwrite true" in _err(*base, "--weights", str(path),
                                                                          "--strip_prefix", "module.")
    assert not (tmp_path / "o.pt").exists()


def test_imported_timm_model(tmp_path: Path) -> None:
    """A timm model's state_dict saved inside a training script's dict under ``model``."""
    timm = pytest.importorskip("timm")
    plain = timm.create_model("resnet18", num_classes=4).eval()
    weights = tmp_path / "timm.pt"
    torch.save({"model": plain.state_dict(), "optimizer": {"lr": 0.1}}, weights)
    spec = {"class_path": "TimmNet", "init_args": {"name": "resnet18", "num_classes": 4}}
    result = run_import(spec, DATA, str(weights), str(tmp_path / "o.ckpt"), progress=False)
    assert set(result["accuracy"]) == {"train_acc", "retain_acc", "forget_acc", "val_acc", "test_acc"}
    net, meta = load_net(tmp_path / "o.ckpt")
    assert meta["net"]["class_path"] == "unlearning.nets.external.TimmNet"
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), plain(x))


# ---- pretrained initial weights (init_weights): the oracle of a fine-tuned original ----------------

def pretrained_file(path: Path, num_classes: int = 6) -> dict[str, torch.Tensor]:
    """A SmallCNN "pretrained" on ``num_classes`` other classes, saved as a training script would
    (a ``DataParallel`` prefix, inside a dict); returns its plain ``state_dict``."""
    torch.manual_seed(123)
    state = SmallCNN(num_classes=num_classes, width=4, hidden=16).state_dict()
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    return state


def test_init_weights_start_the_network_from_the_file_with_a_fresh_head(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer

    from unlearning.modules import RetrainOracle

    state = pretrained_file(tmp_path / "pre.pt")
    torch.manual_seed(0)
    oracle = RetrainOracle(net=SmallCNN(num_classes=4, width=4, hidden=16), lr=1e-12, momentum=0.0, weight_decay=0.0,
                           init_weights=str(tmp_path / "pre.pt"), init_skip=["head.2."], init_strip_prefix=["module."])
    fresh_head = oracle.net.head[2].weight.detach().clone()
    assert not torch.equal(oracle.net.features[0].weight, state["features.0.weight"])  # read when training starts
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(oracle, datamodule=SyntheticImageDataModule(**DATA_ARGS))
    got = oracle.net.state_dict()
    for k in ("features.0.weight", "features.10.weight", "head.0.weight"):
        assert torch.allclose(got[k], state[k], atol=1e-6), k
    assert torch.allclose(got["head.2.weight"], fresh_head, atol=1e-6)  # skipped: the seeded initialisation
    ckpt = tmp_path / "oracle.ckpt"
    trainer.save_checkpoint(ckpt)
    (tmp_path / "pre.pt").unlink()  # a trained model reloads without its initial weights
    again = RetrainOracle.load_from_checkpoint(str(ckpt), weights_only=False)
    assert torch.equal(again.net.head[0].weight, oracle.net.head[0].weight)
    assert again.hparams["init_weights"] == str(tmp_path / "pre.pt")  # recorded, as where the run started


def test_init_weights_that_do_not_fit_get_one_line(tmp_path: Path) -> None:
    from unlearning.modules import RetrainOracle

    pretrained_file(tmp_path / "pre.pt")
    cases = [({"init_strip_prefix": ["module."]}, "mis-shaped head.2.weight (6, 16) (expected (4, 16))"),
             ({"init_skip": ["head.2."]}, "add --model.init_args.init_strip_prefix module."),
             ({}, "does not exist")]
    for i, (kwargs, expected) in enumerate(cases):
        path = tmp_path / ("missing.pt" if i == 2 else "pre.pt")
        oracle = RetrainOracle(net=SmallCNN(num_classes=4, width=4, hidden=16), init_weights=str(path), **kwargs)
        with pytest.raises((ValueError, FileNotFoundError)) as err:
            oracle.setup("fit")
        assert expected in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_score_keys_init_weights_by_content(tmp_path: Path) -> None:
    from unlearning.scoring.cache import RecipeCache
    from unlearning.scoring.cached_model import stage_recipe

    pretrained_file(tmp_path / "a.pt")
    shutil.copy(tmp_path / "a.pt", tmp_path / "b.pt")  # the same bytes under another name

    def key(path: Path) -> str:
        cfg = {"model": {"class_path": "RetrainOracle", "init_args": {"net": SMALL, "init_weights": str(path)}}}
        return RecipeCache(tmp_path / "cache", "oracle", stage_recipe(cfg, (), DATA)).key

    first = key(tmp_path / "a.pt")
    assert key(tmp_path / "b.pt") == first
    pretrained_file(tmp_path / "a.pt", num_classes=5)  # rewritten in place: new weights, new models
    assert key(tmp_path / "a.pt") != first
    with pytest.raises(ValueError, match="RetrainOracle's init_weights .*gone.pt.* does not exist"):
        key(tmp_path / "gone.pt")
