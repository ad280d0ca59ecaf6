"""Hypernetwork unlearning: the patched tail is the network's own, the hypernetwork's training
never depends on the real forget set, a request costs one forward pass plus the declared
refinement, and a hypernetwork is tied to its original."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from tests.synthetic import (HYPERNET_STAGE, NUM_FORGET, datamodule, fit_hypernet_stage, trainer,
                             write_simulated_oracles)
from unlearning.methods import HypernetTrainer, HypernetUnlearn
from unlearning.methods.hypernet import PatchedTail, RequestHypernet
from unlearning.metrics import logit_scaled_confidence
from unlearning.modules import load_net
from unlearning.nets import MLP, KitResNet18, SmallCNN

STAGE = HYPERNET_STAGE[0]


def _train_stage(original: Path, tmp: Path, steps: int = 100, seed: int = 0, **data) -> HypernetTrainer:
    return fit_hypernet_stage(original, tmp, steps, seed, **data)[0]


@pytest.fixture(scope="module")
def stage(synthetic_hypernet: Path) -> Path:
    """The shipped stage: :data:`STAGE` trained for 400 steps for the synthetic original."""
    return synthetic_hypernet


@pytest.mark.parametrize("net, layers, x", [
    (SmallCNN(width=4, hidden=16), 1, torch.randn(3, 3, 16, 16)),
    (SmallCNN(width=4, hidden=16), 2, torch.randn(3, 3, 16, 16)),
    (MLP(hidden=8, depth=2), 3, torch.randn(3, 2)),
    (KitResNet18(), 1, torch.randn(2, 3, 32, 32)),
], ids=["cnn-1", "cnn-2", "mlp-3", "resnet18-1"])
def test_patched_tail_is_the_networks_own_last_layers(net: nn.Module, layers: int, x: torch.Tensor) -> None:
    net.eval()
    tail = PatchedTail(net, layers)
    tail.check(x)  # the tail on the captured features gives the network's output
    assert len(tail.linears) == layers
    # deltas act exactly like editing the weights
    deltas = [(0.1 * torch.randn(o, i), 0.1 * torch.randn(o)) for o, i in tail.shapes]
    h = tail.features(x)
    with torch.no_grad():
        patched = tail.forward(h, deltas)
        tail.merge(deltas)
        torch.testing.assert_close(net(x), patched, rtol=1e-4, atol=1e-4)


def test_a_network_that_does_more_after_its_last_layer_is_refused() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * self.fc(x)

    with pytest.raises(ValueError, match="cannot be split off"):
        PatchedTail(Scaled(), 1).check(torch.randn(2, 4))
    with pytest.raises(ValueError, match="has 1 linear layer"):
        PatchedTail(Scaled(), 2)


def test_an_untrained_hypernetwork_changes_nothing() -> None:
    net = SmallCNN(width=4, hidden=16).eval()
    tail = PatchedTail(net, 2)
    hyper = RequestHypernet(tail.shapes, 10, rank=4, hidden=16)
    x, y = torch.randn(5, 3, 16, 16), torch.randint(10, (5,))
    h = tail.features(x)
    logits, inputs = tail.forward(h, return_inputs=True)
    for dw, db in hyper(h, y, logits, inputs):
        assert not dw.any() and not db.any()


def test_hypernetwork_training_does_not_depend_on_the_forget_set(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """Same seed, same training data (retain and forget together), different forget specs: the
    same weights. A different seed gives others (the check can fail)."""
    original = synthetic_models["original"]
    a = _train_stage(original, tmp_path, forget_fraction=0.15)
    b = _train_stage(original, tmp_path, forget_fraction=0.3)
    c = _train_stage(original, tmp_path, forget_classes=[3])
    d = _train_stage(original, tmp_path, seed=1, forget_fraction=0.15)
    for other in (b, c):
        for (k, v), w in zip(a.hypernet.state_dict().items(), other.hypernet.state_dict().values()):
            assert torch.equal(v, w), k
    assert any(not torch.equal(v, w) for v, w in zip(a.hypernet.state_dict().values(), d.hypernet.state_dict().values()))
    # the precomputation read the train and val streams, 2,000 + 400 images
    assert a.cost["images_seen"] == 2000 + 400


def _unlearn(original: Path, hypernet: Path, tmp: Path, steps: int, **kw) -> HypernetUnlearn:
    L.seed_everything(0)
    module = HypernetUnlearn(original=str(original), hypernet=str(hypernet), log_distributions=False, **kw)
    calls = []
    module.hypernet.register_forward_hook(lambda *_: calls.append(1))
    trainer(tmp, -1, max_steps=steps, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule())
    module.hypernet_calls = len(calls)
    return module


def test_a_request_costs_one_forward_pass_and_the_declared_refinement(
    synthetic_models: dict[str, Path], stage: Path, tmp_path: Path
) -> None:
    m = _unlearn(synthetic_models["original"], stage, tmp_path, steps=3)
    assert m.hypernet_calls == 1
    # features of the 300 forget examples, then 3 refinement steps of a forget and a val batch of 64
    assert m.cost["images_seen"] == NUM_FORGET + 3 * (64 + 64)
    assert m.global_step == 3


def test_one_pass_answers_with_the_deltas_alone_and_steps_no_weight(
    synthetic_models: dict[str, Path], stage: Path, tmp_path: Path
) -> None:
    """``one_pass``: the trainer's one step changes no weight (momentum and weight decay left on):
    the layers before the patched ones are the original's, bit for bit, and the patched ones are
    the original's plus the hypernetwork's deltas for the forget set; only the forget set's
    features were read."""
    m = _unlearn(synthetic_models["original"], stage, tmp_path, steps=1, one_pass=True, lr=0.5)
    assert m.hypernet_calls == 1 and m.global_step == 1
    assert m.cost["images_seen"] == NUM_FORGET
    original, _ = load_net(synthetic_models["original"])
    tail = PatchedTail(original.eval(), m.patched_layers)
    patched = {id(layer) for layer in tail.linears}
    dm = datamodule()
    x, y, idx = dm.stream_source("forget")
    with torch.no_grad():
        h = tail.features(dm.eval_transform(x[idx]))
        logits, inputs = tail.forward(h, return_inputs=True)
        deltas = m.hypernet(h, y[idx], logits, inputs)
    assert any(dw.abs().max() > 1e-3 for dw, _ in deltas)  # the stage's deltas are not nothing
    unlearned = dict(m.net.named_modules())
    for name, layer in original.named_modules():
        if isinstance(layer, nn.Linear) and id(layer) in patched:
            dw, db = deltas[[id(t) for t in tail.linears].index(id(layer))]
            torch.testing.assert_close(unlearned[name].weight, layer.weight + dw, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(unlearned[name].bias, layer.bias + db, rtol=1e-4, atol=1e-5)
        elif isinstance(layer, (nn.Linear, nn.Conv2d)):
            assert torch.equal(unlearned[name].weight, layer.weight), name


def test_the_deltas_alone_move_the_request_towards_unseen_outputs(
    synthetic_models: dict[str, Path], stage: Path, tmp_path: Path
) -> None:
    """Without refinement (zero refinement loss, no weight decay), the patched model's confidence
    on the real forget set falls towards the val examples', and outputs elsewhere barely change."""
    m = _unlearn(synthetic_models["original"], stage, tmp_path, steps=1, refine_weight=0.0, distill_weight=0.0,
                 weight_decay=0.0, momentum=0.0)
    original, _ = load_net(synthetic_models["original"])
    dm = datamodule()

    def lsc(net: nn.Module, stream: str) -> float:
        x, y, idx = dm.stream_source(stream)
        with torch.no_grad():
            return float(logit_scaled_confidence(net.eval()(dm.eval_transform(x[idx])), y[idx]).mean())

    before, after, unseen = lsc(original, "forget"), lsc(m.net, "forget"), lsc(original, "val")
    assert before - after > 0.25 * (before - unseen), (before, after, unseen)
    assert abs(lsc(m.net, "val") - unseen) < 0.5 * (before - after)


