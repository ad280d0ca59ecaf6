"""``unlearning score``: the cache (reuse, resume after a kill, shards), the aggregation, the outputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli
from unlearning.cli import main
from unlearning.metrics.forgetting import final_score, forgetting_quality, per_example_epsilon
from unlearning.scoring import parse_seed_range
from unlearning.scoring.cache import RecipeCache
from unlearning.scoring.score import _score

TOY = str(REPO / "configs" / "score" / "toy.yaml")
N = 3  # 2N = 6 oracles, N = 3 method runs, 1 original: 10 toy models, about 1 s each


def _score_args(tmp: Path, *extra: str) -> list[str]:
    return [
        "score", "-c", TOY, "--n_models", str(N), "--progress", "false",
        "--cache_dir", str(tmp / "cache"), "--output_dir", str(tmp / "out"), *extra,
    ]


def _seed_dirs(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/seed-*"))


def test_seed_range() -> None:
    assert parse_seed_range(None, 8) == range(8)
    assert parse_seed_range("2:5", 8) == range(2, 5)
    assert parse_seed_range("3", 8) == range(3, 4)
    assert parse_seed_range("4:", 8) == range(4, 8)
    for bad in ("5:2", "a:b", "1:2:3", "-1:3"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seed_range(bad, 8)


def test_score_writes_everything_and_second_run_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    first = main(_score_args(tmp_path))
    assert first is not None
    assert first["timings"]["models_trained"] == 1 + 2 * N + N
    out = tmp_path / "out" / "finetune"
    # the command ends with its result and where the report is
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("unlearning score: F ") and f"final {first['final_score']:.3f}" in last and str(out) in last
    saved = json.loads((out / "score.json").read_text())
    conf_o, conf_u = np.load(out / "confidences_oracle.npy"), np.load(out / "confidences_unlearned.npy")
    e = saved["num_forget"]
    assert conf_o.shape == (e, 2 * N) and conf_u.shape == (e, N) and e == 20
    # The saved numbers are the metric of the saved confidences.
    assert np.array_equal(np.load(out / "epsilon.npy"), per_example_epsilon(conf_o[:, :N], conf_u))
    assert saved["forgetting_quality"] == pytest.approx(forgetting_quality(conf_o[:, :N], conf_u))
    assert saved["ceiling"] == pytest.approx(forgetting_quality(conf_o[:, :N], conf_o[:, N:]))
    assert saved["final_score"] == pytest.approx(
        saved["forgetting_quality"] * saved["retain_acc_ratio"] * saved["test_acc_ratio"]
    )
    assert set(saved["unlearned"]) >= {"retain_acc", "test_acc", "simple_mia", "mia_efficacy", "cost_time_fraction"}
    assert (out / "epsilon.png").stat().st_size > 5000 and (out / "confidences.png").stat().st_size > 5000
    assert saved["versions"]["torch"] and saved["config"]["n_models"] == N
    assert "| F | ceiling |" in (out / "report.md").read_text()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # TensorBoard's HPARAMS view: the method and N beside F, ceiling and final (tags the run logged)
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = EventMultiplexer({"score": str(out / "tensorboard")})
    mux.Reload()
    content = mux.PluginRunToTagToContent("hparams")["score"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["method"].string_value == "Finetune" and start.hparams["n_models"].number_value == N
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"score/final_score", "score/forgetting_quality", "score/ceiling"} <= tags
    assert tags <= set(mux.GetAccumulator("score").Tags()["scalars"])

    models = [d / "model.ckpt" for d in _seed_dirs(tmp_path / "cache")]
    assert len(models) == 10
    stamps = [m.stat().st_mtime_ns for m in models]
    second = main(_score_args(tmp_path))
    assert second["timings"]["models_trained"] == 0
    assert [m.stat().st_mtime_ns for m in models] == stamps
    assert second["forgetting_quality"] == first["forgetting_quality"]

    # A different method config is a different method cache; the oracles and the original are reused.
    third = main(_score_args(tmp_path, "--method_args", '["--model.init_args.lr", "0.01"]', "--name", "ft_lr01"))
    assert third["timings"]["models_trained"] == N


@pytest.mark.slow  # about 20 s: a score killed mid-way and run again
def test_killed_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = [sys.executable, "-m", "unlearning", *_score_args(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed as soon as 3 models are complete (however slow the machine; pytest-timeout guards a hang)
        while len(_seed_dirs(tmp_path / "cache")) < 3 and proc.poll() is None:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = _seed_dirs(tmp_path / "cache")
    assert 3 <= len(finished) < 10, "the run should have been killed mid-way"
    for d in finished:  # a seed folder exists only once complete
        assert {"model.ckpt", "record.json", "forget_lsc.npy"} <= {p.name for p in d.iterdir()}
    assert not (tmp_path / "out").exists()

    monkeypatch.chdir(REPO)
    result = main(_score_args(tmp_path))
    assert result["timings"]["models_trained"] == 10 - len(finished)
    assert not list((tmp_path / "cache").glob("*/.tmp-*")), "stale temporary folders of the killed run remain"


@pytest.mark.slow  # about 20 s: two shards of a score, then the whole
def test_seed_shards_fill_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(_score_args(tmp_path, "--seeds", "0:3")) is None  # original, oracles 0-2, methods 0-2
    assert len(_seed_dirs(tmp_path / "cache")) == 7
    assert not (tmp_path / "out").exists()
    last = main(_score_args(tmp_path, "--seeds", "3:6"))  # oracles 3-5: the cache is complete, it scores
    assert last is not None and last["timings"]["models_trained"] == 3
    assert main(_score_args(tmp_path))["timings"]["models_trained"] == 0


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--n_models", "1"], ValueError, "n_models must be >= 2"),
        (["--seeds", "4:2"], ValueError, "seeds must be"),
        (["--method", "configs/nope.yaml"], FileNotFoundError, "method config 'configs/nope.yaml' does not exist"),
        (["--original", "nope.ckpt"], FileNotFoundError, "original checkpoint 'nope.ckpt' does not exist"),
    ],
)
def test_bad_input_raises_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: type, message: str
) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(error, match=message.replace("(", r"\(")):
        main([*_score_args(tmp_path), *args])
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_bad_input_on_the_command_line_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli(*_score_args(tmp_path), "--seeds", "4:2")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "unlearning: error: seeds must be a non-empty range START:STOP with 0 <= START < STOP, got '4:2'"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def _fake_run(cache: RecipeCache, seed: int, lsc: np.ndarray, retain: float, test: float, cost: float,
              digest: str = "same") -> None:
    with cache.writing(seed) as tmp:
        np.save(tmp / "forget_lsc.npy", lsc)
        record = {
            "seed": seed,
            "metrics": {"retain_acc": retain, "test_acc": test, "forget_acc": 0.5, "simple_mia": 0.5,
                        "mia_efficacy": 0.5},
            "cost": {"train_time_s": cost, "images_seen": 100.0 * cost},
            "forget_index_digest": digest,
        }
        (tmp / "record.json").write_text(json.dumps(record))


def test_aggregation_by_hand(tmp_path: Path) -> None:
    """Oracles 0..N-1 are the reference, N..2N-1 the ceiling; accuracies averaged per group."""
    n, e = 4, 30
    rng = np.random.default_rng(0)
    oracles = RecipeCache(tmp_path, "oracle", {"r": 1})
    methods = RecipeCache(tmp_path, "method", {"m": 1})
    conf = rng.normal(0, 1, size=(e, 3 * n))
    for s in range(2 * n):
        _fake_run(oracles, s, conf[:, s], retain=0.9 if s < n else 0.5, test=0.8 if s < n else 0.4, cost=10.0)
    for s in range(n):
        _fake_run(methods, s, conf[:, 2 * n + s] + 3.0, retain=0.45, test=0.6, cost=2.5 if s else 3.5)
    result = _score([oracles.get(s) for s in range(2 * n)], [methods.get(s) for s in range(n)], n, 0.2)
    f = forgetting_quality(conf[:, :n], conf[:, 2 * n :] + 3.0)
    assert result["forgetting_quality"] == pytest.approx(f)
    assert result["ceiling"] == pytest.approx(forgetting_quality(conf[:, :n], conf[:, n : 2 * n]))
    assert result["retain_acc_ratio"] == pytest.approx(0.45 / 0.9)
    assert result["test_acc_ratio"] == pytest.approx(0.6 / 0.8)
    assert result["final_score"] == pytest.approx(final_score(f, 0.45, 0.9, 0.6, 0.8))
    assert result["ceiling_final_score"] == pytest.approx(result["ceiling"] * (0.5 / 0.9) * (0.4 / 0.8))
    cost = result["unlearned"]["cost_time_fraction"]
    assert cost["mean"] == pytest.approx((3.5 + 3 * 2.5) / 4 / 10.0) and cost["max"] == pytest.approx(0.35)
    assert result["over_cost_limit"] is True  # mean 0.275 > 0.2
    assert _score([oracles.get(s) for s in range(2 * n)], [methods.get(s) for s in range(n)], n, 0.3)[
        "over_cost_limit"
    ] is False


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "score").glob("*.yaml")), ids=lambda p: p.name)
def test_score_configs_parse_and_name_existing_configs(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearning.scoring.cli import score_parser
    from unlearning.scoring.cached_model import load_stage_config

    monkeypatch.chdir(REPO)
    cfg = score_parser().parse_args(["-c", str(config)])
    assert cfg.n_models >= 2 and cfg.data.class_path
    for what in ("oracle", "original", "method"):
        load_stage_config(cfg[what], what)


def test_atomic_path_leaves_the_old_file_on_error(tmp_path: Path) -> None:
    from unlearning.utils import atomic_path

    target = tmp_path / "score.json"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


@pytest.mark.slow  # about 30 s
def test_an_amortised_stage_is_trained_once_per_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hypernetwork of HypernetUnlearn is trained once, cached like the original, given to
    every run, reused by a second configuration, and its cost reported apart."""
    import torch

    from unlearning.methods.hypernet import load_hypernet, weights_digest

    monkeypatch.chdir(REPO)
    hyper = ["--method", "configs/toy/unlearn/hypernet.yaml", "--stages.hypernet", "configs/toy/hypernet.yaml"]
    with pytest.raises(ValueError, match="needs its one-time stage 'hypernet'"):
        main(_score_args(tmp_path, "--method", "configs/toy/unlearn/hypernet.yaml"))
    with pytest.raises(ValueError, match="has no one-time stage 'hypernet'"):
        main(_score_args(tmp_path, "--stages.hypernet", "configs/toy/hypernet.yaml"))
    first = main(_score_args(tmp_path, *hyper))
    assert first is not None and first["timings"]["models_trained"] == 1 + 2 * N + 1 + N
    (stage_dir,) = sorted((tmp_path / "cache").glob("stage-*/seed-*"))
    digest = weights_digest(load_hypernet(str(stage_dir / "model.ckpt"))[0])
    runs = sorted((tmp_path / "cache").glob("method-*/seed-*"))
    assert len(runs) == N
    for run in runs:  # every run was answered by that one hypernetwork
        hparams = torch.load(run / "model.ckpt", weights_only=True)["hyper_parameters"]
        assert hparams["hypernet_digest"] == digest
    st = first["stages"]["hypernet"]
    assert st["cost"]["train_time_s"] > 0 and st["cost"]["images_seen"] == 200 + 100  # train and val points, once
    assert st["cost_time_fraction"] == pytest.approx(st["cost"]["train_time_s"] / first["oracle_cost"]["train_time_s"])
    saved = json.loads((tmp_path / "out" / "hypernet" / "score.json").read_text())
    assert saved["stages"]["hypernet"]["cache"] == stage_dir.parent.name
    assert "One-time stage `hypernet`" in (tmp_path / "out" / "hypernet" / "report.md").read_text()
    # another configuration of the method: new runs, the same stage
    second = main(_score_args(tmp_path, *hyper, "--name", "hypernet2", "--method_args",
                              '["--model.init_args.weight_noise", "0.2"]'))
    assert second is not None and second["timings"]["models_trained"] == N


