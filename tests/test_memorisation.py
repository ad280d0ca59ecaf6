"""Per-example memorisation: the pure functions on hand-built arrays, the training-dynamics
callback on a tiny fit, and ``unlearning memorise`` end to end on the toy config with a few
training labels flipped (those must get the highest estimates)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from unlearning.callbacks import TrainingDynamics
from unlearning.data import SyntheticImageDataModule
from unlearning.data.scenarios import ScoreBandForget
from unlearning.data.sources import SourceArrays
from unlearning.memorisation import SCORES_FILE, SUMMARY_FILE, load_scores, run_memorise
from unlearning.metrics import (
    MemorisationWarning,
    centroid_distance,
    entanglement_score,
    memorisation_estimate,
    penultimate_features,
    penultimate_layer,
    penultimate_outputs,
    simulated_oracle_target,
    spearman,
    subset_masks,
    within_class_quantile,
)
from unlearning.modules import Classifier, RetrainOracle
from unlearning.nets import MLP, CifarResNet, SmallCNN

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "configs" / "memorisation" / "toy.yaml"
#: the training examples whose labels :class:`FlippedSynthetic` changes (source indices)
FLIPPED = np.arange(0, 400, 50)


class FlippedSynthetic(SyntheticImageDataModule):
    """The synthetic images with the labels of :data:`FLIPPED` moved to the next class: examples
    that a model predicts as labelled only if it trained on them."""

    def load_arrays(self) -> SourceArrays:
        a = super().load_arrays()
        y = a.train_y.clone()
        y[FLIPPED] = (y[FLIPPED] + 1) % len(a.classes)
        return SourceArrays(a.train_x, y, a.heldout_x, a.heldout_y, a.classes)


# ---- the estimate ---------------------------------------------------------------------------------
def test_estimate_is_accuracy_in_minus_accuracy_out() -> None:
    members = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=bool)
    correct = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 1, 0]], dtype=bool)
    # example 0: in models 0, 1 (both right), out of 2, 3 (both wrong): 1 - 0
    # example 1: in 0, 2 (right, right), out of 1, 3 (right, right): 0
    # example 2: in 1, 2 (wrong, right), out of 0, 3 (right, wrong): 0.5 - 0.5
    np.testing.assert_allclose(memorisation_estimate(members, correct), [1.0, 0.0, 0.0])
    soft = np.array([[0.9, 0.5, 0.2], [0.7, 0.5, 0.2], [0.1, 0.5, 0.2], [0.3, 0.5, 0.6]])
    np.testing.assert_allclose(memorisation_estimate(torch.tensor(members), torch.tensor(soft)),
                               [0.8 - 0.2, 0.0, (0.2 + 0.2) / 2 - (0.2 + 0.6) / 2])


def test_an_example_never_out_of_a_subset_has_no_estimate() -> None:
    members = np.array([[1, 1], [1, 0]], dtype=bool)
    with pytest.warns(MemorisationWarning, match=r"1 of 2 examples .*0 never in a subset, 1 never out of one"):
        mem = memorisation_estimate(members, np.ones((2, 2)))
    assert np.isnan(mem[0]) and mem[1] == 0.0


@pytest.mark.parametrize("members, correct, match", [
    (np.ones((2, 3), bool), np.ones((2, 4)), r"same K x N shape, got \(2, 3\) and \(2, 4\)"),
    (np.ones(3, bool), np.ones(3), r"members must be a K x N array .*got shape \(3,\)"),
    (np.full((2, 2), 2), np.ones((2, 2)), r"members must be booleans \(or 0/1\), got values such as 2"),
    (np.ones((2, 2), bool), np.full((2, 2), 1.5), r"correct must hold values in \[0, 1\].*got 1.5"),
])
def test_estimate_refuses_bad_arrays(members, correct, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        memorisation_estimate(members, correct)


def test_subset_masks_have_the_fraction_and_are_reproducible() -> None:
    masks = subset_masks(101, 5, 0.3, seed=4)
    assert masks.shape == (5, 101) and (masks.sum(1) == 30).all()
    np.testing.assert_array_equal(masks, subset_masks(101, 5, 0.3, seed=4))
    np.testing.assert_array_equal(masks[:3], subset_masks(101, 3, 0.3, seed=4))  # K grows by adding models
    assert not np.array_equal(masks, subset_masks(101, 5, 0.3, seed=5))
    assert len({m.tobytes() for m in masks}) == 5
    with pytest.raises(ValueError, match=r"subset fraction must be in \(0, 1\), got 1.5"):
        subset_masks(10, 2, 1.5)
    with pytest.raises(ValueError, match=r"subset fraction 0.01 of 10 examples gives 0 examples"):
        subset_masks(10, 2, 0.01)


# ---- Spearman, entanglement, features ---------------------------------------------------------------
def test_spearman_ranks_and_skips_missing_values() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 35, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, np.nan, 3, 4], [1, 3, 0, 2, 4]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3 examples where both scores are finite, got 2"):
        spearman([1, 2, np.nan], [1, 2, 3])


def test_entanglement_is_spread_within_over_spread_between() -> None:
    retain = np.array([[0.0, 0.0], [2.0, 0.0]])  # mean (1, 0), mean squared distance 1
    forget = np.array([[10.0, 0.0], [12.0, 0.0]])  # mean (11, 0), 1; the midpoint (6, 0) is 5 from each
    assert entanglement_score(retain, forget) == pytest.approx((1 + 1) / ((25 + 25) / 2))
    # moved and rotated together, the same; forget moved closer to retain, more entangled
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert entanglement_score(retain @ rot + 3, forget @ rot + 3) == pytest.approx(0.08)
    assert entanglement_score(retain, forget - 8) > 0.08
    assert entanglement_score(torch.tensor(retain), torch.tensor(retain)) == float("inf")
    with pytest.raises(ValueError, match=r"forget features must be a non-empty N x D array, got shape \(0, 2\)"):
        entanglement_score(retain, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="same width, got 2 and 3"):
        entanglement_score(retain, np.zeros((2, 3)))


def test_centroid_distance_is_in_units_of_the_distance_between_class_means() -> None:
    # class 0's mean is (1, 0), class 1's (10, 2): one unit is sqrt(81 + 4)
    feats = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 4.0], [10.0, 2.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    unit = np.sqrt(85.0)
    np.testing.assert_allclose(centroid_distance(feats, labels), np.array([1, 1, 0, 2, 2, 0]) / unit)
    # the same with three classes: the unit is the mean of the three pairwise distances
    three = np.vstack([feats, [[1.0, 10.0], [1.0, 12.0]]])
    means = np.array([[1.0, 0.0], [10.0, 2.0], [1.0, 11.0]])
    unit3 = np.mean([np.linalg.norm(means[a] - means[b]) for a, b in ((0, 1), (0, 2), (1, 2))])
    d = centroid_distance(torch.tensor(three), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2]))
    np.testing.assert_allclose(d, np.array([1, 1, 0, 2, 2, 0, 1, 1]) / unit3)
    with pytest.raises(ValueError, match="at least 2 classes to set its unit, got 1"):
        centroid_distance(feats, np.zeros(6, dtype=int))
    with pytest.raises(ValueError, match="labels must be 6 integers .*got 5 of dtype int"):
        centroid_distance(feats, labels[:5])
    with pytest.raises(ValueError, match="all class means coincide"):
        centroid_distance(np.array([[0.0], [2.0], [1.0], [1.0]]), np.array([0, 0, 1, 1]))


def test_within_class_quantile_ranks_each_class_on_its_own() -> None:
    score = np.array([5.0, 1.0, 3.0, 100.0, 200.0, 7.0])
    labels = np.array([0, 0, 0, 1, 1, 0])
    # class 0 (4 examples): 5, 1, 3, 7 rank 2, 0, 1, 3; class 1 (2): 100, 200 rank 0, 1
    np.testing.assert_allclose(within_class_quantile(score, labels), [2.5 / 4, 0.5 / 4, 1.5 / 4, 0.25, 0.75, 3.5 / 4])
    with pytest.raises(ValueError, match="needs finite scores, got nan"):
        within_class_quantile(np.array([1.0, np.nan]), np.array([0, 1]))


def test_the_examples_nearest_their_class_means_are_the_entangled_set() -> None:
    """The direction of the band scenarios on centroid_quantile: ``low`` (the same share of each
    class, nearest its mean) is more entangled with the rest than a random set of the same size,
    and than ``high``; ranking the raw distance instead takes the tightest classes and is not."""
    rng = np.random.default_rng(3)
    classes, per_class = 5, 200
    y = np.repeat(np.arange(classes), per_class)
    spread = rng.uniform(0.5, 2.0, classes)
    feats = np.maximum(rng.normal(0, 3, (classes, 16))[y] + rng.normal(size=(y.size, 16)) * spread[y, None], 0)
    k = y.size // 10

    def es(chosen: np.ndarray) -> float:
        mask = np.zeros(y.size, dtype=bool)
        mask[chosen] = True
        return entanglement_score(feats[~mask], feats[mask])

    distance = centroid_distance(feats, y)
    quantile = np.argsort(within_class_quantile(distance, y), kind="stable")
    near, far, random = es(quantile[:k]), es(quantile[-k:]), es(rng.permutation(y.size)[:k])
    assert near > 2 * random and near > 2 * far
    assert np.bincount(y[quantile[:k]], minlength=classes).tolist() == [k // classes] * classes
    assert es(np.argsort(distance)[:k]) < near / 4


def test_penultimate_features_are_the_heads_input() -> None:
    torch.manual_seed(0)
    net = MLP(in_features=12, num_classes=3, hidden=5, depth=2).train()
    x = torch.randn(7, 12)
    feats = penultimate_features(net, [x[:4], x[4:]])
    expected = net.layers[:4](x)  # two hidden layers and their ReLUs: the input of the last Linear
    torch.testing.assert_close(feats, expected.detach())
    assert net.training  # its mode is restored
    assert penultimate_layer(SmallCNN(width=4, hidden=8)).out_features == 10
    assert penultimate_layer(CifarResNet(depth=8, width=4)).in_features == 16
    with pytest.raises(ValueError, match="network Conv2d has no nn.Linear head"):
        penultimate_layer(torch.nn.Conv2d(3, 3, 1))


# ---- the callback -------------------------------------------------------------------------------------
@pytest.mark.parametrize("module_cls", [Classifier, RetrainOracle])
def test_training_dynamics_logs_each_examples_probability(tmp_path: Path, module_cls: type) -> None:
    """With a learning rate of 1e-12 the network does not change, so each step's logits are the
    initial network's (an MLP: no dropout, no BatchNorm): the callback must find exactly the label
    probability and hit of each example, at its own index, once per epoch; never-trained examples
    (an oracle's forget set) get none."""
    L.seed_everything(0)
    dm = SyntheticImageDataModule(num_train=96, num_heldout=32, image_size=8, batch_size=20,
                                  forget_fraction=0.25, augment=False)
    module = module_cls(net=MLP(in_features=192, num_classes=10, hidden=16, depth=1), lr=1e-12, momentum=0.0,
                        scheduler="none", log_distributions=False)
    net0 = MLP(in_features=192, num_classes=10, hidden=16, depth=1)
    net0.load_state_dict(module.net.state_dict())
    cb = TrainingDynamics(filename="dyn.npz")
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        enable_checkpointing=False, default_root_dir=tmp_path, callbacks=[cb])
    trainer.fit(module, dm)

    trained = dm.split.train if module_cls is Classifier else dm.split.retain
    with torch.no_grad():
        probs = torch.softmax(net0(dm.eval_transform(dm.arrays.train_x)), 1)
    y = dm.arrays.train_y
    expected_conf = probs[torch.arange(y.numel()), y].numpy()
    expected_hit = (probs.argmax(1) == y).numpy().astype(float)
    seen = np.zeros(y.numel(), dtype=bool)
    seen[trained.numpy()] = True
    np.testing.assert_array_equal(cb.count, np.where(seen, 3, 0))
    np.testing.assert_allclose(cb.confidence[seen], expected_conf[seen], rtol=1e-5)
    np.testing.assert_allclose(cb.accuracy[seen], expected_hit[seen])
    assert np.isnan(cb.confidence[~seen]).all()
    with np.load(tmp_path / "dyn.npz") as f:
        np.testing.assert_array_equal(f["index"], trained.numpy())
        np.testing.assert_allclose(f["confidence"], expected_conf[seen], rtol=1e-5)
        np.testing.assert_array_equal(f["count"], 3)


