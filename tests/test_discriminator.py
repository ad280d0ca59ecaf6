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
from unlearning.metrics import logit_scaled_confidence
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