def test_a_cache_mixing_forget_sets_is_refused(tmp_path: Path) -> None:
    """Models tested on different forget sets cannot be compared example by example."""
    n, e = 2, 5
    oracles, methods = RecipeCache(tmp_path, "oracle", {"r": 1}), RecipeCache(tmp_path, "method", {"m": 1})
    for s in range(2 * n):
        _fake_run(oracles, s, np.zeros(e), 0.9, 0.8, 1.0, digest="other" if s == 3 else "same")
    for s in range(n):
        _fake_run(methods, s, np.zeros(e), 0.9, 0.8, 1.0)
    runs = [oracles.get(s) for s in range(2 * n)], [methods.get(s) for s in range(n)]
    with pytest.raises(ValueError, match="not all tested on the same forget set"):
        _score(*runs, n, 0.2)
    _fake_run(oracles, 3, np.zeros(e), 0.9, 0.8, 1.0)  # the same seed written again: kept, not replaced
    with pytest.raises(ValueError, match="not all tested on the same forget set"):
        _score([oracles.get(s) for s in range(2 * n)], runs[1], n, 0.2)


#: a recipe as ``unlearning score`` builds it: a stage config, extra arguments and the data section
RECIPE = {
    "model": {"class_path": "Finetune", "init_args": {"lr": 0.1, "original": "a.ckpt", "oracle": "b.ckpt",
                                                     "log_distributions": True, "oracle_train_time_s": 3.0}},
    "trainer": {"max_epochs": 2, "logger": {"class_path": "TensorBoardLogger"}, "enable_progress_bar": True,
                "accelerator": "auto", "devices": 1, "callbacks": [], "log_every_n_steps": 20,
                "check_val_every_n_epoch": 1, "enable_checkpointing": True},
}
DATA = {"class_path": "CIFAR10DataModule", "init_args": {"root": "/data/a", "cache_dir": None, "train_subset": 4000,
                                                         "forget_fraction": 0.1, "split_seed": 0, "batch_size": 128,
                                                         "augment": False, "num_workers": 0}}