# ---- the command ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flipped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    """``unlearning memorise`` on the toy config, its data with :data:`FLIPPED` relabelled."""
    from unlearning.cli import main

    tmp = tmp_path_factory.mktemp("memorise")
    data = yaml.safe_load(TOY.read_text())["data"]
    data["class_path"] = f"{__name__}.FlippedSynthetic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorisationWarning)
        result = main(["memorise", "-c", str(TOY), "--data", json.dumps(data), "--cache_dir", str(tmp / "cache"),
                       "--output_dir", str(tmp / "out"), "--progress", "false"])
    return result, tmp / "cache", tmp / "out" / "toy"


def test_flipped_labels_get_the_highest_memorisation(flipped_run: tuple[dict, Path, Path]) -> None:
    result, _, out = flipped_run
    scores = load_scores(out)
    flipped = np.isin(scores["index"], FLIPPED)
    est = scores["estimate"]
    ok = np.isfinite(est)
    assert (flipped & ok).sum() >= 6, "too few flipped examples with an estimate to judge"
    # right when trained on them (the label was memorised), wrong otherwise (the true class wins)
    assert est[flipped & ok].mean() > 0.8
    assert est[flipped & ok].min() >= np.quantile(est[~flipped & ok], 0.9)
    # the cheap proxy sees it too: the original learns them last
    conf = scores["confidence_proxy"]
    assert conf[flipped].mean() > np.quantile(conf[~flipped], 0.9)
    assert result["spearman"]["confidence"] > 0.2


