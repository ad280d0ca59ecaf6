"""The mechanisms of SalUn, l1-sparse, NegGrad (gradient ascent) and Bad Teacher, each on the
synthetic problem of ``tests/synthetic.py``: what makes the method what it is, beyond the
"actually unlearns" contract of ``test_methods.py``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback
from torch import nn

from tests.synthetic import datamodule, trainer
from unlearning.methods import BadTeacher, Finetune, L1Sparse, NegGrad, SalUn
from unlearning.modules import load_net


def quiet_trainer(tmp: Path, epochs: int, **kw) -> L.Trainer:
    return trainer(tmp, epochs, enable_checkpointing=False, limit_val_batches=0, **kw)


def forget_batches(dm) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The forget set in its fixed order, unaugmented."""
    dm.setup()
    return list(dm.stream_loader("forget", train=False))


def test_salun_changes_only_the_salient_weights(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """The mask holds exactly the requested share of all weights, ranked together by the forget
    loss's gradient magnitude; with momentum and weight decay on, every weight outside it keeps its
    original bits, while most weights inside it move."""
    fraction = 0.3
    L.seed_everything(0)
    module = SalUn(original=str(synthetic_models["original"]), saliency_fraction=fraction, lr=0.05,
                   momentum=0.9, weight_decay=5e-4, log_distributions=False)
    before = {n: p.detach().clone() for n, p in module.net.named_parameters()}
    dm = datamodule()
    quiet_trainer(tmp_path, 1, limit_train_batches=6).fit(module, dm)
    mask = module.saliency
    assert mask is not None and set(mask) == set(before)
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == int(fraction * total)

    # the ranking: the gradient of the forget loss of the original, over all parameters together
    net = load_net(synthetic_models["original"])[0].eval()
    for x, y in forget_batches(dm):
        F.cross_entropy(net(x), y, reduction="sum").backward()
    grads = {n: p.grad.abs() for n, p in net.named_parameters()}
    inside = torch.cat([grads[n][mask[n]] for n in mask])
    outside = torch.cat([grads[n][~mask[n]] for n in mask])
    assert float(inside.min()) >= float(outside.max()) * (1 - 1e-4)
    assert sum(1 for n in mask if mask[n].any()) >= 2  # one global ranking, not one layer

    moved = 0
    for name, p in module.net.named_parameters():
        m = mask[name]
        assert torch.equal(p.detach()[~m], before[name][~m]), f"non-salient entries of {name} moved"
        moved += int((p.detach()[m] != before[name][m]).sum())
    assert moved > 0.5 * int(fraction * total)


def test_l1_coefficient_decays_linearly_to_zero_and_shrinks_the_weights(
    synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    """The logged coefficient is ``alpha * (1 - t / T)`` at step t of T (a line that reaches 0 at
    the end of the run), and the weights' l1 norm ends below that of plain fine-tuning with the
    same seed, data order and optimiser."""
    alpha, steps = 2e-3, 8
    coefs: list[float] = []

    class Coefficients(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            coefs.append(float(trainer.callback_metrics["train/l1_coef"]))

    def l1(net: nn.Module) -> float:
        return float(sum(p.detach().abs().sum() for p in net.parameters()))

    L.seed_everything(0)
    sparse = L1Sparse(original=str(synthetic_models["original"]), alpha=alpha, lr=0.05, log_distributions=False)
    quiet_trainer(tmp_path, 1, limit_train_batches=steps, callbacks=[Coefficients()]).fit(sparse, datamodule())
    assert coefs == pytest.approx([alpha * (1 - t / steps) for t in range(steps)], rel=1e-5)

    L.seed_everything(0)
    plain = Finetune(original=str(synthetic_models["original"]), lr=0.05, log_distributions=False)
    quiet_trainer(tmp_path, 1, limit_train_batches=steps).fit(plain, datamodule())
    start, shrunk, tuned = l1(load_net(synthetic_models["original"])[0]), l1(sparse.net), l1(plain.net)
    assert shrunk < tuned - 0.01 * start, (shrunk, tuned, start)


def test_neggrad_reads_only_the_forget_set_and_raises_its_loss(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """Every stream the data module is asked for, and every training batch, is the forget set's;
    the forget cross-entropy rises."""
    dm = datamodule()
    batches = forget_batches(dm)

    def forget_loss(net: nn.Module) -> float:
        net.eval()
        with torch.no_grad():
            return float(sum(F.cross_entropy(net(x), y, reduction="sum") for x, y in batches)) / sum(len(y) for _, y in batches)

    requested: list[str] = []
    loader = dm.stream_loader
    dm.stream_loader = lambda name, *a, **kw: (requested.append(name), loader(name, *a, **kw))[1]  # type: ignore[method-assign]
    keys: list[set[str]] = []

    class Keys(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            keys.append(set(batch))

    L.seed_everything(0)
    module = NegGrad(original=str(synthetic_models["original"]), lr=0.1, max_forget_loss=3.0, log_distributions=False)
    before = forget_loss(module.net)
    quiet_trainer(tmp_path, 2, callbacks=[Keys()]).fit(module, dm)
    assert requested and set(requested) == {"forget"}, requested
    assert keys and all(k == {"forget"} for k in keys), keys
    after = forget_loss(module.net)
    assert after > before + 0.1, (before, after)


def test_bad_teacher_pulls_forget_outputs_to_the_random_teacher(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """On the forget set the student's KL to the incompetent teacher falls; the competent teacher
    (the frozen original, buffers included) ends bit for bit as loaded; the incompetent teacher is a
    pure function of its seed."""
    original = str(synthetic_models["original"])
    dm = datamodule()
    batches = forget_batches(dm)

    def kl_to(teacher: nn.Module, student: nn.Module) -> float:
        student.eval()
        with torch.no_grad():
            return sum(float(F.kl_div(F.log_softmax(student(x), 1), F.log_softmax(teacher(x), 1), log_target=True,
                                      reduction="sum")) for x, _ in batches) / sum(len(y) for _, y in batches)

    L.seed_everything(0)
    module = BadTeacher(original=original, temperature=4.0, lr=1.5e-3, log_distributions=False)
    before = kl_to(module.bad_teacher, module.net)
    teacher_state = {k: v.clone() for k, v in module.bad_teacher.state_dict().items()}
    quiet_trainer(tmp_path, 2).fit(module, dm)
    after = kl_to(module.bad_teacher, module.net)
    assert after < 0.7 * before, (before, after)

    loaded = load_net(original)[0].state_dict()
    for k, v in module.original_net.state_dict().items():
        assert torch.equal(v, loaded[k]), f"the original teacher's {k} changed"
    for k, v in module.bad_teacher.state_dict().items():
        assert torch.equal(v, teacher_state[k]), f"the incompetent teacher's {k} changed"

    same = [BadTeacher(original=original, teacher_seed=s).bad_teacher.state_dict() for s in (5, 5, 6)]
    assert all(torch.equal(same[0][k], same[1][k]) for k in same[0])
    assert not all(torch.equal(same[0][k], same[2][k]) for k in same[0])