def test_a_hypernetwork_is_refused_for_another_original(synthetic_models: dict[str, Path], stage: Path) -> None:
    with pytest.raises(ValueError, match="was trained for another original"):
        HypernetUnlearn(original=str(synthetic_models["oracle"]), hypernet=str(stage))
    with pytest.raises(ValueError, match="needs `hypernet`"):
        HypernetUnlearn(original=str(synthetic_models["original"]))
    with pytest.raises(ValueError, match="holds no hypernetwork"):
        HypernetUnlearn(original=str(synthetic_models["original"]), hypernet=str(synthetic_models["original"]))


def test_weight_noise_is_its_share_of_each_patched_weight_std_and_leaves_biases() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))
    tail = PatchedTail(net, 2)
    zero = [(torch.zeros_like(m.weight), torch.zeros_like(m.bias)) for m in tail.linears]
    noisy = tail.add_noise(zero, 0.5, torch.Generator().manual_seed(1))
    for (dw, db), m in zip(noisy, tail.linears):
        assert torch.equal(db, torch.zeros_like(db))  # biases untouched
        # thousands of entries: the empirical std is within 5% of 0.5 x the layer's weight std
        assert dw.std().item() == pytest.approx(0.5 * m.weight.std().item(), rel=0.05)
    again = tail.add_noise(zero, 0.5, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(noisy, again))  # a generator makes it reproducible
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail.add_noise(zero, 0.0), zero))