def test_memorise_writes_its_scores_and_reuses_its_models(flipped_run: tuple[dict, Path, Path]) -> None:
    result, cache, out = flipped_run
    assert result["n_models"] == 8 and result["timings"]["models_trained"] == 9  # 8 subsets + the original
    scores = load_scores(out / SCORES_FILE)
    n = scores["index"].size
    assert n == 400 and scores["members"].shape == scores["correct"].shape == (8, n)
    assert (scores["members"].sum(1) == 200).all()
    assert scores["in_forget"].sum() == 40
    # the simulated oracles' answers: a label above even odds is the prediction; members are surer
    lsc, members = scores["lsc"], scores["members"]
    assert lsc.shape == (8, n) and scores["val_lsc_mean"].shape == (8,) and np.isfinite(lsc).all()
    assert scores["correct"][lsc > 0].all() and lsc[members].mean() > lsc[~members].mean() + 0.5
    for key in ("label", "estimate", "confidence_proxy", "accuracy_proxy"):
        assert scores[key].shape == (n,)
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert set(summary["entanglement"]) == {"forget", "high_memorisation", "low_memorisation", "highest_loss",
                                            "lowest_loss", "near_centroid", "far_from_centroid"}
    assert all(0 < v < float("inf") for v in summary["entanglement"].values())
    assert (out / "memorisation.png").stat().st_size > 0 and (out / "memorisation_examples.png").stat().st_size > 0
    # each subset model is the oracle recipe with the left-out examples as its forget index file
    files = sorted((cache / "subsets").glob("forget-*.npy"))
    left_out = {tuple(scores["index"][~m]) for m in scores["members"]}
    assert {tuple(np.load(f)) for f in files} == left_out
    # a rerun trains nothing and writes the same scores
    data = dict(summary["config"]["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorisationWarning)
        again = run_memorise(data, **{k: summary["config"][k] for k in ("original", "oracle", "n_models", "cache_dir")},
                             output_dir=str(out.parent), name="again", progress=False, figures=False)
    assert again["timings"]["models_trained"] == 0
    assert again["setting_digest"] == summary["setting_digest"]
    np.testing.assert_array_equal(load_scores(out.parent / "again")["estimate"], scores["estimate"])


def test_memorise_writes_the_originals_loss_and_centroid_distance(flipped_run: tuple[dict, Path, Path]) -> None:
    """``original_loss`` and ``centroid_distance`` are the original's, example by example, in the
    file's order; a band scenario on them takes the highest- or lowest-loss examples; the
    examples nearest their class means (``centroid_quantile`` low) are the entangled set."""
    from unlearning.modules.checkpoint import load_net
    from unlearning.scoring.cached_model import score_datamodule

    result, cache, out = flipped_run
    scores = load_scores(out)
    (ckpt,) = cache.glob("original-*/seed-*/model.ckpt")
    net, _ = load_net(ckpt)
    dm = score_datamodule(result["config"]["data"])
    dm.setup("fit")
    rows = torch.from_numpy(scores["index"])
    labels = dm.arrays.train_y[rows]
    feats, logits = penultimate_outputs(net, [dm.arrays.train_x[rows]], dm.eval_transform)
    loss = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none").numpy()
    np.testing.assert_allclose(scores["original_loss"], loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores["centroid_distance"], centroid_distance(feats, labels), rtol=1e-5)
    np.testing.assert_allclose(scores["centroid_quantile"], within_class_quantile(scores["centroid_distance"], labels))
    # the flipped labels disagree with what the images show: the original fits them worst
    flipped = np.isin(scores["index"], FLIPPED)
    assert np.median(scores["original_loss"][flipped]) > np.quantile(scores["original_loss"][~flipped], 0.75)

    pool = torch.from_numpy(scores["index"])
    for band, pick in (("high", slice(-40, None)), ("low", slice(None, 40))):
        chosen = ScoreBandForget(str(out / SCORES_FILE), key="original_loss", band=band, fraction=0.1).select(
            dm.arrays.train_y, pool, [], torch.Generator())
        expected = np.sort(scores["index"][np.argsort(scores["original_loss"], kind="stable")[pick]])
        np.testing.assert_array_equal(chosen.numpy(), expected)
    ent = result["entanglement"]
    assert ent["near_centroid"] > 1.3 * ent["forget"] and ent["near_centroid"] > 1.3 * ent["far_from_centroid"]


@pytest.mark.parametrize("change, match", [
    ({"n_models": 1}, r"n_models must be an integer >= 2 \(models on random subsets\), got 1"),
    ({"subset_fraction": 1.5}, r"subset fraction must be in \(0, 1\), got 1.5"),
    ({"jobs": 0}, r"jobs must be an integer >= 1 \(trainings at once\), got 0"),
    ({"oracle": "nowhere.yaml"}, r"oracle config 'nowhere.yaml' does not exist"),
    ({"original": "nowhere.ckpt"}, r"original checkpoint 'nowhere.ckpt' does not exist"),
])
def test_memorise_refuses_a_bad_setting(tmp_path: Path, change: dict, match: str) -> None:
    cfg = yaml.safe_load(TOY.read_text())
    args = {k: cfg[k] for k in ("data", "original", "oracle", "n_models", "subset_fraction")}
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        run_memorise(**{**args, **change}, cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path), progress=False)
    assert not (tmp_path / "cache").exists()  # nothing trained


def test_load_scores_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"scores '.*nothing.npz' do not exist: expected the memorisation.npz"):
        load_scores(tmp_path / "nothing.npz")


