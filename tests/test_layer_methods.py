"""Mechanisms of CF-k and EU-k (the last k layers train, the rest is bit-identical; EU-k's start from a
fresh init), UNSIR (the noise raises the frozen model's loss; impair then repair run the steps they
claim) and boundary shrink (its labels are the adversarial step's predictions, never the truth; it
reads the forget stream only)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback
from torch import nn

from tests.synthetic import datamodule, trainer
from unlearning.methods import UNSIR, BoundaryShrink, CFk, EUk
from unlearning.methods.cf_k import NORM_TYPES, last_layers, weight_layers
from unlearning.modules import load_net
from unlearning.nets import MLP, CifarResNet, KitResNet18, SmallCNN


def _forward_order(net: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The leaf modules with parameters (and norm layers) in the order the forward pass first calls them."""
    order: list[nn.Module] = []
    leaves = [m for m in net.modules() if not list(m.children())
              and (isinstance(m, NORM_TYPES) or any(True for _ in m.parameters(recurse=False)))]
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m) if m not in order else None) for m in leaves]
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return order


@pytest.mark.parametrize("net, shape", [
    pytest.param(SmallCNN(width=4, hidden=8), (1, 3, 16, 16), id="SmallCNN"),
    pytest.param(KitResNet18(), (1, 3, 32, 32), id="KitResNet18"),
    pytest.param(CifarResNet(depth=8, width=4), (1, 3, 16, 16), id="CifarResNet"),
    pytest.param(MLP(hidden=8, depth=2), (1, 2), id="MLP"),
])
def test_layers_are_the_weight_layers_in_forward_order(net: nn.Module, shape: tuple[int, ...]) -> None:
    layers = weight_layers(net)
    assert [m for layer in layers for m in layer] == _forward_order(net, torch.randn(shape))
    for layer in layers:  # a conv/linear layer first, then only its norm layers
        assert not isinstance(layer[0], NORM_TYPES) and all(isinstance(m, NORM_TYPES) for m in layer[1:])
    counts = {SmallCNN: 6, KitResNet18: 21, CifarResNet: 10, MLP: 3}
    assert len(layers) == counts[type(net)]
    with pytest.raises(ValueError, match=f"between 1 and the network's {len(layers)} layers, got {len(layers) + 1}"):
        last_layers(net, len(layers) + 1)


