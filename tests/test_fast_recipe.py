"""The fast oracle recipe (``configs/fast/``): the whitening layer, test-time flip averaging,
lookahead, the optimizer settings it adds to ``Classifier``, and a fit that reloads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from tests.conftest import REPO
from tests.synthetic import IndexedImages, datamodule, decode_indices, trainer
from unlearning.callbacks import Lookahead, WhiteningInit
from unlearning.modules import Classifier, RetrainOracle, load_net
from unlearning.modules.classifier import piecewise_factor
from unlearning.nets import FastCifarNet, build_net, net_spec

TINY = dict(widths=[8, 8, 8])


def _correlated_images(n: int = 64, size: int = 16) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated, with a non-zero mean
    (as natural images are): whitening has work to do."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    x = nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # spatial
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])  # across channels
    return torch.einsum("dc,nchw->ndhw", mix, x) + torch.tensor([0.5, -0.2, 0.1]).view(1, 3, 1, 1)


def test_whitening_init_gives_patches_zero_mean_and_identity_covariance() -> None:
    net = FastCifarNet(**TINY)
    images = _correlated_images()
    assert not bool(net.whitened)
    net.init_whitening(images, eps=0.0)
    assert bool(net.whitened)
    with torch.no_grad():
        z = net.whiten(images)  # the conv itself: its filters and its bias
    half = z.shape[1] // 2
    torch.testing.assert_close(z[:, half:], -z[:, :half])  # the second half: the negatives
    flat = z[:, :half].permute(0, 2, 3, 1).reshape(-1, half).double()
    torch.testing.assert_close(flat.mean(0), torch.zeros(half, dtype=torch.float64), atol=1e-4, rtol=0)
    cov = torch.cov(flat.T)
    torch.testing.assert_close(cov, torch.eye(half, dtype=torch.float64), atol=2e-3, rtol=0)
    # the raw patches were far from white: the check has something to find
    raw = nn.functional.unfold(images, 2).transpose(1, 2).reshape(-1, 12)
    assert (torch.cov(raw.T) - torch.eye(12)).abs().max() > 0.3


def test_whitening_init_refuses_mismatched_images() -> None:
    with pytest.raises(ValueError, match="needs a B x 3 x H x W batch"):
        FastCifarNet(**TINY).init_whitening(torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match="needs more than 12 patches"):
        FastCifarNet(**TINY).init_whitening(torch.zeros(1, 3, 2, 3))


def test_tta_flip_averages_the_two_views_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    net = FastCifarNet(**TINY)
    net.init_whitening(_correlated_images())
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        net.train()
        torch.testing.assert_close(net(x), net._logits(x))  # training sees the image as it is
        net.eval()
        plain, mirrored = net._logits(x), net._logits(x.flip(3))
        out = net(x)
        torch.testing.assert_close(out, 0.5 * (plain + mirrored))
        assert not torch.allclose(out, plain, atol=1e-4)  # the two views differ: the mean is no copy of one
        torch.testing.assert_close(net(x.flip(3)), out)  # so eval logits are flip-invariant
        off = build_net({**net_spec(net), "init_args": {**net.init_args, "tta_flip": False}})
        off.load_state_dict(net.state_dict())
        torch.testing.assert_close(off.eval()(x), plain)


class _Probe(L.Callback):
    """The whitening layer's weight and bias at the end of every training epoch."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        w = pl_module.net.whiten
        self.seen.append((w.weight.detach().clone(), w.bias.detach().clone()))


def _fit(tmp: Path, module: Classifier, epochs: int, callbacks: list[L.Callback] = (), **dm_kw) -> L.Trainer:
    t = trainer(tmp, epochs, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=6,
                callbacks=list(callbacks))
    t.fit(module, datamodule(**dm_kw))
    return t


def _fast_module(cls: type = Classifier, net_kw: dict | None = None, **kw) -> Classifier:
    L.seed_everything(0)
    kw.setdefault("train_callbacks", [WhiteningInit(num_images=200, bias_epochs=1)])
    return cls(net=FastCifarNet(**{**TINY, **(net_kw or {})}), lr=0.2, momentum=0.85, nesterov=True,
               weight_decay=5e-3, norm_bias_lr_scale=8.0, label_smoothing=0.2, log_distributions=False, **kw)


