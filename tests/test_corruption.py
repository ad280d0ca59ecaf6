"""Corrupted-data forget scenarios (``CorruptedForget``): what the original trains on, the forget set
as the discovered share, the undiscovered examples kept corrupted in the retain set, the cache keys
(one original per corruption, whatever the discovery rate), the healing metrics and their place in
the score, the leaderboard and the matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import REPO
from unlearning.cli import main
from unlearning.data import SyntheticImageDataModule, TwoCircles, make_split
from unlearning.data.corruption import CorruptedForget, stamp_trigger
from unlearning.metrics.evaluation import evaluate
from unlearning.scoring.cached_model import data_recipe, training_data
from unlearning.scoring.healing import healing_rows, healing_summary
from unlearning.scoring.matrix import scenario_data

NAMES = [f"c{i}" for i in range(10)]
N = 2000
SPECS = {"random_swap": {}, "class_swap": {"classes": ["c3", 5]}, "trigger": {"target": "c0"}}


def labels() -> torch.Tensor:
    return torch.arange(N) % 10


def synthetic(kind: str, rate: float = 0.5, **kw) -> SyntheticImageDataModule:
    """Tiny CIFAR-shaped images (8x8), 300 of 400 in the pool, 10% of the pool corrupted."""
    scenario = CorruptedForget(kind, share=0.1, discovery_rate=rate,
                               **{"classes": ["class3", 5]} if kind == "class_swap" else {},
                               **{"target": 0} if kind == "trigger" else {}, **kw)
    dm = SyntheticImageDataModule(num_train=400, num_heldout=200, image_size=8, train_subset=300,
                                  forget_scenario=scenario)
    dm.setup()
    return dm


def clean_arrays() -> SyntheticImageDataModule:
    dm = SyntheticImageDataModule(num_train=400, num_heldout=200, image_size=8)
    return dm.load_arrays()


@pytest.mark.parametrize("kind", list(SPECS))
def test_sizes_partition_and_the_forget_set_is_the_discovered_share(kind: str) -> None:
    scenario = CorruptedForget(kind, share=0.1, discovery_rate=0.25, seed=1, **SPECS[kind])
    s = make_split(labels(), 200, NAMES, forget_scenario=scenario, train_subset=1000, seed=3)
    pool = torch.cat([s.retain, s.forget])
    c = scenario.corruption(labels(), pool, NAMES)
    assert c.index.numel() == 100 and set(c.index.tolist()) <= set(pool.tolist())  # 10% of the pool of 1,000
    assert torch.equal(s.forget, c.forgotten) and s.forget.numel() == 25  # a quarter of them discovered
    assert set(c.undiscovered.tolist()) <= set(s.retain.tolist()) and c.undiscovered.numel() == 75
    assert not set(s.retain.tolist()) & set(s.forget.tolist()) and pool.numel() == 1000
    assert (c.labels != labels()[c.index]).all()  # every corrupted example has a wrong label
    counted = CorruptedForget(kind, count=40, discovery_rate=1.0, **SPECS[kind]).corruption(labels(), pool, NAMES)
    assert counted.index.numel() == 40 and counted.discovered.all()


@pytest.mark.parametrize("kind", list(SPECS))
def test_the_corruption_is_seeded_and_the_same_at_every_discovery_rate(kind: str) -> None:
    pool = torch.randperm(N, generator=torch.Generator().manual_seed(0))[:1000]

    def make(rate: float, seed: int = 0):
        return CorruptedForget(kind, share=0.1, discovery_rate=rate, seed=seed, **SPECS[kind]).corruption(labels(), pool, NAMES)

    half, quarter, again = make(0.5), make(0.25), make(0.5)
    assert torch.equal(half.index, again.index) and torch.equal(half.labels, again.labels)
    assert torch.equal(half.discovered, again.discovered)
    assert torch.equal(half.index, quarter.index) and torch.equal(half.labels, quarter.labels)
    assert set(quarter.forgotten.tolist()) < set(half.forgotten.tolist())  # a lower rate discovers a subset
    shuffled = CorruptedForget(kind, share=0.1, **SPECS[kind]).corruption(labels(), pool.flip(0), NAMES)
    assert torch.equal(shuffled.index, half.index)  # the pool's order does not matter
    assert not torch.equal(make(0.5, seed=1).index, half.index)


def test_class_swap_touches_only_its_two_classes_and_swaps_them() -> None:
    scenario = CorruptedForget("class_swap", share=0.1, classes=["c3", 5])
    c = scenario.corruption(labels(), torch.arange(N), NAMES)
    true = labels()[c.index]
    assert set(true.tolist()) == {3, 5} and (true == 3).sum() == (true == 5).sum() == 100
    assert torch.equal(c.labels, 8 - true)  # 3 -> 5 and 5 -> 3


@pytest.mark.parametrize("kind", list(SPECS))
def test_the_original_trains_on_the_corrupted_labels_and_patches(kind: str) -> None:
    dm = synthetic(kind)
    clean = clean_arrays()
    c = dm.forget_scenario.corruption(clean.train_y, dm.split.train, dm.arrays.classes)
    x, y, idx = dm.stream_source("train")  # the stream the original trains on (retain and forget together)
    assert torch.equal(idx, dm.split.train) and c.index.numel() == 30
    assert torch.equal(y[c.index], c.labels) and (c.labels != clean.train_y[c.index]).all()
    rest = torch.ones(400, dtype=torch.bool)
    rest[c.index] = False
    assert torch.equal(y[rest], clean.train_y[rest]) and torch.equal(x[rest], clean.train_x[rest])
    if kind == "trigger":
        assert (x[c.index][..., -3:, -3:] == 255).all() and set(y[c.index].tolist()) == {0}
        assert torch.equal(x[c.index][..., :-3], clean.train_x[c.index][..., :-3])
    else:
        assert torch.equal(x[c.index], clean.train_x[c.index])
    batches = list(dm.stream_loader("train", train=True))  # shuffled and batched as in training: the same pairs
    assert sum(int(b[1].numel()) for b in batches) == 300
    # the undiscovered corrupted examples are in the retain set, corrupted; the forget set is the rest
    _, retain_y, retain_idx = dm.stream_source("retain")
    assert set(c.undiscovered.tolist()) <= set(retain_idx.tolist()) and c.undiscovered.numel() == 15
    assert torch.equal(retain_y[c.undiscovered], c.labels[~c.discovered])
    assert torch.equal(dm.split.forget, c.forgotten)
    # the source's arrays (shared by every data module of the process reading the same files) stay clean
    source = dm.load_arrays()
    assert torch.equal(source.train_y, clean.train_y) and torch.equal(source.train_x, clean.train_x)


def test_the_healing_streams_are_the_corrupted_examples_with_their_true_labels() -> None:
    dm = synthetic("trigger", rate=0.5)
    clean = clean_arrays()
    assert dm.eval_streams == ("retain", "forget", "val", "test", "corrupted_forget", "corrupted_retain", "trigger")
    c = dm.forget_scenario.corruption(clean.train_y, dm.split.train, dm.arrays.classes)
    for stream, part in (("corrupted_forget", c.forgotten), ("corrupted_retain", c.undiscovered)):
        x, y, idx = dm.stream_source(stream)
        assert torch.equal(idx, part) and torch.equal(y[idx], clean.train_y[idx]) and (x[idx][..., -3:, -3:] == 255).all()
    x, y, idx = dm.stream_source("trigger")
    others = dm.split.test[clean.heldout_y[dm.split.test] != 0]
    assert torch.equal(x, stamp_trigger(clean.heldout_x[others], 3)) and set(y.tolist()) == {0}
    whole = synthetic("random_swap", rate=1.0)  # everything discovered: no undiscovered stream, no trigger
    assert whole.eval_streams[4:] == ("corrupted_forget",)
    plain = SyntheticImageDataModule(num_train=400, num_heldout=200, image_size=8)
    plain.setup()
    assert plain.eval_streams == ("retain", "forget", "val", "test") and not plain.healing_streams


class Lookup(nn.Module):
    """Predicts, for an image of the training set, the label a table gives it (the nearest image)."""

    def __init__(self, images: torch.Tensor, table: torch.Tensor, num_classes: int = 10) -> None:
        super().__init__()
        self.images, self.table, self.num_classes = images.flatten(1), table, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nearest = torch.cdist(x.flatten(1), self.images).argmin(1)
        return 10.0 * nn.functional.one_hot(self.table[nearest], self.num_classes).float()


class TriggerFollower(nn.Module):
    """Class ``target`` for an image with the patch (at the normalised top value), else ``other``."""

    def __init__(self, top: torch.Tensor, target: int, other: int, follow: bool = True) -> None:
        super().__init__()
        self.top, self.target, self.other, self.follow = top, target, other, follow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patched = torch.isclose(x[..., -3:, -3:], self.top.view(1, -1, 1, 1)).flatten(1).all(1) & self.follow
        return 10.0 * nn.functional.one_hot(torch.where(patched, self.target, self.other), 10).float()


def test_healing_metrics_are_one_for_the_true_labels_and_zero_for_the_corrupted_ones() -> None:
    dm = synthetic("class_swap", rate=0.5)
    clean = clean_arrays()
    images = dm.eval_transform(dm.arrays.train_x)
    loaders = {s: dm.stream_loader(s, train=False) for s in ("corrupted_forget", "corrupted_retain")}
    healed = evaluate(Lookup(images, clean.train_y), loaders, predictive=False)["scalars"]
    corrupted = evaluate(Lookup(images, dm.arrays.train_y), loaders, predictive=False)["scalars"]
    assert healed["corrupted_forget_acc"] == healed["corrupted_retain_acc"] == 1.0
    assert corrupted["corrupted_forget_acc"] == corrupted["corrupted_retain_acc"] == 0.0
    table = dm.arrays.train_y.clone()
    table[dm.split.forget] = clean.train_y[dm.split.forget]  # healed on what was forgotten only
    partial = evaluate(Lookup(images, table), loaders, predictive=False)["scalars"]
    assert partial["corrupted_forget_acc"] == 1.0 and partial["corrupted_retain_acc"] == 0.0
    trig = synthetic("trigger")
    top = trig.eval_transform(torch.full((1, 3, 8, 8), 255, dtype=torch.uint8))[0, :, 0, 0]
    loader = {"trigger": trig.stream_loader("trigger", train=False)}
    assert evaluate(TriggerFollower(top, 0, 1), loader, predictive=False)["scalars"]["trigger_acc"] == 1.0
    assert evaluate(TriggerFollower(top, 0, 1, follow=False), loader, predictive=False)["scalars"]["trigger_acc"] == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CorruptedForget("noise"), "kind must be one of random_swap, class_swap, trigger, got 'noise'"),
        (lambda: CorruptedForget("random_swap", share=0.0), "share must be in (0, 1], got 0.0"),
        (lambda: CorruptedForget("random_swap", share=1.5), "share must be in (0, 1], got 1.5"),
        (lambda: CorruptedForget("random_swap", discovery_rate=0.0), "discovery_rate must be in (0, 1], got 0.0"),
        (lambda: CorruptedForget("random_swap", discovery_rate=1.2), "discovery_rate must be in (0, 1], got 1.2"),
        (lambda: CorruptedForget("random_swap", count=0), "count must be a positive number of examples, got 0"),
        (lambda: CorruptedForget("class_swap", classes=["c3"]), "classes must name the two classes whose labels "
                                                                 "class_swap swaps, got ['c3']"),
        (lambda: CorruptedForget("random_swap", classes=[3, 5]), "classes is for kind class_swap only"),
        (lambda: CorruptedForget("trigger"), "target must name the class the trigger's examples are labelled with"),
        (lambda: CorruptedForget("trigger", target=0, patch_size=0), "patch_size must be a positive number of pixels, got 0"),
        (lambda: make_split(labels(), 200, NAMES, forget_scenario=CorruptedForget("class_swap", classes=["cat", "c5"])),
         "CorruptedForget's classes: unknown forget class 'cat'"),
        (lambda: make_split(labels(), 200, NAMES, forget_scenario=CorruptedForget("trigger", target="zebra")),
         "CorruptedForget's target: unknown forget class 'zebra'"),
        (lambda: make_split(labels(), 200, NAMES, forget_scenario=CorruptedForget("class_swap", classes=[3, 5], count=500)),
         "needs 250 examples of class 3 to corrupt, the training pool has 200"),
        (lambda: make_split(labels(), 200, NAMES, forget_scenario=CorruptedForget("random_swap", count=1, discovery_rate=0.4)),
         "discovery_rate=0.4 of the 1 corrupted examples names none"),
        (lambda: TwoCircles(forget_scenario=CorruptedForget("trigger", target=0)).setup(),
         "a trigger of 3x3 pixels needs images N x C x H x W of at least that size, got inputs of shape (10, 2)"),
    ],
)
def test_bad_corruption_specs_get_one_line_errors(make, message: str) -> None:
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_corruption_enters_the_originals_cache_key_and_the_discovery_rate_does_not() -> None:
    def section(**args) -> dict:
        scenario = {"class_path": "CorruptedForget", "init_args": {"kind": "trigger", "target": 0, **args}}
        return {"class_path": "TwoCircles", "init_args": {"num_train": 200, "forget_scenario": scenario}}

    def original_key(**args) -> str:
        return json.dumps(data_recipe(training_data(section(**args))), sort_keys=True)

    def oracle_key(**args) -> str:
        return json.dumps(data_recipe(section(**args)), sort_keys=True)

    half = original_key(discovery_rate=0.5)
    assert original_key(discovery_rate=0.25) == half and original_key(patch_size=3, share=0.05) == half  # defaults
    assert oracle_key(discovery_rate=0.25) != oracle_key(discovery_rate=0.5)  # the forget set differs
    for changed in ({"share": 0.1}, {"count": 10}, {"seed": 1}, {"target": 1}, {"patch_size": 2}):
        assert original_key(**changed) != half, changed
    swap = {"class_path": "TwoCircles", "init_args": {"num_train": 200, "forget_scenario": {
        "class_path": "CorruptedForget", "init_args": {"kind": "random_swap"}}}}
    plain = {"class_path": "TwoCircles", "init_args": {"num_train": 200, "forget_fraction": 0.1}}
    keys = {json.dumps(data_recipe(training_data(d)), sort_keys=True) for d in (swap, plain, section())}
    assert len(keys) == 3  # each corruption its own original, and the clean data another
    kept = data_recipe(training_data(section()))["init_args"]["forget_scenario"]
    assert "discovery_rate" not in kept["init_args"] and "unlearning.data.corruption" in kept["code"]


def test_a_score_reports_healing_and_discovery_rates_share_one_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two discovery rates of one label swap on the toy: one original, each rate its own oracles;
    ``healing`` in score.json from the records, the original evaluated on the split, and the
    leaderboard's and the matrix's healing columns."""
    monkeypatch.chdir(REPO)
    swap = {"kind": "random_swap", "share": 0.1}
    scenarios = {"half": {"class_path": "CorruptedForget", "init_args": {**swap, "discovery_rate": 0.5}},
                 "all": {"class_path": "CorruptedForget", "init_args": {**swap, "discovery_rate": 1.0}}}
    payload = main(["leaderboard", "-c", "configs/leaderboard/toy.yaml", "--n_models", "2", "--progress", "false",
                    "--methods", "[configs/toy/unlearn/finetune.yaml]", "--variants", "{}",
                    "--scenarios", json.dumps(scenarios),
                    "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "board")])
    cache = tmp_path / "cache"
    assert len(list(cache.glob("original-*"))) == 1 and len(list(cache.glob("oracle-*"))) == 2
    score = json.loads((tmp_path / "board" / "half" / "methods" / "finetune" / "score.json").read_text())
    healing = score["healing"]
    assert healing["examples"] == {"corrupted_forget": 10, "corrupted_retain": 10} and score["num_forget"] == 10
    oracle_dir = cache / score["cache"]["oracle"]
    oracle_acc = [json.loads(p.read_text())["metrics"]["corrupted_retain_acc"] for p in oracle_dir.glob("seed-*/record.json")]
    assert len(oracle_acc) == 4 and healing["corrupted_retain_acc"]["oracle"] == pytest.approx(np.mean(oracle_acc))
    for name in ("corrupted_forget_acc", "corrupted_retain_acc"):
        assert all(0.0 <= healing[name][k] <= 1.0 for k in ("method", "oracle", "original")), name
    assert "attack_success" not in healing
    rows = {r["scenario"]: r for r in payload["rows"]}
    assert rows["half"]["healing_corrupted_forget_acc_oracle"] == healing["corrupted_forget_acc"]["oracle"]
    assert "healing_corrupted_retain_acc" not in rows["all"]  # everything discovered: nothing left corrupted
    saved = json.loads((tmp_path / "board" / "scenarios.json").read_text())
    assert saved["rows"][0]["healing_corrupted_forget_acc_original"] == healing["corrupted_forget_acc"]["original"]
    assert "Healing" in (tmp_path / "board" / "scenarios.md").read_text()
    assert "| oracle |" in (tmp_path / "board" / "half" / "leaderboard.md").read_text()


def test_the_healing_summary_averages_each_group_and_keeps_the_originals_numbers() -> None:
    def record(forget: float, retain: float | None = None) -> dict:
        metrics = {"corrupted_forget_acc": forget, "retain_acc": 0.5}
        return {"metrics": metrics if retain is None else {**metrics, "corrupted_retain_acc": retain}}

    oracles = [record(0.9, 0.2), record(0.7, 0.4), record(0.5, 0.6), record(0.3, 0.8)]
    methods = [record(0.2, 0.1), record(0.4, 0.3)]
    original = {"corrupted_forget_acc": 0.05, "corrupted_retain_acc": 0.15, "trigger_acc": 0.9,
                "examples": {"corrupted_forget": 3, "corrupted_retain": 4}}
    h = healing_summary(oracles, methods, original)
    assert h["corrupted_forget_acc"] == pytest.approx({"method": 0.3, "method_std": np.std([0.2, 0.4], ddof=1),
                                                       "oracle": 0.6, "original": 0.05})
    assert h["corrupted_retain_acc"]["oracle"] == pytest.approx(0.5) and h["corrupted_retain_acc"]["original"] == 0.15
    assert "attack_success" not in h and h["examples"] == original["examples"]  # the runs were not measured on one
    assert np.isnan(healing_summary(oracles, methods)["corrupted_forget_acc"]["original"])
    assert healing_summary(oracles, [{"metrics": {"retain_acc": 0.5}}]) == {}  # clean data: no healing section
    row = healing_rows(h)
    assert row["healing_corrupted_forget_acc"] == pytest.approx(0.3) and row["healing_corrupted_retain_acc_original"] == 0.15


def test_the_corrupted_preset_shares_the_scenario_presets_setting() -> None:
    corrupted = yaml.safe_load((REPO / "configs" / "leaderboard" / "corrupted_cpu.yaml").read_text())
    scenarios = yaml.safe_load((REPO / "configs" / "leaderboard" / "scenarios_cpu.yaml").read_text())
    for key in ("data", "original", "oracle", "methods", "recipe_args", "stages_dir", "variants", "n_models"):
        assert corrupted[key] == scenarios[key], key
    kinds = set()
    for name, spec in corrupted["scenarios"].items():
        scenario_data(corrupted["data"], spec)  # each resolves to a valid scenario
        args = spec["init_args"]
        kinds.add(args["kind"])
        assert spec["class_path"] == "CorruptedForget" and args["discovery_rate"] == 0.5, name
    assert kinds == {"random_swap", "class_swap", "trigger"}
