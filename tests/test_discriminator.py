"""Discriminator unlearning: the discriminator is a real attacker, the model moves its forget
outputs and not its val outputs (the classic failure), and the game is logged."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from tests.synthetic import datamodule, trainer
from unlearning.methods import DiscriminatorUnlearn, RetainFreeDiscriminator
from unlearning.methods.discriminator import MembershipDiscriminator
from unlearning.methods.discriminator.nets import FEATURE_GROUPS
from unlearning.metrics import attack_features, logit_scaled_confidence
from unlearning.modules import load_net


def _outputs(net: torch.nn.Module, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
    dm = datamodule()
    x, y, idx = dm.stream_source(stream)
    with torch.no_grad():
        return net.eval()(dm.eval_transform(x[idx])), y[idx]


def _attack_accuracy(net: torch.nn.Module, steps: int = 300) -> float:
    """Train a fresh discriminator on ``net``'s outputs, forget (member) vs val; its accuracy on
    the held-out halves (test: forget's second half vs test)."""
    torch.manual_seed(0)
    (zf, yf), (zv, yv), (zt, yt) = (_outputs(net, s) for s in ("forget", "val", "test"))
    half = zf.shape[0] // 2
    disc = MembershipDiscriminator(10, hidden=32)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(steps):
        d_f, d_v = disc(zf[:half], yf[:half]), disc(zv, yv)
        loss = F.binary_cross_entropy_with_logits(d_f, torch.ones_like(d_f)) + \
            F.binary_cross_entropy_with_logits(d_v, torch.zeros_like(d_v))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        n = min(zf.shape[0] - half, zt.shape[0])
        member = (disc(zf[half:half + n], yf[half:half + n]) > 0).float()
        nonmember = (disc(zt[:n], yt[:n]) <= 0).float()
    return float(torch.cat([member, nonmember]).mean())


def test_discriminator_tells_the_original_members_but_not_the_oracles(synthetic_models: dict[str, Path]) -> None:
    """The attacker the method plays against works: well above chance on the original's outputs
    (it memorised the forget set), near chance on the oracle's (it never saw it)."""
    original, _ = load_net(synthetic_models["original"])
    oracle, _ = load_net(synthetic_models["oracle"])
    acc_original, acc_oracle = _attack_accuracy(original), _attack_accuracy(oracle)
    assert acc_original > 0.62, acc_original
    assert acc_oracle < 0.57, acc_oracle
    assert acc_original > acc_oracle + 0.08


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    log_p, log_q = F.log_softmax(p_logits, 1), F.log_softmax(q_logits, 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


@pytest.mark.parametrize("cls, args, epochs", [
    (DiscriminatorUnlearn, {"lr": 0.05, "distill_weight": 0.0}, 2),  # protected by the detached val branch alone
    (DiscriminatorUnlearn, {"lr": 0.05, "distill_weight": 1.0}, 2),
    (RetainFreeDiscriminator, {"lr": 0.05, "adv_weight": 3.0, "distill_weight": 1.0}, 8),
], ids=["detached-val", "distilled-val", "retain-free"])
def test_forget_outputs_move_and_val_outputs_stay(
    cls: type, args: dict, epochs: int, synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    """The classic failure (fooling the discriminator by making unseen data look memorised) does
    not happen: the val outputs stay near the original's, the forget outputs move."""
    L.seed_everything(0)
    module = cls(original=str(synthetic_models["original"]), log_distributions=False, **args)
    logger = CSVLogger(tmp_path, name="disc", version=0)
    trainer(tmp_path, epochs, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
            limit_val_batches=0).fit(module, datamodule())
    original, _ = load_net(synthetic_models["original"])
    (zf0, yf), (zv0, yv) = _outputs(original, "forget"), _outputs(original, "val")
    (zf1, _), (zv1, _) = _outputs(module.net, "forget"), _outputs(module.net, "val")
    kl_forget, kl_val = _kl(zf0, zf1), _kl(zv0, zv1)
    lsc_shift_forget = float((logit_scaled_confidence(zf0, yf) - logit_scaled_confidence(zf1, yf)).mean())
    lsc_shift_val = float((logit_scaled_confidence(zv0, yv) - logit_scaled_confidence(zv1, yv)).mean())
    acc_val0, acc_val1 = float((zv0.argmax(1) == yv).float().mean()), float((zv1.argmax(1) == yv).float().mean())
    # forget confidence falls by far more than val confidence; the val outputs change far less
    assert lsc_shift_forget > 1.0, lsc_shift_forget
    assert lsc_shift_forget > 2 * abs(lsc_shift_val), (lsc_shift_forget, lsc_shift_val)
    assert kl_val < 0.5 * kl_forget, (kl_val, kl_forget)
    assert abs(acc_val1 - acc_val0) < 0.06, (acc_val0, acc_val1)
    # both players' losses and the discriminator's accuracy are logged
    text = (tmp_path / "disc" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for key in ("train/adv_loss", "train/disc_loss", "train/disc_acc"):
        assert key in text, text


def test_bad_arguments_are_clear_errors(synthetic_models: dict[str, Path]) -> None:
    original = str(synthetic_models["original"])
    with pytest.raises(ValueError, match="adv_weight must be >= 0, got -1"):
        DiscriminatorUnlearn(original=original, adv_weight=-1)
    with pytest.raises(ValueError, match="forget_batch_size must be >= 2 or null, got 1"):
        DiscriminatorUnlearn(original=original, forget_batch_size=1)
    with pytest.raises(ValueError, match="dropout must be in"):
        DiscriminatorUnlearn(original=original, disc_dropout=1.5)


# ---- the feature selection (which attack features the discriminator reads) -------------------------

def test_the_default_reads_all_four_feature_groups(synthetic_models: dict[str, Path]) -> None:
    module = DiscriminatorUnlearn(original=str(synthetic_models["original"]))
    assert module.discriminator.features == ("lsc", "loss", "entropy", "probs")
    assert module.discriminator.mlp[0].in_features == 10 + 3
    assert MembershipDiscriminator(10).features == FEATURE_GROUPS
    # the selected columns are no part of the state dict: checkpoints written before the selection load
    assert all("columns" not in key for key in module.state_dict())


@pytest.mark.parametrize("features, width", [
    (["loss"], 1), (["probs"], 10), (["entropy", "lsc"], 2), (["lsc", "loss", "entropy"], 3),
    (["loss", "entropy", "probs"], 12),
])
def test_input_width_follows_the_selection(features: list[str], width: int) -> None:
    disc = MembershipDiscriminator(10, hidden=8, features=features)
    assert disc.mlp[0].in_features == width
    assert disc(torch.randn(5, 10), torch.randint(0, 10, (5,))).shape == (5,)
    assert set(disc.features) == set(features)


def test_unselected_columns_do_not_reach_the_discriminator() -> None:
    """Changing only unselected columns leaves D's output unchanged; changing a selected one does not."""
    torch.manual_seed(0)
    logits, labels = torch.randn(64, 10), torch.randint(0, 10, (64,))
    feats = attack_features(logits, labels)
    no_probs = MembershipDiscriminator(10, hidden=16, features=["lsc", "loss", "entropy"])
    changed = feats.clone()
    changed[:, 3:] = torch.rand(64, 10)  # the sorted probability vector
    assert torch.equal(no_probs.mlp(no_probs.select(feats)), no_probs.mlp(no_probs.select(changed)))
    changed[:, 1] += 1.0  # the loss, which it reads
    assert not torch.allclose(no_probs.mlp(no_probs.select(feats)), no_probs.mlp(no_probs.select(changed)))
    # end to end: entropy and the sorted probabilities do not depend on the label, lsc and loss do
    other = (labels + 1) % 10
    label_free = MembershipDiscriminator(10, hidden=16, features=["entropy", "probs"])
    assert torch.equal(label_free(logits, labels), label_free(logits, other))
    loss_only = MembershipDiscriminator(10, hidden=16, features=["loss"])
    assert not torch.allclose(loss_only(logits, labels), loss_only(logits, other))


def test_a_feature_subset_trains_end_to_end_and_reloads(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    L.seed_everything(0)
    module = DiscriminatorUnlearn(original=str(synthetic_models["original"]), features=["loss", "entropy"],
                                  distill_weight=0.0, log_distributions=False)
    before = [p.detach().clone() for p in module.discriminator.parameters()]
    fit = trainer(tmp_path, 1, limit_train_batches=3, limit_val_batches=0, enable_checkpointing=False)
    fit.fit(module, datamodule())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.discriminator.parameters()))  # D trained
    fit.save_checkpoint(tmp_path / "disc.ckpt", weights_only=True)
    reloaded = DiscriminatorUnlearn.load_from_checkpoint(tmp_path / "disc.ckpt", map_location="cpu", weights_only=True)
    assert reloaded.discriminator.features == ("loss", "entropy")
    assert reloaded.discriminator.mlp[0].in_features == 2
    for a, b in zip(module.discriminator.state_dict().values(), reloaded.discriminator.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("features, message", [
    ([], r"features must name at least one of \['lsc', 'loss', 'entropy', 'probs'\], got \[\]"),
    (["loss", "margin"], r"unknown discriminator feature 'margin': expected some of \['lsc', 'loss', 'entropy', 'probs'\]"),
    (["loss", "loss"], r"features must name each group once, got \['loss', 'loss'\]"),
    ("loss", r"features must be a list of names among .*, got 'loss'"),
])
def test_bad_feature_selections_are_clear_errors(
    features: object, message: str, synthetic_models: dict[str, Path]
) -> None:
    with pytest.raises(ValueError, match=message):
        MembershipDiscriminator(10, features=features)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        RetainFreeDiscriminator(original=str(synthetic_models["original"]), features=features)  # type: ignore[arg-type]