@pytest.mark.parametrize("trainable", [False, True], ids=["frozen", "trainable"])
def test_whitening_layer_is_set_from_training_images_and_frozen(tmp_path: Path, trainable: bool) -> None:
    module = _fast_module(net_kw={"whiten_trainable": trainable})
    probe = _Probe()
    t = _fit(tmp_path, module, 2, [probe])
    (cb,) = [c for c in t.callbacks if isinstance(c, WhiteningInit)]
    expected = FastCifarNet(**TINY)
    expected.init_whitening(cb.training_images(t, module))
    (w0, b0), (w1, b1) = probe.seen
    if trainable:  # the negative control: the same fit with the layer trainable moves it
        assert not torch.equal(w1, expected.whiten.weight)
        return
    assert torch.equal(w0, expected.whiten.weight) and torch.equal(w1, w0)  # whitened, then never moved
    assert not torch.equal(b0, expected.whiten.bias)  # the bias trained in the first epoch ...
    assert torch.equal(b1, b0)  # ... and was frozen after bias_epochs = 1
    for m in module.net.modules():  # the BatchNorm scales stay 1 (only their shifts learn)
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and m.bias.abs().sum() > 0


def test_the_oracle_is_whitened_from_retain_images_only() -> None:
    dm = IndexedImages(num_train=300, num_heldout=50, forget_fraction=0.2)
    dm.setup()
    for cls, stream in ((RetrainOracle, "retain"), (Classifier, "train")):
        module = SimpleNamespace(train_streams=cls.train_streams)
        images = WhiteningInit(num_images=1000).training_images(SimpleNamespace(datamodule=dm), module)
        seen = {i for held_out, i in decode_indices(images) if not held_out}
        assert seen == set(getattr(dm.split, stream).tolist())
    assert not seen.isdisjoint(dm.split.forget.tolist())  # the original's stream does hold the forget set


def test_whitening_init_refuses_a_network_without_a_whitening_layer(tmp_path: Path) -> None:
    from unlearning.nets import SmallCNN

    module = Classifier(net=SmallCNN(width=4, hidden=8), log_distributions=False,
                        train_callbacks=[WhiteningInit()])
    with pytest.raises(ValueError, match="WhiteningInit needs a network with an init_whitening method"):
        _fit(tmp_path, module, 1)


def test_lookahead_moves_the_slow_copy_and_sets_the_weights_to_it() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    module, fake = SimpleNamespace(net=net), SimpleNamespace(global_step=0, estimated_stepping_batches=12)
    la = Lookahead(every=5, decay=0.6, power=2.0)
    la.setup(fake, module, "fit")
    la.on_train_start(fake, module)

    def step(t: int) -> dict[str, torch.Tensor]:
        """An optimizer step: every float entry (weights and running statistics) moves."""
        with torch.no_grad():
            for v in net.state_dict().values():
                if v.is_floating_point():
                    v.add_(torch.randn_like(v))
        before = {k: v.clone() for k, v in net.state_dict().items()}
        fake.global_step = t
        la.on_train_batch_end(fake, module, None, None, t - 1)
        return before

    slow = step(1)  # the slow copy starts from the weights after the first step
    for t in range(2, 13):
        fast = step(t)
        now = net.state_dict()
        if t % 5 == 0:
            d = 0.6 * (t / 12) ** 2
            for k, v in fast.items():
                if v.is_floating_point():
                    slow[k] = d * slow[k] + (1 - d) * v
                    torch.testing.assert_close(now[k], slow[k], msg=f"step {t} {k}")
        elif t < 12:  # between updates the weights are left alone
            for k, v in fast.items():
                assert torch.equal(now[k], v), (t, k)
    for k, v in net.state_dict().items():  # after the last step (12, no update due): the slow copy
        if v.is_floating_point():
            torch.testing.assert_close(v, slow[k], msg=k)
    assert int(net[1].num_batches_tracked) == 0  # integer entries are not averaged


def test_lookahead_refuses_bad_settings_and_a_fit_of_unknown_length() -> None:
    for kw, msg in (({"every": 0}, "every must be >= 1"), ({"decay": 1.5}, r"decay must be in \[0, 1\]"),
                    ({"power": -1.0}, "power must be >= 0")):
        with pytest.raises(ValueError, match=msg):
            Lookahead(**kw)
    la = Lookahead()
    with pytest.raises(ValueError, match="needs a fit of known length"):
        la.on_train_start(SimpleNamespace(estimated_stepping_batches=float("inf")), SimpleNamespace(net=nn.Linear(1, 1)))


