"""The speed callbacks (``CompileNetwork``, ``ChannelsLast``): they change how the network runs, not
what it learns or how it is saved."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import run_cli_here
from tests.synthetic import datamodule, trainer
from unlearning.callbacks import ChannelsLast, CompileNetwork
from unlearning.modules import Classifier, load_net
from unlearning.nets import SmallCNN


def _fit(tmp: Path, callbacks: list[L.Callback]) -> tuple[Classifier, Path]:
    L.seed_everything(0)
    module = Classifier(net=SmallCNN(width=4, hidden=16), lr=0.05, log_distributions=False, scheduler="none")
    t = trainer(tmp, 1, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=3, callbacks=callbacks)
    t.fit(module, datamodule())
    ckpt = tmp / "model.ckpt"
    t.save_checkpoint(ckpt)
    return module, ckpt


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, Path]:
    return _fit(tmp_path_factory.mktemp("plain"), [])


@pytest.mark.parametrize("make", [lambda: CompileNetwork(backend="aot_eager"), ChannelsLast], ids=["compile", "channels_last"])
def test_speed_callback_trains_and_saves_the_plain_network(
    make: type, plain: tuple[Classifier, Path], tmp_path: Path
) -> None:
    fast, ckpt = _fit(tmp_path, [make()])
    ref, ref_ckpt = plain
    # the same training: the weights after three steps agree with the plain run's
    for (name, a), (_, b) in zip(fast.net.state_dict().items(), ref.net.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    # and the same checkpoint: the plain network's keys (no wrapper prefix), loadable without the callback
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert list(saved) == list(torch.load(ref_ckpt, map_location="cpu", weights_only=False)["state_dict"])
    net, _ = load_net(ckpt)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref.net.eval()(x), rtol=1e-4, atol=1e-5)
    if make is ChannelsLast:
        conv = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    else:
        assert fast.net._compiled_call_impl is not None  # compiled in place


def test_speed_callbacks_need_a_network(tmp_path: Path) -> None:
    class NoNet(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

    for cb in (CompileNetwork(), ChannelsLast()):
        with pytest.raises(ValueError, match="needs a module with a `net` network; NoNet has none"):
            cb.setup(trainer(tmp_path, 1), NoNet(), "fit")


@pytest.mark.slow  # about 10 s: a fit through the CLI with a compiled network
def test_compile_from_a_config_on_the_command_line(tmp_path: Path) -> None:
    """The flag a user writes: a callback in the trainer section of any fit config."""
    def fit(backend: str, root: Path):
        return run_cli_here(
            "fit", "-c", "configs/toy/original.yaml", "--trainer.max_epochs", "1",
            "--trainer.callbacks+=unlearning.callbacks.CompileNetwork", "--trainer.callbacks.backend", backend,
            "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false",
        )

    out = fit("aot_eager", tmp_path / "ok")
    assert out.returncode == 0, out.stderr
    # the flag reaches the callback: a backend torch does not know is a one-line error
    bad = fit("no_such_backend", tmp_path / "bad")
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "CompileNetwork backend must be one of" in lines[0] and "'no_such_backend'" in lines[0], bad.stderr


@pytest.mark.slow  # about a minute: inductor generates and compiles C++ kernels on CPU
def test_inductor_compile_matches_eager(plain: tuple[Classifier, Path], tmp_path: Path) -> None:
    fast, _ = _fit(tmp_path, [CompileNetwork()])
    for (name, a), (_, b) in zip(fast.net.state_dict().items(), plain[0].net.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
