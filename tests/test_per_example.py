"""The per-example view (``unlearning.scoring.per_example`` and ``benchmarks/per_example_cpu.py``) on
fabricated cached runs: a leaderboard of the two-circles toy whose "bad" method leaves exactly the
most memorised forget examples unforgotten, and whose "good" method behaves like the oracles."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from unlearning.metrics import forgetting_points, per_example_epsilon, spearman
from unlearning.scoring.cache import LSC_FILE, RECORD_FILE
from unlearning.scoring.cached_model import _array_digest, score_datamodule
from unlearning.scoring.per_example import binned_medians, per_example_figure, per_example_study, pick_methods

N = 4  # models per method; 2N oracles
DATA = {"class_path": "TwoCircles", "init_args": {"num_train": 1000, "num_heldout": 100, "forget_fraction": 0.1,
                                                  "batch_size": 32}}
SCENARIOS = {"random": {"class_path": "RandomForget", "init_args": {"fraction": 0.2}}}


def _forget() -> np.ndarray:
    from unlearning.scoring.matrix import scenario_data

    dm = score_datamodule(scenario_data(DATA, SCENARIOS["random"]))
    dm.setup("fit")
    return dm.split.forget.numpy()


def _write_runs(root: Path, folder: str, margins: np.ndarray, digest: str) -> None:
    """Cache entries as the score leaves them: one seed folder per column of ``margins``."""
    for s in range(margins.shape[1]):
        path = root / folder / f"seed-{s:04d}"
        path.mkdir(parents=True)
        np.save(path / LSC_FILE, margins[:, s])
        (path / RECORD_FILE).write_text(json.dumps({"forget_index_digest": digest, "metrics": {}, "cost": {}}))


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cache, the leaderboard folder and the scores file of a made-up matrix's random scenario."""
    tmp = tmp_path_factory.mktemp("per_example")
    forget = _forget()
    rng = np.random.default_rng(0)
    mem = np.zeros(1000)
    mem[forget] = rng.uniform(0, 1, forget.size)  # the estimate of each training example
    m = mem[forget]
    # the oracles scored against, then the ceiling's (shifted: taking them instead changes every epsilon)
    oracle = np.concatenate([rng.normal(0, 1, (forget.size, N)), rng.normal(5, 1, (forget.size, N))], axis=1)
    good = rng.normal(0, 1, (forget.size, N))
    bad = rng.normal(0, 1, (forget.size, N)) + 6 * m[:, None] ** 2  # the more memorised, the less forgotten
    digest = _array_digest(forget)
    cache = tmp / "cache"
    _write_runs(cache, "oracle-o", oracle, digest)
    margins = {"good": good, "bad": bad, "pricey": good, "good (variant)": bad}
    for name, arr in margins.items():
        _write_runs(cache, f"method-{name[:4]}{len(name)}", arr, digest)
    f = {name: float(forgetting_points(per_example_epsilon(oracle[:, :N], arr), N).mean()) for name, arr in margins.items()}
    rows = [{"method": "good", "relative_forgetting": 0.9, "over_cost_limit": False},
            {"method": "bad", "relative_forgetting": 0.2, "over_cost_limit": False},
            {"method": "pricey", "relative_forgetting": 1.5, "over_cost_limit": True},
            {"method": "good (variant)", "relative_forgetting": 0.1, "over_cost_limit": False}]
    board = {"n_models": N, "seed_base": 0, "rows": rows,
             "config": {"data": DATA, "scenarios": SCENARIOS, "variants": {"good (variant)": ["good"]}},
             "methods": {name: {"forgetting_quality": f[name], "relative_forgetting": 0.5,
                                "cache": {"dir": "elsewhere", "oracle": "oracle-o", "method": f"method-{name[:4]}{len(name)}",
                                          "original": "original-x"}} for name in margins}}
    (tmp / "board" / "random").mkdir(parents=True)
    (tmp / "board" / "random" / "leaderboard.json").write_text(json.dumps(board))
    index = np.arange(1000)
    np.savez(tmp / "scores.npz", index=index, estimate=mem, confidence_proxy=-mem, in_forget=np.isin(index, forget))
    # a scores file of another split: the forget set must come from the data module
    np.savez(tmp / "other.npz", index=index, estimate=mem, in_forget=index < forget.size)
    return {"tmp": tmp, "forget": forget, "mem": m, "oracle": oracle, "margins": margins, "f": f}


def test_the_bad_methods_epsilon_follows_memorisation(fabricated: dict) -> None:
    tmp = fabricated["tmp"]
    summary, arrays = per_example_study(tmp / "board", tmp / "scores.npz", cache_dir=tmp / "cache")
    # best and worst within the cost limit; the variant and the method over the limit are left out
    assert {k: v["role"] for k, v in summary["methods"].items()} == {"good": "best", "bad": "worst"}
    assert summary["num_forget"] == fabricated["forget"].size and summary["forget_indices_from"] == "scores file"
    oracle, m = fabricated["oracle"], fabricated["mem"]
    for name in ("good", "bad"):
        margins = fabricated["margins"][name]
        np.testing.assert_allclose(arrays[name]["epsilon"], per_example_epsilon(oracle[:, :N], margins))
        np.testing.assert_allclose(arrays[name]["margin_gap"], margins.mean(1) - oracle[:, :N].mean(1))
        np.testing.assert_array_equal(arrays[name]["estimate"], m)  # each example's own score
        assert summary["methods"][name]["forgetting_quality"] == pytest.approx(fabricated["f"][name])
    bad, good = summary["methods"]["bad"]["spearman"], summary["methods"]["good"]["spearman"]
    assert bad["estimate"]["epsilon"] > 0.6 and bad["estimate"]["margin_gap"] > 0.8
    assert bad["confidence_proxy"]["margin_gap"] < -0.8  # the proxy given here is the estimate's negative
    assert abs(good["estimate"]["epsilon"]) < 0.25 and abs(good["estimate"]["margin_gap"]) < 0.25
    medians = summary["methods"]["bad"]["binned_medians"]["estimate"]["margin_gap"]
    assert len(medians) == 8 and sum(b["count"] for b in medians) == m.size
    assert medians[-1]["y_median"] > medians[0]["y_median"] + 3  # the line climbs
    assert (tmp / "board").is_dir() and not list((tmp / "cache").glob("original-*"))  # nothing trained