def _key(changes: dict[str, object]) -> str:
    """The cache key of RECIPE/DATA with dotted ``changes`` (``args`` for the extra arguments)."""
    import copy

    from unlearning.scoring.cache import recipe_key
    from unlearning.scoring.cached_model import stage_recipe

    cfg, data, args = copy.deepcopy(RECIPE), copy.deepcopy(DATA), []
    for path, value in changes.items():
        if path == "args":
            args = list(value)
            continue
        root, *keys = path.split(".")
        node = data if root == "data" else cfg[root]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return recipe_key(stage_recipe(cfg, args, data))


@pytest.mark.parametrize("change", [
    {"model.class_path": "SCRUB"}, {"model.init_args.lr": 0.2}, {"model.init_args.weight_decay": 0.0},
    {"trainer.max_epochs": 3}, {"trainer.max_steps": 10}, {"trainer.limit_train_batches": 5},
    {"trainer.precision": "bf16-mixed"}, {"trainer.gradient_clip_val": 1.0},
    {"data.class_path": "SyntheticImageDataModule"}, {"data.init_args.forget_fraction": 0.2},
    {"data.init_args.split_seed": 1}, {"data.init_args.train_subset": 3000}, {"data.init_args.batch_size": 64},
    {"data.init_args.augment": True}, {"data.init_args.forget_classes": ["cat"]},
    {"args": ["--trainer.max_epochs", "1"]},
], ids=lambda c: next(iter(c)))
def test_every_field_that_changes_a_model_changes_its_key(change: dict) -> None:
    assert _key(change) != _key({})


