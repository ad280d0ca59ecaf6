"""The mechanisms of the zero-shot methods: SSD and LFSSD dampen exactly the selected weights, and
only towards zero; LFSSD never reads a label; JiT reads the forget stream alone and lowers the
local Lipschitz estimate at the forget examples."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from tests.synthetic import datamodule, trainer
from unlearning.methods import LFSSD, SSD, JiT
from unlearning.methods.ssd import dampen_, ssd_selection
from unlearning.modules import load_net

#: a smaller problem than the contract tests' (600 training images, 90 of them forgotten): the
#: mechanisms need no memorised forget set, only importances to compare
SMALL = {"num_train": 600, "num_heldout": 200}


def run_ssd(cls: type[SSD], original: Path, tmp: Path, dm=None, **kwargs) -> SSD:
    """Fit ``cls`` (its one empty batch) on the small problem and return the module."""
    L.seed_everything(0)
    module = cls(original=str(original), log_distributions=False, **kwargs)
    trainer(tmp, 1, enable_checkpointing=False, limit_val_batches=0, limit_train_batches=1).fit(
        module, dm if dm is not None else datamodule(**SMALL))
    return module


def reference_importance(net: torch.nn.Module, dm, stream: str, label_free: bool) -> dict[str, torch.Tensor]:
    """The published estimate, written out independently: mean over fixed-order batches of 128 of
    the squared gradient of the mean cross-entropy (SSD), or of the absolute gradient of the mean
    squared l2 norm of the output (LFSSD), network in eval mode."""
    net = net.eval()
    sums = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    batches = 0
    for x, y in dm.stream_loader(stream, train=False, batch_size=128):
        net.zero_grad()
        out = net(x)
        loss = out.pow(2).sum(1).mean() if label_free else F.cross_entropy(out, y)
        loss.backward()
        for n, p in net.named_parameters():
            sums[n] += p.grad.abs() if label_free else p.grad.pow(2)
        batches += 1
    return {n: s / batches for n, s in sums.items()}


@pytest.mark.parametrize("cls", [SSD, LFSSD], ids=lambda c: c.__name__)
def test_dampening_changes_only_selected_weights_and_only_towards_zero(
    cls: type[SSD], synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    # alpha < lambda, so that some selected weights hit the bound of 1 (and must stay unchanged)
    alpha, lam = (3.0, 6.0) if cls is SSD else (1.3, 2.0)
    dm = datamodule(**SMALL)
    module = run_ssd(cls, synthetic_models["original"], tmp_path, dm=dm, alpha=alpha, dampening=lam)
    before, _ = load_net(synthetic_models["original"])
    old, new = dict(before.named_parameters()), dict(module.net.named_parameters())

    # the importances are the published estimates, and the selection is I_Df > alpha * I_D
    label_free = cls is LFSSD
    ref_d = reference_importance(load_net(synthetic_models["original"])[0], dm, "train", label_free)
    ref_f = reference_importance(load_net(synthetic_models["original"])[0], dm, "forget", label_free)
    for n in old:
        torch.testing.assert_close(module.importances["train"][n], ref_d[n], rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(module.importances["forget"][n], ref_f[n], rtol=1e-4, atol=1e-12)
    d, f = module.importances["train"], module.importances["forget"]
    n_selected = 0
    for n, p0 in old.items():
        selected = f[n] > alpha * d[n]
        assert torch.equal(module.selected[n], selected), n
        n_selected += int(selected.sum())
        w0, w1 = p0.detach(), new[n].detach()
        # unselected entries keep their exact bits; selected ones are scaled by min(lambda I_D / I_Df, 1)
        assert torch.equal(w1[~selected], w0[~selected]), n
        factor = (lam * d[n][selected] / f[n][selected]).clamp(max=1.0)
        torch.testing.assert_close(w1[selected], w0[selected] * factor)
        assert bool((w1.abs() <= w0.abs()).all()) and bool((w1 * w0 >= 0).all()), n
    assert n_selected > 0
    assert any(bool((f[n] > lam * d[n]).any()) for n in old)  # some selected weights really shrink
    # eval mode throughout: BatchNorm's running statistics are untouched
    for (name, b0), (_, b1) in zip(before.named_buffers(), module.net.named_buffers()):
        assert torch.equal(b0, b1), name
    # the cost is the two importance passes: every image of D and of the forget set once
    assert module.cost["images_seen"] == 600 + 90

    # a larger alpha selects a subset, strictly smaller while anything is left
    counts, last = [], None
    for a in (alpha, 2 * alpha, 4 * alpha, 8 * alpha):
        masks = ssd_selection(d, f, a)
        if last is not None:
            assert all(bool((masks[n] <= last[n]).all()) for n in masks)
        counts.append(sum(int(m.sum()) for m in masks.values()))
        last = masks
    assert counts[0] == n_selected and counts[0] > counts[1] and counts == sorted(counts, reverse=True), counts


def test_selection_and_dampening_on_hand_built_importances() -> None:
    """SSD's rule, exactly, on tensors whose answer is known: an entry is selected when its forget
    importance is strictly above alpha times its importance on D (equal is not), and a selected
    entry is multiplied by min(lambda * I_D / I_Df, 1), keeping its sign; the rest keep their bits."""
    d = {"w": torch.tensor([1.0, 1.0, 1.0, 2.0, 0.5, 1.0]), "b": torch.tensor([4.0, 0.0])}
    f = {"w": torch.tensor([9.0, 10.0, 11.0, 40.0, 100.0, 0.0]), "b": torch.tensor([80.0, 0.0])}
    w0 = {"w": torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0, 6.0]), "b": torch.tensor([-8.0, 7.0])}
    alpha, lam = 10.0, 2.0
    masks = ssd_selection(d, f, alpha)
    assert masks["w"].tolist() == [False, False, True, True, True, False]  # 10 = 10 x 1: not selected
    assert masks["b"].tolist() == [True, False]  # 0 > 10 x 0 is false: a dead entry is never selected
    params = {n: t.clone() for n, t in w0.items()}
    dampen_(params, d, f, alpha, lam)
    # factors: 2 x 1 / 11, 2 x 2 / 40, 2 x 0.5 / 100; b[0]: 2 x 4 / 80
    assert params["w"].tolist() == pytest.approx([1.0, -2.0, 3.0 * 2 / 11, -4.0 * 4 / 40, 5.0 * 1 / 100, 6.0], rel=1e-6)
    assert params["b"].tolist() == pytest.approx([-8.0 * 8 / 80, 7.0], rel=1e-6)
    # a dampening above the ratio clamps at 1: selected, but unchanged
    params = {n: t.clone() for n, t in w0.items()}
    dampen_(params, d, f, alpha, dampening=200.0)
    assert all(torch.equal(params[n], w0[n]) for n in w0)
    # alpha scales the line: halving it adds exactly the entries between the two lines
    wider = ssd_selection(d, f, alpha / 2)
    assert wider["w"].tolist() == [True, True, True, True, True, False]


def test_fisher_subset_reads_that_many_batches_of_D(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    module = run_ssd(SSD, synthetic_models["original"], tmp_path, alpha=3.0, fisher_subset=2)
    assert module.cost["images_seen"] == 2 * 128 + 90
    with pytest.raises(ValueError, match="fisher_subset must be an integer >= 1"):
        SSD(original=str(synthetic_models["original"]), fisher_subset=0)


def test_lfssd_reads_no_label_and_ssd_does(synthetic_models: dict[str, Path], tmp_path: Path) -> None:
    """Shuffling the training labels (the split unchanged) leaves LFSSD's weights bit for bit
    and changes SSD's."""

    def shuffled() -> object:
        dm = datamodule(**SMALL)
        dm.setup()
        y = dm.arrays.train_y
        dm.arrays = dataclasses.replace(dm.arrays, train_y=y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))])
        return dm

    for cls, alpha, same in ((LFSSD, 1.3, True), (SSD, 3.0, False)):
        a = run_ssd(cls, synthetic_models["original"], tmp_path, alpha=alpha)
        b = run_ssd(cls, synthetic_models["original"], tmp_path, dm=shuffled(), alpha=alpha)
        assert sum(int(m.sum()) for m in a.selected.values()) > 0, cls.__name__
        identical = all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))
        assert identical == same, cls.__name__


def test_jit_reads_only_forget_and_lowers_the_lipschitz_estimate(
    synthetic_models: dict[str, Path], tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = JiT(original=str(synthetic_models["original"]), log_distributions=False, sigma=1.0, lr=1e-3, n_samples=10)
    dm = datamodule()
    dm.setup()
    x_forget = torch.cat([x for x, _ in dm.stream_loader("forget", train=False)])

    def estimate() -> float:
        module.net.eval()
        with torch.no_grad():
            ratios = module.lipschitz_ratios(x_forget, n_samples=10, generator=torch.Generator().manual_seed(1))
        return float(ratios.mean())

    before = estimate()
    requested: list[str] = []
    loader = dm.stream_loader
    dm.stream_loader = lambda name, *a, **kw: (requested.append(name), loader(name, *a, **kw))[1]  # type: ignore[method-assign]
    trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(module, dm)
    assert set(requested) == {"forget"}, requested
    after = estimate()
    assert after < 0.95 * before, (before, after)
    # every forward pass is counted: the forget images and their 10 perturbed copies each
    assert module.cost["images_seen"] == 11 * x_forget.shape[0]
