"""Every UnlearnModule subclass: runs end to end, actually unlearns (and a method that only damages
the model or does nothing fails the same check), reloads standalone, and receives exactly the
streams it declares. A new algorithm is tested with no edit here (its CPU config gives its settings;
a one-time stage it declares in ``stages`` is trained for it)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from collections.abc import Callable
from typing import ClassVar

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

import unlearning.methods  # noqa: F401 - registers the built-in algorithms
from tests.conftest import REPO
from tests.synthetic import (
    CLASS_FORGET,
    NUM_FORGET,
    IndexedImages,
    datamodule,
    decode_indices,
    evaluate,
    reference_models,
    trainer,
)
from unlearning.data.splits import make_split
from unlearning.modules import Classifier, RetrainOracle, UnlearnModule, load_net
from unlearning.registry import module_class
from unlearning.nets import SmallCNN


def all_methods() -> list[type[UnlearnModule]]:
    found, todo = [], list(UnlearnModule.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("unlearning."):
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


#: Settings (init args, epochs) on the synthetic problem: 1,700 retain images in 27 batches instead
#: of 9,000 in 71 on the CPU preset, so fewer steps; some methods need larger ones to move at all.
#:
#: How they were chosen, so that a verdict holds on any CPU: the reference models are shipped
#: (``tests/fixtures/synthetic``), so every machine starts from the same weights, and what is left
#: to differ between machines is the method's own run. Its spread over vector units and thread
#: counts (``benchmarks/test_margins.py``: ``ATEN_CPU_CAPABILITY`` default / avx2 / avx512 x 1 / 2
#: threads, ``benchmarks/results/test_margins.json``) is at most 0.018 of margin (StreamingForget),
#: 0.004 or less for the others. Training seeds move a run far more than last bits do, so each setting below passes the
#: check under seeds 0, 1 and 2 (``unlearning_verdict``'s margin), and the comment gives the
#: smallest of the three margins; the test runs seed 0. The smallest margin over the six CPU
#: settings is 0.029 (CFk, spread 0.001); StreamingForget's is 0.037 (with ``match: pooled``; with
#: today's ``separate`` 0.045 to 0.052 under default / avx2 x 1 / 2 threads, seed 0).
SYNTHETIC_SETTINGS: dict[str, tuple[dict, int]] = {
    "Finetune": ({"lr": 0.08}, 4),  # 0.041 (lr 0.05 forgets nothing; 0.1: 0.022, retain lost)
    "NegGradPlus": ({"alpha": 0.7, "lr": 0.03}, 2),  # 0.035
    "RandomLabel": ({"lr": 0.02}, 3),  # 0.048
    "SCRUB": ({"lr": 0.01, "msteps": 2}, 3),  # 0.033
    "KLUniformContrastive": ({"forget_lr": 3e-3, "retain_lr": 0.03}, 2),  # 0.040 (retain_lr 0.05 fails)
    "GradientReinit": ({"lr": 0.05}, 3),  # 0.044
    "DiscriminatorUnlearn": ({"lr": 0.05, "distill_weight": 0.0, "adv_weight": 1.0}, 2),  # 0.057
    "RetainFreeDiscriminator": ({"lr": 0.03, "adv_weight": 2.0, "distill_weight": 1.0}, 10),  # 0.056 (12 epochs: 0.051)
    "StreamingForget": ({"request_size": 30, "steps_per_request": 10, "replay_size": 60, "lr": 0.005,
                         "anchor_weight": 5.0}, 1),  # 0.046
    "HypernetUnlearn": ({"weight_noise": 0.02, "lr": 0.002, "distill_weight": 10.0}, 2),  # 0.032
    "CFk": ({"k": 4, "lr": 0.15}, 4),  # 0.030
    "EUk": ({"k": 3, "lr": 0.1}, 6),  # 0.052
    "L1Sparse": ({"alpha": 5e-4, "lr": 0.08}, 4),  # 0.045 (the CPU preset's lr 0.1: 0.006)
    "JiT": ({"sigma": 1.0, "lr": 1.5e-3}, 1),  # no unlearning check (NO_UNLEARNING_CHECK)
}
# SalUn (0.030) and BadTeacher (0.038) run with their CPU-preset configs.

#: Methods judged on the class-forgetting variant of the problem (``tests.synthetic.CLASS_FORGET``:
#: all of class 0 forgotten) instead (init args, epochs; smallest margin over seeds 0-2): the
#: setting they were published for (UNSIR, Boundary Shrink; SSD's and LFSSD's papers report it too)
#: or, for gradient ascent, the one where it is known to work. None of them passed the check on the
#: random 15% robustly: their outcome depended on the original (nothing selected or forgotten on
#: some, retain accuracy lost on others). SSD reads no seed (its margin is the same under every
#: seed): it must pass over a factor of two of alpha (:data:`SSD_ALPHAS`; on the shipped original
#: 70-150 pass, 60 and 175 fail).
CLASS_FORGETTING: dict[str, tuple[dict, int]] = {
    "SSD": ({"alpha": 100.0, "dampening": 1.0}, 1),  # 0.059
    "LFSSD": ({"alpha": 4.0, "dampening": 4.0}, 1),  # 0.209 (the weaker check of NOT_SELECTIVE)
    "NegGrad": ({"lr": 0.02, "max_forget_loss": 0.5}, 2),  # 0.057 (lr 0.03: 0.042)
    "BoundaryShrink": ({"lr": 1.5e-3}, 2),  # 0.047
    "UNSIR": ({"noise_size": 128, "noise_steps": 20, "noise_per_batch": 32, "lr": 2e-3, "repair_lr": 5e-3}, 4),  # 0.043
}

#: SSD's efficacy must not hang on one alpha: it passes the check at each of these (a factor of two).
SSD_ALPHAS = (70.0, 140.0)

#: One-time stages (init args, max_steps) on the synthetic problem, for a stage without a shipped
#: checkpoint (the hypernetwork's is shipped: ``tests.synthetic.HYPERNET_STAGE``).
STAGE_SETTINGS: dict[str, tuple[dict, int]] = {}
#: Stages shipped with the reference models: ``class path -> name in tests.synthetic.reference_models()``.
SHIPPED_STAGES = {"unlearning.methods.hypernet.HypernetTrainer": "hypernet"}

#: The "actually unlearns" check. On the forget set, the method must close at least
#: ``MIN_CLOSED`` of the original's distance to the oracle on forget accuracy or on the simple MIA
#: (a do-nothing method closes 0); and it must keep retain and test accuracy within
#: ``RETAIN_SLACK`` and ``TEST_SLACK`` of the oracle's (a method that only adds noise to the
#: weights loses far more: the controls fail by 0.11-0.40 of margin, under every CPU setting measured).
MIN_CLOSED = 0.4
RETAIN_SLACK = 0.06
TEST_SLACK = 0.06

#: Methods that pass no setting of that check on either problem, and are held to a weaker one:
#: close ``MIN_CLOSED`` of a gap while keeping retain and test accuracy within ``TRADE_OFF_SLACK``
#: of the oracle's. LFSSD (on the class-forgetting variant) forgets class 0 at every setting that
#: selects anything, but loses 0.04-0.21 of retain accuracy doing so (alpha 4-6, dampening 1-4,
#: six originals); below alpha 4 it loses more, above 7 it selects nothing on some originals. On
#: that variant the ``NoiseOnly`` control fails this weaker check too.
NOT_SELECTIVE = frozenset({"LFSSD"})
TRADE_OFF_SLACK = 0.25

#: Methods without an "actually unlearns" check, and why: no setting was found whose outcome did not
#: depend on the original. JiT, swept at 11 settings (sigma 0.1-3, lr 5e-4-5e-3, 1-2 epochs) over
#: four to six originals on both problems, either changed nothing or lost 0.1-0.7 of retain
#: accuracy, which one depending on the original. Its mechanism (it reads only the forget set and
#: lowers the forget set's Lipschitz estimate) is tested in ``test_zero_shot_methods.py``, and the
#: leaderboard scores it as every method.
NO_UNLEARNING_CHECK = frozenset({"JiT"})


def cpu_preset_args(cls: type) -> tuple[dict, int]:
    """Init args and epochs for the synthetic test: the overrides above, else the method's
    CPU-preset config, else the class defaults."""
    for settings in (SYNTHETIC_SETTINGS, CLASS_FORGETTING):
        if cls.__name__ in settings:
            return settings[cls.__name__]
    for path in sorted((REPO / "configs" / "cpu" / "unlearn").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if module_class(cfg["model"]["class_path"]) is cls:
            args = {k: v for k, v in cfg["model"]["init_args"].items() if k not in ("original", "oracle")}
            return args, int(cfg["trainer"].get("max_epochs") or 2)
    return {}, 2


@pytest.fixture(scope="module")
def models(synthetic_models: dict[str, Path]) -> dict[str, Path]:
    """An original that memorised its training set (forget included) and a retrain oracle."""
    return synthetic_models


def train_stage(cls_path: str, original: Path, tmp: Path) -> Path:
    """Train a method's one-time stage (tiny settings) for ``original``; return its checkpoint."""
    module_name, _, name = cls_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    args, steps = STAGE_SETTINGS.get(name, ({}, 200))
    L.seed_everything(0)
    module = cls(original=str(original), **args)
    t = trainer(tmp, -1, max_steps=steps, enable_checkpointing=False, limit_val_batches=0)
    t.fit(module, datamodule())
    path = tmp / f"{name}.ckpt"
    t.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def stage_checkpoints(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every one-time stage some method declares for the synthetic original: shipped, or trained
    once here."""
    out = tmp_path_factory.mktemp("stages")
    paths: dict[str, Path] = {path: reference_models()[name] for path, name in SHIPPED_STAGES.items()}
    for cls in all_methods():
        for cls_path in cls.stages.values():
            if cls_path not in paths:
                paths[cls_path] = train_stage(cls_path, models["original"], out)
    return paths


def method_args(cls: type[UnlearnModule], stage_checkpoints: dict[str, Path]) -> dict[str, str]:
    """The stage checkpoints a method takes as init arguments."""
    return {arg: str(stage_checkpoints[cls_path]) for arg, cls_path in cls.stages.items()}


def references(models: dict[str, Path], tmp: Path, **data_kw) -> dict[str, dict[str, float]]:
    """The original's and the oracle's test metrics on a variant of the problem, after checking its
    premise: the original memorised the forget set, the oracle did not (on the class-forgetting
    variant the oracle's simple MIA is the higher: its forget losses are far above the test set's)."""
    orig = evaluate(Classifier.load_from_checkpoint(models["original"], map_location="cpu"), tmp, **data_kw)
    oracle = evaluate(RetrainOracle.load_from_checkpoint(models["oracle"], map_location="cpu"), tmp, **data_kw)
    assert orig["forget_acc"] > oracle["forget_acc"] + 0.15, (orig, oracle)
    assert abs(orig["simple_mia"] - oracle["simple_mia"]) > 0.08, (orig, oracle)
    return {"original": orig, "oracle": oracle}


@pytest.fixture(scope="module")
def reference(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    ref = references(models, tmp_path_factory.mktemp("orig_eval"))
    # on a random forget set the attack reads the original's memorisation: its MIA is the higher
    assert ref["original"]["simple_mia"] > ref["oracle"]["simple_mia"] + 0.08, ref
    return ref


@pytest.fixture(scope="module")
def class_reference(synthetic_class_models: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    return references(synthetic_class_models, tmp_path_factory.mktemp("class_eval"), **CLASS_FORGET)


def problem(request: pytest.FixtureRequest, class_forgetting: bool) -> tuple[dict, dict[str, Path], dict]:
    """``(data overrides, models, reference)`` of the random or the class-forgetting problem (the
    class oracle is trained only when a test needs it)."""
    if class_forgetting:
        return CLASS_FORGET, request.getfixturevalue("synthetic_class_models"), request.getfixturevalue("class_reference")
    return {}, request.getfixturevalue("models"), request.getfixturevalue("reference")


def unlearning_verdict(res: dict[str, float], ref: dict[str, dict[str, float]],
                       slack: tuple[float, float] = (RETAIN_SLACK, TEST_SLACK)) -> tuple[bool, str, float]:
    """Whether ``res`` (test metrics of an unlearned model) passes the "actually unlearns" check,
    why, and by how much (see :data:`MIN_CLOSED`); ``slack``: the retain and test slack (the
    trade-off check of :data:`NOT_SELECTIVE` is this with :data:`TRADE_OFF_SLACK`).

    The margin is the smallest of the check's three distances to its line: the share of a gap
    closed beyond :data:`MIN_CLOSED`, and the retain and test accuracy above the oracle's less the
    slack (in accuracy). Positive: passed by that much; negative: failed by that much.
    """
    retain_slack, test_slack = slack
    o, r = ref["original"], ref["oracle"]

    def closed(key: str) -> float:
        gap = abs(o[key] - r[key])
        return 1.0 - abs(res[key] - r[key]) / gap

    acc_closed, mia_closed = closed("forget_acc"), closed("simple_mia")
    margin = min(max(acc_closed, mia_closed) - MIN_CLOSED,
                 res["retain_acc"] - (r["retain_acc"] - retain_slack),
                 res["test_acc"] - (r["test_acc"] - test_slack))
    why = (f"closed {acc_closed:.2f} of the forget-accuracy gap and {mia_closed:.2f} of the MIA gap (need {MIN_CLOSED}); "
           f"retain acc {res['retain_acc']:.3f} (oracle {r['retain_acc']:.3f}, slack {retain_slack}), "
           f"test acc {res['test_acc']:.3f} (oracle {r['test_acc']:.3f}, slack {test_slack}); margin {margin:+.3f}")
    return margin >= 0, why, margin


class DoNothing(UnlearnModule):
    """Negative control: trains on nothing, returns the original unchanged."""

    train_streams = ("forget",)

    def training_step(self, batch, batch_idx):
        return None


class NoiseOnly(UnlearnModule):
    """Negative control: damages the original once with Gaussian noise (half of each parameter
    tensor's standard deviation), then does nothing."""

    train_streams = ("forget",)

    def on_train_start(self):
        with torch.no_grad():
            for p in self.net.parameters():
                if p.numel() > 1:
                    p.add_(0.5 * p.std() * torch.randn_like(p))

    def training_step(self, batch, batch_idx):
        return None


@pytest.mark.parametrize("class_forgetting", [False, True], ids=["random", "class"])
@pytest.mark.parametrize("control", [DoNothing, NoiseOnly], ids=lambda c: c.__name__)
def test_damage_and_doing_nothing_fail_the_unlearning_check(
    control: type[UnlearnModule], class_forgetting: bool, request: pytest.FixtureRequest, tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    data_kw, models, reference = problem(request, class_forgetting)
    L.seed_everything(0)
    module = control(original=str(models["original"]), oracle=str(models["oracle"]), log_distributions=False)
    trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule(**data_kw))
    res = evaluate(module, tmp_path, **data_kw)
    passed, why, margin = unlearning_verdict(res, reference)
    record_property("margin", -margin)  # how far from passing: the control's margin
    assert not passed, why
    r = reference["oracle"]
    if control is DoNothing:  # fails on forgetting, by the whole margin
        assert res["forget_acc"] == reference["original"]["forget_acc"], why
    else:  # fails on utility, by far more than the slack
        assert res["retain_acc"] < r["retain_acc"] - 2 * RETAIN_SLACK, why
    if class_forgetting:  # there even the weaker check of NOT_SELECTIVE tells noise from unlearning
        passed, why, margin = unlearning_verdict(res, reference, (TRADE_OFF_SLACK, TRADE_OFF_SLACK))
        record_property("trade_off_margin", -margin)
        assert not passed, why


def test_cost_counts_exactly_the_images_trained_on(tmp_path: Path) -> None:
    """Two epochs of the original see retain + forget twice; the oracle sees retain twice; the
    cost fractions are these counts' ratios, and the time fraction the measured times' ratio."""
    dm = datamodule()
    dm.setup()
    n_train, n_retain = 2000, 2000 - NUM_FORGET  # SYNTHETIC: 15% of 2,000 forgotten
    assert (len(dm.split.train), len(dm.split.retain)) == (n_train, n_retain)
    costs = {}
    for cls in (Classifier, RetrainOracle):
        module = cls(net=SmallCNN(width=4, hidden=16), log_distributions=False)
        trainer(tmp_path, 2, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule())
        costs[cls] = dict(module.cost)
    # batches of 64 with a final partial batch kept (the loader drops only one-example batches)
    assert costs[Classifier]["images_seen"] == 2 * n_train
    assert costs[RetrainOracle]["images_seen"] == 2 * n_retain
    module.set_reference(SmallCNN(width=4, hidden=16), cost=costs[Classifier])
    fractions = module.cost_scalars()
    assert fractions["cost_images_fraction"] == pytest.approx(0.85)
    t_oracle, t_original = costs[RetrainOracle]["train_time_s"], costs[Classifier]["train_time_s"]
    assert fractions["cost_time_fraction"] == pytest.approx(t_oracle / t_original)


def test_methods_are_found() -> None:
    names = {c.__name__ for c in all_methods()}
    assert {"Finetune", "NegGradPlus", "RandomLabel", "SCRUB", "KLUniformContrastive", "GradientReinit",
            "DiscriminatorUnlearn", "RetainFreeDiscriminator", "StreamingForget", "HypernetUnlearn"} <= names


@pytest.mark.parametrize("cls", all_methods(), ids=lambda c: c.__name__)
def test_method_unlearns_and_reloads_standalone(
    cls: type[UnlearnModule], request: pytest.FixtureRequest, stage_checkpoints: dict[str, Path], tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    data_kw, models, reference = problem(request, cls.__name__ in CLASS_FORGETTING)
    original = tmp_path / "original.ckpt"
    shutil.copy(models["original"], original)
    args, epochs = cpu_preset_args(cls)
    L.seed_everything(0)
    module = cls(original=str(original), oracle=str(models["oracle"]), log_distributions=False,
                 **method_args(cls, stage_checkpoints), **args)
    t = trainer(tmp_path, epochs, enable_checkpointing=False, limit_val_batches=0)
    dm = datamodule(**data_kw)
    requested: list[str] = []
    loader = dm.stream_loader
    dm.stream_loader = lambda name, *a, **kw: (requested.append(name), loader(name, *a, **kw))[1]  # type: ignore[method-assign]
    t.fit(module, dm)
    # it read no stream it did not declare (a retain-free method never touches retain)
    assert requested and set(requested) <= {*cls.train_streams, *cls.extra_streams}, requested
    res = evaluate(module, tmp_path, **data_kw)
    for key in ("retain_acc", "forget_acc", "val_acc", "test_acc", "simple_mia", "mia_efficacy", "oracle_forget_acc",
                "forget_acc_gap", "kl_to_oracle_forget", "cost_time_s", "cost_images", "cost_time_fraction"):
        assert key in res, sorted(res)
    assert res["cost_images"] > 0 and res["cost_time_s"] > 0

    if cls.__name__ not in NO_UNLEARNING_CHECK:
        slack = (TRADE_OFF_SLACK, TRADE_OFF_SLACK) if cls.__name__ in NOT_SELECTIVE else (RETAIN_SLACK, TEST_SLACK)
        passed, why, margin = unlearning_verdict(res, reference, slack)
        record_property("margin", margin)
        assert passed, why

    # the unlearned checkpoint stands alone: reload after the original (and any stage) file is gone
    ckpt = tmp_path / "unlearned.ckpt"
    t.save_checkpoint(ckpt)
    original.unlink()
    net, meta = load_net(ckpt)
    reloaded = cls.load_from_checkpoint(ckpt, map_location="cpu").eval()
    x = torch.randn(4, 3, 16, 16)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), module.net(x))
        torch.testing.assert_close(reloaded.net(x), module.net(x))
    assert meta["module"].endswith(cls.__name__) and meta["cost"]["images_seen"] > 0


@pytest.mark.parametrize("alpha", SSD_ALPHAS)
def test_ssd_unlearns_over_a_factor_of_two_of_alpha(
    alpha: float, request: pytest.FixtureRequest, tmp_path: Path, record_property: Callable[[str, object], None],
) -> None:
    """SSD's selection ``I_Df > alpha I_D`` cuts through the bulk of the importance ratios: a check
    passed at one alpha only would hang on the original's last bits. It passes at each end of a
    factor-of-two range."""
    data_kw, models, reference = problem(request, True)
    args, epochs = CLASS_FORGETTING["SSD"]
    module = unlearning.methods.SSD(original=str(models["original"]), oracle=str(models["oracle"]),
                                    log_distributions=False, **{**args, "alpha": alpha})
    trainer(tmp_path, epochs, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule(**data_kw))
    passed, why, margin = unlearning_verdict(evaluate(module, tmp_path, **data_kw), reference)
    record_property("margin", margin)
    assert passed, why


class _Recorder(UnlearnModule):
    """Records which examples the data module hands it, stream by stream."""

    seen: ClassVar[list[dict[str, list[tuple[bool, int]]]]] = []

    def training_step(self, batch, batch_idx):
        type(self).seen.append({k: decode_indices(v[0]) for k, v in batch.items()})
        x, y = next(iter(batch.values()))
        return F.cross_entropy(self(x), y)


@pytest.mark.parametrize("streams", [("forget",), ("retain",), ("train",), ("retain", "forget"), ("forget", "val")])
def test_module_receives_exactly_its_declared_streams(streams: tuple[str, ...], models: dict[str, Path], tmp_path: Path) -> None:
    """Each batch holds exactly the declared streams; every example under a stream's name belongs
    to that stream (so a retain-free method never sees a retain example); the longest stream is
    delivered whole in an epoch."""
    cls = type("Recorder", (_Recorder,), {"train_streams": streams, "seen": [], "__module__": __name__})
    module = cls(original=str(models["original"]), log_distributions=False)
    trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(module, IndexedImages(split_seed=3))
    split = make_split(torch.arange(500) % 10, 200, tuple(str(c) for c in range(10)), forget_fraction=0.2, seed=3)
    expected = {name: {(name in ("val", "test"), int(i)) for i in getattr(split, name)} for name in streams}
    assert cls.seen and all(set(b) == set(streams) for b in cls.seen)
    got = {name: [e for b in cls.seen for e in b[name]] for name in streams}
    for name in streams:
        assert set(got[name]) <= expected[name], f"{name}: examples from outside the stream"
    longest = max(streams, key=lambda n: len(expected[n]))
    assert set(got[longest]) == expected[longest]
    assert len(got[longest]) == len(expected[longest])  # once each


def test_undeclared_stream_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    class ForgetOnly(UnlearnModule):
        train_streams = ("forget",)

        def training_step(self, batch, batch_idx):
            return None

        def on_train_start(self):
            next(self.stream("retain"))

    with pytest.raises(ValueError, match="did not declare stream 'retain'"):
        trainer(tmp_path, 1, enable_checkpointing=False).fit(ForgetOnly(original=str(models["original"])), datamodule())


def test_missing_original_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        unlearning.methods.Finetune(original=str(tmp_path / "nope.ckpt"))
    with pytest.raises(ValueError, match="needs `original`"):
        unlearning.methods.Finetune()
