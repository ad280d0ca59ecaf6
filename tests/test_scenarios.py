"""Forget scenarios: each preset's size, disjointness and determinism, its bad specs, its use through
a data module's config, and the score's cache keying the files a scenario reads by content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO, quick_args, run_cli_here
from unlearning.cli import main
from unlearning.data import TwoCircles, make_split
from unlearning.data.scenarios import ClassForget, IndexForget, RandomForget, ScoreBandForget
from unlearning.scoring.cached_model import data_recipe

NAMES = [f"c{i}" for i in range(10)]
N = 2000


def labels() -> torch.Tensor:
    return torch.arange(N) % 10


def split(scenario, **kw):
    return make_split(labels(), 200, NAMES, forget_scenario=scenario, **kw)


def check_partition(s, pool_size: int = N) -> None:
    retain, forget = set(s.retain.tolist()), set(s.forget.tolist())
    assert not retain & forget and len(retain) + len(forget) == pool_size and forget


def scores_file(tmp_path: Path, values: np.ndarray, index: np.ndarray | None = None, key: str = "estimate") -> Path:
    path = tmp_path / "scores.npz"
    np.savez(path, index=np.arange(values.size) if index is None else index, **{key: values})
    return path


def test_random_forget_is_the_shorthand_and_deterministic() -> None:
    a = split(RandomForget(0.1), train_subset=1500, seed=3)
    b = make_split(labels(), 200, NAMES, forget_fraction=0.1, train_subset=1500, seed=3)
    assert torch.equal(a.forget, b.forget) and torch.equal(a.retain, b.retain)
    assert a.forget.numel() == 150
    check_partition(a, 1500)
    assert not torch.equal(split(RandomForget(0.1), seed=4).forget, split(RandomForget(0.1), seed=3).forget)


def test_class_forget_whole_partial_and_several_classes() -> None:
    whole = split(ClassForget(["c3"]))
    assert set(labels()[whole.forget].tolist()) == {3} and whole.forget.numel() == N // 10
    partial = split(ClassForget([3], share=0.25), seed=1)
    assert set(labels()[partial.forget].tolist()) == {3} and partial.forget.numel() == 50
    assert set(partial.forget.tolist()) < set(whole.forget.tolist())
    assert torch.equal(partial.forget, split(ClassForget([3], share=0.25), seed=1).forget)
    several = split(ClassForget(["c1", 7], share=0.5))
    assert torch.bincount(labels()[several.forget], minlength=10).tolist() == [0, 100, 0, 0, 0, 0, 0, 100, 0, 0]
    for s in (whole, partial, several):
        check_partition(s)


def test_index_forget_from_a_file_or_a_list_is_pinned_into_the_subset(tmp_path: Path) -> None:
    path = tmp_path / "idx.txt"
    path.write_text("7 1999 42")
    for scenario in (IndexForget(path=str(path)), IndexForget(indices=[42, 7, 1999])):
        s = split(scenario, train_subset=300)
        assert s.forget.tolist() == [7, 42, 1999]
        check_partition(s, 300)


@pytest.mark.parametrize("band", ["high", "low", "middle", "mixed"])
def test_score_band_forget_takes_its_band_of_the_pool(tmp_path: Path, band: str) -> None:
    rng = np.random.default_rng(0)
    values = rng.permutation(N).astype(np.float64)  # distinct scores: the ranks decide
    values[5] = np.nan  # unscored examples are never chosen
    path = scores_file(tmp_path, values)
    s = split(ScoreBandForget(str(path), band=band, fraction=0.1), train_subset=1000, seed=2)
    pool = torch.cat([s.retain, s.forget]).numpy()
    scored = pool[np.isfinite(values[pool])]
    ranks = np.argsort(np.argsort(values[scored]))  # 0 = lowest score of the pool
    chosen = ranks[np.isin(scored, s.forget.numpy())]
    k = 100
    assert chosen.size == k and 5 not in s.forget.tolist()
    if band == "high":
        assert chosen.min() == scored.size - k
    elif band == "low":
        assert chosen.max() == k - 1
    else:  # the middle: the examples whose scores are nearest the median of those it ranks
        ends = 33 if band == "mixed" else 0
        if band == "mixed":  # a third at each end
            assert (chosen < ends).sum() == ends and (chosen >= scored.size - ends).sum() == ends
        inner = (ranks >= ends) & (ranks < scored.size - ends)
        distance = np.abs(values[scored] - np.median(values[scored][inner]))
        picked = np.isin(scored, s.forget.numpy()) & inner
        assert picked.sum() == k - 2 * ends and distance[picked].max() <= distance[inner & ~picked].min()
    check_partition(s, 1000)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: RandomForget(1.5), "forget_fraction must be in (0, 1), got 1.5"),
        (lambda p: ClassForget(["c1"], share=0.0), "share must be in (0, 1], got 0.0"),
        (lambda p: ClassForget([]), "classes must name at least one class"),
        (lambda p: split(ClassForget(["zebra"])), "unknown forget class 'zebra'"),
        (lambda p: IndexForget(), "IndexForget takes a path or indices"),
        (lambda p: split(IndexForget(indices=[1, 1])), "index 1 is listed more than once"),
        (lambda p: ScoreBandForget(str(p), band="top"), "band must be one of high, low, middle, mixed, got 'top'"),
        (lambda p: ScoreBandForget(str(p), fraction=1.0), "fraction must be in (0, 1), got 1.0"),
        (lambda p: split(ScoreBandForget(str(p.with_name("none.npz")))), "does not exist"),
        (lambda p: split(ScoreBandForget(str(p), key="confidence_proxy")), "has no 'confidence_proxy' array"),
        (lambda p: split(ScoreBandForget(str(p), fraction=0.5)), "scores 40 of the 2000 examples in use"),
    ],
)
def test_bad_scenarios_get_one_line_errors(tmp_path: Path, make, message: str) -> None:
    path = scores_file(tmp_path, np.arange(40, dtype=np.float64))
    with pytest.raises(ValueError) as err:
        make(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_data_module_takes_a_scenario_from_its_config(tmp_path: Path) -> None:
    cfg = tmp_path / "data.yaml"
    cfg.write_text(json.dumps({"data": {"class_path": "TwoCircles", "init_args": {
        "num_train": 200, "num_heldout": 100,
        "forget_scenario": {"class_path": "ClassForget", "init_args": {"classes": [1], "share": 0.5}}}}}))
    main(["fit", "-c", str(REPO / "configs" / "toy" / "original.yaml"), "-c", str(cfg), *quick_args(tmp_path)])
    dm = TwoCircles(num_train=200, num_heldout=100, forget_scenario=ClassForget([1], share=0.5))
    dm.setup()
    assert set(dm.arrays.train_y[dm.split.forget].tolist()) == {1} and dm.split.forget.numel() == 50
    assert dm.hparams["forget_scenario"]["init_args"] == {"classes": [1], "share": 0.5}
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "ClassForget" in saved and "share: 0.5" in saved
    r = run_cli_here("fit", "-c", str(REPO / "configs" / "toy" / "original.yaml"), "--data.init_args.forget_scenario",
                     "ClassForget", "--data.init_args.forget_scenario.classes", "[1]",
                     "--data.init_args.forget_classes", "[2]", *quick_args(tmp_path, "both"))
    assert r.returncode == 2 and "not both" in r.stderr.strip().splitlines()[-1]


def test_a_scenario_file_enters_the_cache_key_by_content(tmp_path: Path) -> None:
    idx = tmp_path / "idx.txt"
    idx.write_text("1 2 3")
    scores = scores_file(tmp_path, np.arange(10, dtype=np.float64))

    def key(**init) -> str:
        return json.dumps(data_recipe({"class_path": "TwoCircles", "init_args": init}), sort_keys=True)

    by_file = key(forget_index_file=str(idx))
    band = {"class_path": "ScoreBandForget", "init_args": {"scores_file": str(scores), "band": "high"}}
    by_scores = key(forget_scenario=band)
    idx.write_text("4 5 6")
    np.savez(scores, index=np.arange(10), estimate=-np.arange(10, dtype=np.float64))
    assert key(forget_index_file=str(idx)) != by_file and key(forget_scenario=band) != by_scores
    moved = tmp_path / "moved.txt"
    moved.write_text("4 5 6")
    assert key(forget_index_file=str(moved)) == key(forget_index_file=str(idx))  # the content, not the path
    with pytest.raises(ValueError, match="forget index file .*none.txt' does not exist"):
        key(forget_index_file=str(tmp_path / "none.txt"))


def test_rescoring_after_rewriting_the_index_file_trains_new_models(tmp_path: Path) -> None:
    """The bug this fixes: the same path with other indices gave the old score, 0 models trained."""
    idx = tmp_path / "idx.txt"
    idx.write_text(" ".join(str(i) for i in range(0, 40, 2)))
    args = ["score", "-c", str(REPO / "configs" / "score" / "toy.yaml"), "--n_models", "2", "--progress", "false",
            "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"),
            "--data.init_args.forget_index_file", str(idx)]
    first = main(args)
    idx.write_text(" ".join(str(i) for i in range(1, 41, 2)))
    second = main(args)
    assert second["timings"]["models_trained"] >= 6  # 4 oracles and 2 method runs: the original is shared
    assert first["cache"]["oracle"] != second["cache"]["oracle"] and first["cache"]["method"] != second["cache"]["method"]