def test_the_benchmark_writes_each_proxys_spearman(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("memorisation_cpu", REPO / "benchmarks" / "memorisation_cpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "memorisation_cpu.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorisationWarning)
        bench.main(["--config", str(TOY), "--root", "", "--n_models", "3", "--epochs", "2", "--cache_dir",
                    str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert summary["n_models"] == 3 and summary["models_trained"] == 4
    assert set(summary["proxies"]) == {"confidence", "accuracy"}
    assert all(-1 <= p["spearman"] <= 1 for p in summary["proxies"].values())
    # 400 images x 2 epochs for the original, 200 x 2 for each subset model, then 4 prediction passes
    assert summary["images_processed"] == 400 * 2 + 3 * 200 * 2 + 4 * 400
    assert summary["wall_s"] > 0


def test_a_resumed_fit_keeps_the_dynamics_of_its_checkpoint(tmp_path: Path) -> None:
    def fit(epochs: int, ckpt: str | None) -> TrainingDynamics:
        L.seed_everything(0)
        folder = tmp_path / ("resumed" if ckpt else f"{epochs}")
        dm = SyntheticImageDataModule(num_train=60, num_heldout=20, image_size=8, batch_size=20, augment=False)
        module = Classifier(net=MLP(in_features=192, num_classes=10, hidden=8, depth=1), lr=0.01, scheduler="none",
                            log_distributions=False)
        cb = TrainingDynamics(filename=None)
        L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=folder,
                  callbacks=[cb, L.pytorch.callbacks.ModelCheckpoint(folder, save_last=True)],
                  ).fit(module, dm, ckpt_path=ckpt)
        return cb

    whole = fit(3, None)
    fit(2, None)
    (tmp_path / "2").rename(tmp_path / "resumed")
    resumed = fit(3, str(tmp_path / "resumed" / "last.ckpt"))
    np.testing.assert_array_equal(resumed.count, 3)
    np.testing.assert_allclose(resumed.confidence, whole.confidence, rtol=1e-6)


def test_a_checkpoint_original_gives_the_estimate_without_proxies(flipped_run: tuple[dict, Path, Path]) -> None:
    result, cache, out = flipped_run
    config = result["config"]
    (ckpt,) = cache.glob("original-*/seed-*/model.ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorisationWarning)
        again = run_memorise(config["data"], str(ckpt), config["oracle"], n_models=config["n_models"],
                             cache_dir=str(cache), output_dir=str(out.parent), name="from_ckpt", progress=False,
                             figures=False)
    assert again["timings"]["models_trained"] == 0
    assert again["spearman"] == {"confidence": None, "accuracy": None}
    assert again["entanglement"]["forget"] == pytest.approx(result["entanglement"]["forget"])
    scores = load_scores(out.parent / "from_ckpt")
    assert np.isnan(scores["confidence_proxy"]).all()
    np.testing.assert_array_equal(scores["estimate"], load_scores(out)["estimate"])


def test_simulated_oracle_target_reads_only_models_that_did_not_train_on_the_example() -> None:
    # 3 models, 3 examples; a model that trained on an example is sure of it (10)
    members = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1]], dtype=bool)
    lsc = np.where(members, 10.0, np.array([[-1.0, -2.0, 0.0], [-3.0, -4.0, 0.0], [-5.0, 0.0, 0.0]]))
    target = simulated_oracle_target(members, lsc, np.array([0.5, 1.5, 2.5]), 2.0)  # val gap 2.0 - 1.5
    # example 0: models 1, 2 (-3, -5); example 1: models 0, 1 (-2, -4); example 2: seen by all, so all three
    np.testing.assert_allclose(target, [-4.0 + 0.5, -3.0 + 0.5, 10.0 + 0.5])
    with pytest.raises(ValueError, match="val_lsc_mean K"):
        simulated_oracle_target(members, lsc, np.zeros(2), 0.0)