def test_the_forget_set_comes_from_the_data_when_the_scores_have_another_split(fabricated: dict) -> None:
    tmp = fabricated["tmp"]
    summary, arrays = per_example_study(tmp / "board", tmp / "other.npz", cache_dir=tmp / "cache",
                                        methods=["bad"])
    assert summary["forget_indices_from"] == "data module"
    assert summary["methods"]["bad"]["role"] == "chosen" and set(summary["methods"]) == {"bad"}
    np.testing.assert_array_equal(arrays["bad"]["estimate"], fabricated["mem"])
    assert "confidence_proxy" not in summary["methods"]["bad"]["spearman"]  # not in that file


def test_bad_input_is_named(fabricated: dict, tmp_path: Path) -> None:
    tmp = fabricated["tmp"]
    with pytest.raises(ValueError, match=r"leaderboard.json' does not exist: expected the output of unlearning "
                                         r"leaderboard with a scenario 'high'"):
        per_example_study(tmp / "board", tmp / "scores.npz", tmp / "cache", scenario="high")
    with pytest.raises(ValueError, match=r"cached model '.*oracle-o.seed-0000' does not exist"):
        per_example_study(tmp / "board", tmp / "scores.npz", tmp_path)
    with pytest.raises(ValueError, match=r"memorisation scores '.*none.npz' do not exist"):
        per_example_study(tmp / "board", tmp / "none.npz", tmp / "cache")
    with pytest.raises(ValueError, match=r"method 'nope' is not on the leaderboard"):
        pick_methods(json.loads((tmp / "board" / "random" / "leaderboard.json").read_text()), ["nope"])
    # a forget set that neither the scores file nor the data gives
    np.savez(tmp_path / "s.npz", index=np.arange(1000), estimate=np.zeros(1000))
    board = json.loads((tmp / "board" / "random" / "leaderboard.json").read_text())
    board["config"]["scenarios"]["random"]["init_args"]["fraction"] = 0.3
    (tmp_path / "b" / "random").mkdir(parents=True)
    (tmp_path / "b" / "random" / "leaderboard.json").write_text(json.dumps(board))
    with pytest.raises(ValueError, match="tested on another forget set than the leaderboard's data gives"):
        per_example_study(tmp_path / "b", tmp_path / "s.npz", tmp / "cache")


def test_binned_medians_share_ties_and_skip_missing_values() -> None:
    x = np.array([0.0, 0, 0, 0, 0, 1, 2, 3, 4, 5, np.nan])
    y = np.arange(11.0)
    bins = binned_medians(x, y, 4)
    assert [(b["x_lo"], b["x_hi"], b["count"]) for b in bins] == [(0, 0, 5), (1, 2, 2), (3, 5, 3)]
    assert [b["y_median"] for b in bins] == [2.0, 5.5, 8.0]
    even = binned_medians(np.arange(12.0), np.arange(12.0) * 2, 3)
    assert [b["count"] for b in even] == [4, 4, 4] and [b["y_median"] for b in even] == [3.0, 11.0, 19.0]
    assert binned_medians(np.ones(5), np.arange(5.0), 3) == [
        {"x_lo": 1.0, "x_hi": 1.0, "x_median": 1.0, "y_median": 2.0, "count": 5}]
    with pytest.raises(ValueError, match="bins must be >= 1, got 0"):
        binned_medians(x, y, 0)
    assert spearman(x[:-1], y[:-1]) > 0.8


def test_the_script_writes_its_json_and_figure(fabricated: dict, tmp_path: Path) -> None:
    tmp = fabricated["tmp"]
    spec = importlib.util.spec_from_file_location("per_example_cpu", REPO / "benchmarks" / "per_example_cpu.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "per_example_cpu.json"
    script.main(["--leaderboard_dir", str(tmp / "board"), "--cache_dir", str(tmp / "cache"), "--scores",
                 str(tmp / "scores.npz"), "--bins", "5", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved["methods"]) == {"good", "bad"} and saved["bins"] == 5
    for entry in saved["methods"].values():
        assert set(entry["spearman"]) == set(entry["binned_medians"]) == {"estimate", "confidence_proxy"}
        assert all(len(v) == 5 for v in entry["binned_medians"]["estimate"].values())
    assert out.with_suffix(".png").stat().st_size > 20000
    fig = per_example_figure(*per_example_study(tmp / "board", tmp / "scores.npz", tmp / "cache"))
    assert len(fig.axes) == 2 * 4  # a column per method, a row per quantity and measure
