"""RUM (``unlearning.methods.rum``): the levels partition the forget set by the rank of the
memorisation proxy (or of a scores file), run low -> medium -> high each from the previous level's
model, on that level's examples only; nothing at every level changes nothing; a bad level is one
line naming it; ``unlearning fit`` runs the CPU preset's structure and its checkpoint loads with
``weights_only=True``, its cost the sum of its levels'."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from tests.conftest import REPO, run_cli_here
from tests.synthetic import SYNTHETIC, IndexedImages, datamodule, decode_indices, reference_models, trainer
from unlearning.methods import RUM
from unlearning.methods.rum import memorisation_levels
from unlearning.modules import UnlearnModule, load_net
from unlearning.modules.checkpoint import META_KEY


def last_linear(net: nn.Module) -> nn.Linear:
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]


class Recorder(UnlearnModule):
    """A level method that records, in a shared log, its tag, the forget examples it is handed and
    the output bias of the model it starts from; then adds 1 to that bias (so the next level can
    tell whether it starts from this one's model)."""

    train_streams: ClassVar[tuple[str, ...]] = ("forget",)
    log: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, tag: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tag = tag
        self.automatic_optimization = False  # trains nothing

    @property
    def stream_options(self) -> dict[str, dict[str, Any]]:
        return {"forget": {"drop_single": False}}

    def on_train_start(self) -> None:
        bias = last_linear(self.net).bias
        type(self).log.append({"tag": self.tag, "bias": bias.detach().clone(), "seen": []})
        with torch.no_grad():
            bias.add_(1.0)

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> None:
        type(self).log[-1]["seen"] += [i for _, i in decode_indices(batch["forget"][0])]
        return None


def recorder_level(tag: str) -> dict[str, Any]:
    return {"method": {"class_path": f"{__name__}.Recorder", "init_args": {"tag": tag}}, "epochs": 1}


def confidence_proxy(original: Path, dm: L.LightningDataModule) -> tuple[np.ndarray, np.ndarray]:
    """``(forget indices, 1 - p(label))`` under the original, computed here independently."""
    dm.setup()
    net, _ = load_net(original)
    x, y, idx = dm.stream_source("forget")
    with torch.no_grad():
        p = F.softmax(net.eval()(dm.eval_transform(x[idx])), dim=1)
    return idx.numpy(), (1 - p[torch.arange(idx.numel()), y[idx]]).double().numpy()


@pytest.fixture
def original() -> Path:
    return reference_models()["original"]


def fit(module: RUM, dm: L.LightningDataModule, tmp_path: Path) -> None:
    L.seed_everything(0)
    trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(module, dm)


def test_nothing_at_every_level_leaves_the_original_unchanged(original: Path, tmp_path: Path) -> None:
    module = RUM(original=str(original), low=None, medium={"method": None}, high=None, log_distributions=False)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    fit(module, datamodule(), tmp_path)
    after = module.net.state_dict()
    for key, value in before.items():  # weights and BatchNorm statistics, bit for bit
        assert torch.equal(after[key], value), key
    assert [row["method"] for row in module.level_report] == [None, None, None]
    assert module.cost["images_seen"] == 0  # no level to run, so not even the ranking pass


def test_levels_run_low_to_high_on_their_thirds_of_the_proxy_ranking(original: Path, tmp_path: Path) -> None:
    """Each level's method gets exactly its third of the forget set ranked by 1 - p(label) (the
    least memorised to ``low``), in the order low, medium, high, each from the previous level's
    model; the result is the last level's model."""
    Recorder.log = []
    dm = IndexedImages(split_seed=3)
    module = RUM(original=str(original), low=recorder_level("low"), medium=recorder_level("medium"),
                 high=recorder_level("high"), log_distributions=False)
    bias0 = last_linear(module.net).bias.detach().clone()
    fit(module, dm, tmp_path)

    idx, proxy = confidence_proxy(original, IndexedImages(split_seed=3))
    ranked = idx[np.lexsort((idx, proxy))]
    thirds = [set(ranked[:33].tolist()), set(ranked[33:67].tolist()), set(ranked[67:].tolist())]  # 100 forget examples
    assert [entry["tag"] for entry in Recorder.log] == ["low", "medium", "high"]
    for k, entry in enumerate(Recorder.log):
        assert sorted(entry["seen"]) == sorted(thirds[k]), entry["tag"]  # each example once, none of another level
        torch.testing.assert_close(entry["bias"], bias0 + k)  # starts from the previous level's model
    torch.testing.assert_close(last_linear(module.net).bias.detach(), bias0 + 3)
    assert {n: set(v.tolist()) for n, v in module.level_indices.items()} == dict(zip(("low", "medium", "high"), thirds))
    assert np.mean(proxy[np.isin(idx, list(thirds[0]))]) < np.mean(proxy[np.isin(idx, list(thirds[2]))])
    # the data module's own forget set is served again after the levels
    assert set(dm.split.forget.tolist()) == set(idx.tolist())


def test_a_scores_file_ranks_the_levels_and_shares_cut_them(original: Path, tmp_path: Path) -> None:
    """With ``scores_file`` the levels follow its score (here: the forget examples' indices
    reversed), cut by ``shares``; a level of share 0 is empty and runs nothing."""
    Recorder.log = []
    dm = IndexedImages(split_seed=3)
    dm.setup()
    forget = dm.split.forget.numpy()
    scores = tmp_path / "memorisation.npz"
    all_index = np.arange(500)
    np.savez(scores, index=all_index, estimate=-all_index.astype(float), confidence_proxy=np.full(500, np.nan))
    module = RUM(original=str(original), low=recorder_level("low"), medium=recorder_level("medium"),
                 high=recorder_level("high"), shares=[0.5, 0.5, 0.0], scores_file=str(scores), log_distributions=False)
    fit(module, IndexedImages(split_seed=3), tmp_path)
    by_score = np.sort(forget)[::-1]  # highest index = lowest score = least memorised
    assert [entry["tag"] for entry in Recorder.log] == ["low", "medium"]
    assert sorted(Recorder.log[0]["seen"]) == sorted(by_score[:50].tolist())
    assert sorted(Recorder.log[1]["seen"]) == sorted(by_score[50:].tolist())
    assert module.level_indices["high"].numel() == 0

    bad = RUM(original=str(original), high=recorder_level("high"), scores_file=str(scores),
              score_key="confidence_proxy", log_distributions=False)
    with pytest.raises(ValueError, match=r"no finite 'confidence_proxy' for 100 of the 100 forget examples"):
        fit(bad, IndexedImages(split_seed=3), tmp_path)


def test_memorisation_levels_is_a_partition_by_rank_ties_by_index() -> None:
    scores = np.array([0.5, 0.1, 0.5, 0.9, 0.1, 0.3, 0.7])
    indices = np.array([10, 11, 12, 13, 14, 15, 16])
    low, medium, high = memorisation_levels(scores, indices, (1 / 3, 1 / 3, 1 / 3))
    assert (low.tolist(), medium.tolist(), high.tolist()) == ([11, 14], [10, 12, 15], [13, 16])
    parts = memorisation_levels(scores, indices, (0.0, 1.0, 0.0))
    assert [p.tolist() for p in parts] == [[], indices.tolist(), []]


BAD_LEVELS = [
    ({"high": {"method": {"class_path": "SalUn"}, "epoch": 1}}, r"RUM level 'high' has unknown key 'epoch'"),
    ({"medium": {"method": {"class_path": "Finetune"}}}, r"RUM level 'medium' needs a budget"),
    ({"medium": {"method": {"class_path": "Finetune"}, "epochs": 1, "steps": 5}}, r"RUM level 'medium' needs a budget"),
    ({"medium": {"method": {"class_path": "Finetune"}, "epochs": 0}}, r"RUM level 'medium': epochs must be an integer >= 1"),
    ({"high": {"method": {"class_path": "NoSuchMethod"}, "epochs": 1}}, r"RUM level 'high': .*'NoSuchMethod'"),
    ({"high": {"method": {"class_path": "Classifier"}, "epochs": 1}}, r"RUM level 'high': method 'Classifier' is not an unlearning method"),
    ({"low": {"method": {"class_path": "RUM"}, "epochs": 1}}, r"RUM level 'low': method 'RUM' is not an unlearning method"),
    ({"low": {"method": "Finetune", "epochs": 1}}, r"RUM level 'low': method must be null or a section"),
    ({"low": [1]}, r"RUM level 'low' must be null or a mapping"),
    ({"high": {"method": {"class_path": "SalUn", "init_args": {"saliency_fraction": 2.0}}, "epochs": 1}},
     r"RUM level 'high' \(SalUn\): saliency_fraction must be in \(0, 1\], got 2.0"),
    ({"high": {"method": {"class_path": "SalUn", "init_args": {"oracle": "x.ckpt"}}, "epochs": 1}},
     r"RUM level 'high': init_args sets 'oracle', which RUM supplies"),
    ({"high": {"method": {"class_path": "Finetune", "init_args": {"no_such_arg": 1}}, "epochs": 1}},
     r"RUM level 'high' \(Finetune\): .*no_such_arg"),
    ({"shares": [0.5, 0.5]}, r"RUM shares must be 3 non-negative numbers"),
]


@pytest.mark.parametrize(("args", "message"), BAD_LEVELS, ids=[m.split(":")[0][:40] for _, m in BAD_LEVELS])
def test_a_bad_level_is_one_line_naming_it(args: dict[str, Any], message: str, original: Path) -> None:
    with pytest.raises(ValueError, match=message) as err:
        RUM(original=str(original), log_distributions=False, **args)
    assert "\n" not in str(err.value)


def test_unlearning_fit_runs_the_cpu_preset_structure(original: Path, tmp_path: Path) -> None:
    """``unlearning fit`` on the CPU preset's model section (the synthetic data and reference models
    in place of CIFAR-10's): the checkpoint loads with ``weights_only=True``, records each level,
    and its cost is the ranking pass plus its levels' (Finetune: one epoch of retain, exactly)."""
    cfg = yaml.safe_load((REPO / "configs/cpu/unlearn/rum.yaml").read_text())
    cfg["model"]["init_args"].update(original=str(original), oracle=str(reference_models()["oracle"]))
    keys = ("num_train", "num_heldout", "signal", "forget_fraction", "image_size", "batch_size", "eval_batch_size")
    cfg["data"] = {"class_path": "SyntheticImageDataModule", "init_args": {k: SYNTHETIC[k] for k in keys}}
    cfg["trainer"].update(accelerator="cpu", enable_progress_bar=False, num_sanity_val_steps=0)
    cfg["trainer"]["logger"]["init_args"].update(save_dir=str(tmp_path), name="rum")
    path = tmp_path / "rum.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_cli_here("fit", "-c", str(path))
    assert out.returncode == 0, out.stderr
    ckpt = torch.load(tmp_path / "rum" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    levels = ckpt[META_KEY]["levels"]
    assert [(r["level"], r["method"], r["examples"]) for r in levels] == [
        ("low", None, 100), ("medium", "Finetune", 100), ("high", "SalUn", 100)]
    n_retain, n_forget = 1700, 300  # SYNTHETIC: 15% of 2,000 forgotten
    assert levels[0]["images_seen"] == 0 and levels[1]["images_seen"] == n_retain
    assert levels[2]["images_seen"] > n_retain  # retain, plus its level's forget batches and saliency pre-pass
    assert ckpt[META_KEY]["cost"]["images_seen"] == n_forget + sum(r["images_seen"] for r in levels)
    assert ckpt[META_KEY]["cost"]["train_time_s"] >= sum(r["train_time_s"] for r in levels) > 0
    reloaded = RUM.load_from_checkpoint(tmp_path / "rum" / "checkpoints" / "last.ckpt", map_location="cpu")
    net, _ = load_net(tmp_path / "rum" / "checkpoints" / "last.ckpt")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.net.eval()(x), net.eval()(x))
        assert not torch.allclose(net(x), load_net(original)[0].eval()(x))  # the levels changed the model