def test_fast_recipe_fits_and_its_checkpoint_reloads(tmp_path: Path) -> None:
    la = Lookahead(every=2)
    module = _fast_module(scheduler="piecewise", lr_points=[[0, 0.2], [0.3, 1.0], [1, 0.1]],
                          train_callbacks=[WhiteningInit(num_images=200), la])
    t = _fit(tmp_path, module, 2)
    assert t.global_step == 12 and module.cost["train_time_s"] > 0
    for k, v in module.net.state_dict().items():  # the final weights are the slow copy
        if v.is_floating_point():
            assert torch.equal(v, la.slow[k]), k
    ckpt = tmp_path / "fast.ckpt"
    t.save_checkpoint(ckpt)
    net, meta = load_net(ckpt)  # weights_only: the recipe's hyperparameters hold no objects
    assert isinstance(net, FastCifarNet) and bool(net.whitened) and not net.whiten.weight.requires_grad
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x), module.net.eval()(x))
    specs = torch.load(ckpt, weights_only=True)["hyper_parameters"]["train_callbacks"]
    assert [s["class_path"] for s in specs] == ["unlearning.callbacks.recipe.WhiteningInit",
                                                "unlearning.callbacks.recipe.Lookahead"]
    assert specs[1]["init_args"]["every"] == 2


def test_piecewise_schedule_and_norm_bias_groups(tmp_path: Path) -> None:
    points = [(0.0, 0.2), (0.23, 1.0), (1.0, 0.07)]
    for frac, factor in ((0.0, 0.2), (0.115, 0.6), (0.23, 1.0), (1.0, 0.07), (1.5, 0.07)):
        assert piecewise_factor(points, frac) == pytest.approx(factor)
    module = _fast_module(scheduler="piecewise", lr_points=[list(p) for p in points])
    t = _fit(tmp_path, module, 1)
    opt = t.optimizers[0]
    biases, rest = opt.param_groups
    norm_biases = [m.bias for m in module.net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in biases["params"]} == {id(p) for p in norm_biases}
    assert biases["initial_lr"] == pytest.approx(8 * rest["initial_lr"])
    assert biases["weight_decay"] * biases["initial_lr"] == pytest.approx(rest["weight_decay"] * rest["initial_lr"])
    assert rest["nesterov"] and rest["momentum"] == 0.85
    assert rest["lr"] == pytest.approx(0.2 * piecewise_factor(points, 6 / 6))  # after the last of 6 steps


def test_default_classifier_optimizer_is_unchanged(tmp_path: Path) -> None:
    """Existing configs train as before: one parameter group, plain momentum, cosine."""
    from unlearning.nets import SmallCNN

    module = Classifier(net=SmallCNN(width=4, hidden=8), log_distributions=False)
    t = trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=1)
    t.fit(module, datamodule())
    (group,) = t.optimizers[0].param_groups
    assert not group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    assert len(group["params"]) == len(list(module.net.parameters()))
    assert type(t.lr_scheduler_configs[0].scheduler).__name__ == "CosineAnnealingLR"


@pytest.mark.parametrize("kw, msg", [
    ({"nesterov": True, "momentum": 0.0}, "nesterov needs momentum > 0"),
    ({"lr_points": [[0, 1], [1, 0]]}, "lr_points is the 'piecewise' scheduler's"),
    ({"scheduler": "piecewise"}, "scheduler 'piecewise' needs lr_points"),
    ({"scheduler": "piecewise", "lr_points": [[0, 1], [0.5, 0]]}, "must rise strictly from 0 to 1"),
    ({"scheduler": "piecewise", "lr_points": [[0, 1], [1, -1]]}, "factors must be >= 0"),
    ({"norm_bias_lr_scale": 0.0}, "norm_bias_lr_scale must be > 0"),
])
def test_classifier_refuses_bad_recipe_settings(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Classifier(net=FastCifarNet(**TINY), **kw)


def test_the_recipe_callbacks_code_is_part_of_the_cache_key() -> None:
    """An edit to the whitening or lookahead code retrains the cached fast-recipe models (their
    classes are named in the module's settings), and configs naming no such class keep their keys."""
    import yaml

    from unlearning.scoring.fingerprint import code_identity

    fast = yaml.safe_load((REPO / "configs/fast/original.yaml").read_text())
    assert "unlearning.callbacks.recipe" in code_identity(fast, fast["data"])["other"]["files"]
    cpu = yaml.safe_load((REPO / "configs/cpu/original.yaml").read_text())
    assert set(code_identity(cpu, cpu["data"])) == {"module", "net", "data"}