def _states(modules: list[nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]


class _AtFirstStep(Callback):
    """Copies the trainable layers' state before the first optimiser step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 0:
            self.state = _states(pl_module.trainable_layers)


def _fit(module: L.LightningModule, tmp: Path, epochs: int = 1, batches: int = 3, **kw) -> L.Trainer:
    t = trainer(tmp, epochs, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=batches, **kw)
    t.fit(module, datamodule())
    return t


@pytest.mark.parametrize("cls", [CFk, EUk])
def test_only_the_last_k_layers_train(cls: type[CFk], synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """The layers before the last k are bit-identical afterwards (weights and BatchNorm statistics);
    every tensor of the last k changed; EU-k's last k start from a fresh draw, not the original's."""
    L.seed_everything(0)
    module = cls(original=str(synthetic_models["original"]), k=3, lr=0.05, log_distributions=False)
    original, _ = load_net(synthetic_models["original"])
    frozen_o, trainable_o = last_layers(original, 3)
    assert [type(m) for m in module.trainable_layers] == [nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.Linear]
    first = _AtFirstStep()
    _fit(module, tmp_path, callbacks=[first])
    for before, after in zip(_states(frozen_o), _states(module.frozen_layers)):
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before), "a frozen layer changed"
    for start, after in zip(first.state, _states(module.trainable_layers)):
        changed = {k: not torch.equal(start[k], after[k]) for k in start if k != "num_batches_tracked"}
        assert all(changed.values()), f"a trainable tensor did not train: {changed}"
    fresh = [not torch.equal(o[k], s[k]) for o, s in zip(_states(trainable_o), first.state) for k in o
             if k != "num_batches_tracked"]
    if cls is EUk:
        assert all(fresh), "EU-k's last k layers did not start from a fresh init"
        conv, bn, fc1, fc2 = first.state
        assert torch.equal(bn["weight"], torch.ones_like(bn["weight"])) and not bn["running_mean"].any()
        for state in (conv, fc1, fc2):  # PyTorch's default (Kaiming-uniform) range: 1 / sqrt(fan_in)
            assert state["weight"].abs().max() <= state["weight"][0].numel() ** -0.5
    else:
        assert not any(fresh), "CF-k must start from the original's weights"


def test_unsir_noise_raises_the_frozen_loss_and_impair_then_repair_run(
    synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = UNSIR(original=str(synthetic_models["original"]), noise_size=64, noise_steps=10, noise_per_batch=16,
                   lr=1e-3, repair_lr=3e-4, log_distributions=False)
    sizes: list[int] = []
    module.net.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]) if m.training else None)

    class Rates(Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    rates = Rates()
    _fit(module, tmp_path, epochs=2, batches=3, callbacks=[rates])
    # the noise: labels drawn from the forget set's (without replacement), and the frozen original
    # gets it far more wrong than the Gaussian noise it started from
    dm = datamodule()
    dm.setup()
    forget_y = dm.stream_source("forget")[1][dm.stream_source("forget")[2]]
    assert module.noise.shape == (64, 3, 16, 16)
    assert (torch.bincount(module.noise_labels, minlength=10) <= torch.bincount(forget_y, minlength=10)).all()
    original, _ = load_net(synthetic_models["original"])
    with torch.no_grad():
        learnt = F.cross_entropy(original(module.noise), module.noise_labels)
        start = F.cross_entropy(original(torch.randn_like(module.noise)), module.noise_labels)
    assert learnt > 2 * start and learnt > 5.0, (float(learnt), float(start))
    assert module.noise_loss["after"] > 2 * module.noise_loss["before"]
    # impair: 3 steps of 64 retain + 16 noise images at lr; repair: 3 steps of 64 retain at repair_lr
    assert sizes == [80] * 3 + [64] * 3
    assert rates.lrs == pytest.approx([1e-3] * 3 + [3e-4] * 3)
    assert module.cost["images_seen"] == 10 * 64 + 3 * 80 + 3 * 64  # the noise pre-pass is counted


def test_boundary_shrink_labels_are_the_adversarial_predictions(synthetic_models: dict[str, Path]) -> None:
    module = BoundaryShrink(original=str(synthetic_models["original"]), epsilon=0.5, log_distributions=False)
    dm = datamodule()
    dm.setup()
    x, y = next(iter(dm.stream_loader("forget", train=False, batch_size=300)))
    labels, x_adv, adv_logits = module.nearest_wrong_labels(x, y)
    assert not (labels == y).any()
    step = (x_adv - x).abs()
    assert step.max() <= 0.5 + 1e-6 and (step > 0.5 - 1e-6).float().mean() > 0.99  # one signed step of epsilon
    original, _ = load_net(synthetic_models["original"])
    with torch.no_grad():
        logits = original(x_adv)
        assert F.cross_entropy(logits, y) > F.cross_entropy(original(x), y)  # it ascends the true label's loss
    torch.testing.assert_close(adv_logits, logits)
    crossed = logits.argmax(1) != y
    assert 0.1 < crossed.float().mean() < 1.0  # some steps cross the boundary, some do not
    assert torch.equal(labels[crossed], logits.argmax(1)[crossed])  # crossed: the class it reached
    second = logits.scatter(1, y.view(-1, 1), float("-inf")).argmax(1)
    assert torch.equal(labels[~crossed], second[~crossed])  # not crossed: the nearest other class
    assert module.cost["images_seen"] == 2 * 300


def test_boundary_shrink_trains_on_clean_forget_images_with_those_labels(
    synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = BoundaryShrink(original=str(synthetic_models["original"]), lr=1e-3, log_distributions=False)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    find = module.nearest_wrong_labels
    module.nearest_wrong_labels = lambda x, y: (calls.append((x, y)), find(x, y))[1]  # type: ignore[method-assign]
    seen: list[torch.Tensor] = []
    module.net.register_forward_pre_hook(lambda m, args: seen.append(args[0]) if m.training else None)
    requested: list[str] = []
    dm = datamodule()
    loader = dm.stream_loader
    dm.stream_loader = lambda name, *a, **kw: (requested.append(name), loader(name, *a, **kw))[1]  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in module.original_net.state_dict().items()}
    trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=2).fit(module, dm)
    assert BoundaryShrink.train_streams == ("forget",) and BoundaryShrink.extra_streams == ()
    assert requested and set(requested) == {"forget"}, requested
    assert len(calls) == len(seen) == 2
    assert all(torch.equal(x, s) for (x, _), s in zip(calls, seen))  # it trains on the clean images
    assert all(torch.equal(before[k], v) for k, v in module.original_net.state_dict().items())  # the original stays
    assert module.cost["images_seen"] == 3 * sum(x.shape[0] for x, _ in calls)