def _stage_with_targets(original: Path, tmp: Path, drop: float) -> Path:
    """A stage trained towards simulated oracles that lower the label's confidence by ``drop`` on
    classes 0-4 and keep it on 5-9 (a fake memorise file: two subset models that saw nothing)."""
    dm = datamodule()
    net, _ = load_net(original)
    x, y, rows = dm.stream_source("train")
    xv, yv, vrows = dm.stream_source("val")
    with torch.no_grad():
        lsc = logit_scaled_confidence(net.eval()(dm.eval_transform(x[rows])), y[rows]).numpy()
        val = float(logit_scaled_confidence(net(dm.eval_transform(xv[vrows])), yv[vrows]).mean())
    target = lsc - drop * (y[rows] < 5).numpy()
    order = np.argsort(rows.numpy())
    path = write_simulated_oracles(tmp / "memorisation.npz", rows.numpy()[order], np.stack([target[order]] * 2),
                                   val_lsc_mean=np.full(2, val))  # val gap 0: the target as given
    module, t = fit_hypernet_stage(original, tmp / "stage", 100, stage_kw={"simulated_oracles": str(path)})
    assert module._target is not None
    ckpt = tmp / "stage.ckpt"
    t.save_checkpoint(ckpt)
    return ckpt


def test_simulated_oracles_give_each_example_its_own_target(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """Trained towards simulated oracles that lower classes 0-4 only, the one-pass deltas lower the
    real request's classes 0-4 far more than its classes 5-9; trained to match unseen data (one
    target for the whole request) they do not tell the classes apart."""
    original = synthetic_models["original"]
    dm = datamodule()
    x, y, idx = dm.stream_source("forget")
    low = (y[idx] < 5).numpy()

    def drops(stage: Path, tmp: Path) -> tuple[float, float]:
        m = _unlearn(original, stage, tmp, steps=1, one_pass=True, weight_noise=0.0)
        net, _ = load_net(original)
        with torch.no_grad():
            before, after = (logit_scaled_confidence(n.eval()(dm.eval_transform(x[idx])), y[idx]).numpy()
                             for n in (net, m.net))
        d = before - after
        return float(d[low].mean()), float(d[~low].mean())

    lo, hi = drops(_stage_with_targets(original, tmp_path, drop=3.0), tmp_path / "a")
    assert lo - hi > 1.0, (lo, hi)
    # the same stage without the file
    _, t = fit_hypernet_stage(original, tmp_path / "plain", 100)
    t.save_checkpoint(tmp_path / "plain.ckpt")
    lo0, hi0 = drops(tmp_path / "plain.ckpt", tmp_path / "b")
    assert abs(lo0 - hi0) < 0.5 * (lo - hi), (lo0, hi0, lo, hi)


def test_simulated_oracles_must_cover_the_training_data(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    dm = datamodule()
    rows = np.sort(dm.stream_source("train")[2].numpy())[:-5]  # five examples short
    path = write_simulated_oracles(tmp_path / "short.npz", rows, np.zeros((2, rows.size)))
    with pytest.raises(ValueError, match=r"do not cover 5 of the 2000 examples"):
        fit_hypernet_stage(synthetic_models["original"], tmp_path, 1, stage_kw={"simulated_oracles": str(path)})
    with pytest.raises(ValueError, match="3 subset models asked, but .* holds 2"):
        fit_hypernet_stage(synthetic_models["original"], tmp_path, 1,
                           stage_kw={"simulated_oracles": str(path), "simulated_k": 3})