@pytest.mark.parametrize("change", [
    {"model.init_args.original": "c.ckpt"}, {"model.init_args.oracle": None}, {"model.init_args.log_distributions": False},
    {"model.init_args.oracle_train_time_s": 9.0}, {"trainer.logger": False}, {"trainer.enable_progress_bar": False},
    {"trainer.accelerator": "cpu"}, {"trainer.devices": 2}, {"trainer.callbacks": [{"class_path": "X"}]},
    {"trainer.log_every_n_steps": 1}, {"trainer.check_val_every_n_epoch": 5}, {"trainer.enable_checkpointing": False},
    {"data.init_args.root": "/elsewhere"}, {"data.init_args.cache_dir": "/tmp/c"}, {"data.init_args.num_workers": 4},
], ids=lambda c: next(iter(c)))
def test_cosmetic_fields_do_not_change_the_key(change: dict) -> None:
    assert _key(change) == _key({})


@pytest.mark.slow  # about 18 s: two originals, a method run from each
def test_a_method_run_is_keyed_by_its_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another original (here: a checkpoint given by path): the oracles are reused, the method's
    runs are not."""
    monkeypatch.chdir(REPO)
    first = main(_score_args(tmp_path, "--n_models", "2"))
    assert first is not None and first["timings"]["models_trained"] == 1 + 4 + 2
    other = sorted((tmp_path / "cache").glob("oracle-*/seed-0000/model.ckpt"))[0]
    second = main(_score_args(tmp_path, "--n_models", "2", "--original", str(other)))
    assert second is not None and second["timings"]["models_trained"] == 2
    assert second["cache"]["method"] != first["cache"]["method"] and second["cache"]["oracle"] == first["cache"]["oracle"]
    assert main(_score_args(tmp_path, "--n_models", "2", "--original", str(other)))["timings"]["models_trained"] == 0


@pytest.mark.slow  # about 30 s: two scores and the completion of cached entries
def test_klom_from_the_cached_margins_and_old_entries_are_completed_not_retrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearning.metrics.klom import klom

    monkeypatch.chdir(REPO)
    first = main(_score_args(tmp_path))
    cache = tmp_path / "cache"
    runs = sorted(cache.glob("method-*/seed-*")) + sorted(cache.glob("oracle-*/seed-*"))
    for group, name in (("retain", "retain_lsc.npy"), ("heldout", "heldout_lsc.npy")):
        o = np.stack([np.load(d / name) for d in sorted(cache.glob("oracle-*/seed-*"))[:N]], axis=1)
        u = np.stack([np.load(d / name) for d in sorted(cache.glob("method-*/seed-*"))], axis=1)
        assert first["klom"][group]["mean"] == pytest.approx(float(klom(o, u).mean()))
    assert first["klom"]["forget"]["examples"] == 20 and first["klom"]["heldout"]["examples"] == 100
    # the predictive attack is in every run's record and summarised
    records = [json.loads((d / "record.json").read_text()) for d in runs]
    pred = [r["metrics"]["predictive_mia"] for r in records[:N]]
    assert first["unlearned"]["predictive_mia"]["mean"] == pytest.approx(float(np.mean(pred)))
    # entries cached before the margins and the attack were kept: they are computed again, the
    # model is not retrained, and the metrics the entry had keep their values
    saved = {d: (np.load(d / "retain_lsc.npy"), np.load(d / "heldout_lsc.npy")) for d in runs[:2]}
    kept = {}
    for d in saved:
        (d / "retain_lsc.npy").unlink()
        (d / "heldout_lsc.npy").unlink()
    for d in runs[2:4]:
        rec = json.loads((d / "record.json").read_text())
        kept[d] = rec["metrics"].pop("predictive_mia")
        rec["metrics"]["simple_mia"] = 0.123  # a value the completion must not touch
        (d / "record.json").write_text(json.dumps(rec))
    again = main(_score_args(tmp_path))
    for d, value in kept.items():
        metrics = json.loads((d / "record.json").read_text())["metrics"]
        assert metrics["predictive_mia"] == pytest.approx(value, abs=1e-9) and metrics["simple_mia"] == 0.123
    assert again["timings"]["models_trained"] == 0
    for d, (retain, heldout) in saved.items():
        np.testing.assert_allclose(np.load(d / "retain_lsc.npy"), retain, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.load(d / "heldout_lsc.npy"), heldout, rtol=1e-5, atol=1e-5)
    assert again["klom"]["retain"]["mean"] == pytest.approx(first["klom"]["retain"]["mean"], rel=1e-4)


def test_a_recipe_key_ignores_the_order_of_fields_and_takes_paths() -> None:
    """The same recipe written in another order is the same cache entry; values that are not JSON
    (a path) are keyed by their text. (Two mutants of recipe_key survived without this.)"""
    from unlearning.scoring.cache import recipe_key

    a = {"model": {"lr": 0.1, "alpha": 0.5}, "data": {"root": Path("x"), "train_subset": 10}}
    b = {"data": {"train_subset": 10, "root": Path("x")}, "model": {"alpha": 0.5, "lr": 0.1}}
    assert recipe_key(a) == recipe_key(b)
    assert recipe_key(a) != recipe_key({**a, "model": {"lr": 0.2, "alpha": 0.5}})


def test_completing_a_cached_entry_reproduces_its_test(tmp_path: Path) -> None:
    """A cached entry that lacks its margins and the predictive attack (written before they were
    kept) is evaluated once more without a Trainer: what it gets back equals what its own test
    measured."""
    from unlearning.scoring.cache import CachedRun, MARGIN_FILES, RECORD_FILE
    from unlearning.scoring.cached_model import complete_evaluation, needs_completion, score_datamodule

    main(_score_args(tmp_path))
    (entry,) = sorted((tmp_path / "cache").glob("method-*/seed-0000"))
    run = CachedRun(0, entry)
    record = json.loads((entry / RECORD_FILE).read_text())
    margins = {g: np.load(entry / MARGIN_FILES[g]) for g in ("retain", "heldout")}
    for g in margins:
        (entry / MARGIN_FILES[g]).unlink()
    stripped = {**record, "metrics": {k: v for k, v in record["metrics"].items() if k != "predictive_mia"}}
    (entry / RECORD_FILE).write_text(json.dumps(stripped))
    assert needs_completion(run)
    data = json.loads((tmp_path / "out" / "finetune" / "score.json").read_text())["config"]["data"]
    complete_evaluation(run, data, score_datamodule(data))
    assert not needs_completion(run)
    for g, before in margins.items():
        np.testing.assert_allclose(np.load(entry / MARGIN_FILES[g]), before, rtol=0, atol=1e-5)
    assert run.record()["metrics"] == pytest.approx(record["metrics"], abs=1e-9)
