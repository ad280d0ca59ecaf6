"""Split invariants: disjoint, covering, deterministic, rank-independent; bad specs fail early."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from unlearning.data.splits import make_split

CLASSES = tuple(f"c{i}" for i in range(10))


def labels(n: int = 1000) -> torch.Tensor:
    return torch.arange(n) % 10


@pytest.mark.parametrize(
    "spec",
    [
        {"forget_fraction": 0.1},
        {"forget_fraction": 0.3, "train_subset": 400},
        {"forget_classes": [3, "c5"]},
        {"forget_classes": ["c1"], "train_subset": 300},
        {"forget_index": [5, 1, 999, 0]},
        {"forget_index": [5, 1, 999, 0], "train_subset": 50},
    ],
)
def test_split_is_disjoint_covering_and_deterministic(spec: dict) -> None:
    y = labels()
    a = make_split(y, 100, CLASSES, seed=3, **spec)
    b = make_split(y, 100, CLASSES, seed=3, **spec)
    for part in ("retain", "forget", "val", "test"):
        assert torch.equal(getattr(a, part), getattr(b, part)), part
    retain, forget = set(a.retain.tolist()), set(a.forget.tolist())
    assert retain.isdisjoint(forget) and forget
    n_pool = spec.get("train_subset", len(y))
    assert len(retain) + len(forget) == n_pool
    assert len(a.train) == n_pool and set(a.train.tolist()) == retain | forget
    assert set(a.val.tolist()).isdisjoint(a.test.tolist())
    assert sorted(a.val.tolist() + a.test.tolist()) == list(range(100))
    if "forget_classes" in spec:
        ids = {3, 5} if len(spec["forget_classes"]) == 2 else {1}
        assert set(y[a.forget].tolist()) == ids
        assert not set(y[a.retain].tolist()) & ids
    if "forget_index" in spec:
        assert forget == set(spec["forget_index"])
    if "forget_fraction" in spec:
        assert len(forget) == round(spec["forget_fraction"] * n_pool)


def test_seed_changes_random_forget_set_but_not_val_test() -> None:
    a = make_split(labels(), 100, CLASSES, seed=0)
    b = make_split(labels(), 100, CLASSES, seed=1)
    assert not torch.equal(a.forget, b.forget)
    assert torch.equal(a.val, b.val) and torch.equal(a.test, b.test)


def test_val_test_split_matches_starting_kit() -> None:
    """The kit: test, val = random_split(held_out, [0.5, 0.5], Generator().manual_seed(42))."""
    test, val = torch.utils.data.random_split(range(10000), [0.5, 0.5], generator=torch.Generator().manual_seed(42))
    s = make_split(labels(), 10000, CLASSES)
    assert s.test.tolist() == list(test.indices) and s.val.tolist() == list(val.indices)


def test_heldout_subset_draws_val_and_test_from_a_fixed_subset() -> None:
    full = make_split(labels(), 100, CLASSES)
    a = make_split(labels(), 100, CLASSES, heldout_subset=40, seed=0)
    b = make_split(labels(), 100, CLASSES, heldout_subset=40, seed=5)
    assert len(a.val) == len(a.test) == 20
    assert set(a.val.tolist()).isdisjoint(a.test.tolist())
    assert set(a.val.tolist()) | set(a.test.tolist()) < set(range(100))
    assert torch.equal(a.val, b.val) and torch.equal(a.test, b.test), "the subset follows val_test_seed only"
    assert torch.equal(a.forget, full.forget), "the training split does not change"
    whole = make_split(labels(), 100, CLASSES, heldout_subset=100)
    assert torch.equal(whole.val, full.val) and torch.equal(whole.test, full.test)


def test_data_module_passes_heldout_subset_to_the_split() -> None:
    from unlearning.data import SyntheticImageDataModule

    dm = SyntheticImageDataModule(num_train=64, num_heldout=64, heldout_subset=20)
    dm.setup()
    assert len(dm.stream_loader("val", train=False).indices) == 10
    assert len(dm.stream_loader("test", train=False).indices) == 10


@pytest.mark.slow  # about 20 s: two fresh interpreters
def test_split_does_not_depend_on_global_rng_or_rank() -> None:
    """Every DDP rank (a separate process with its own RANK and global seed) gets the same split."""
    code = (
        "import torch,sys; torch.manual_seed(int(sys.argv[1]));"
        "from unlearning.data.splits import make_split;"
        "s=make_split(torch.arange(500)%10, 60, [str(i) for i in range(10)], forget_fraction=0.2, train_subset=300, seed=7);"
        "print(s.forget.tolist(), s.retain.sum().item(), s.val.tolist())"
    )
    outs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
        outs.append(subprocess.run([sys.executable, "-c", code, str(100 + rank)], env=env,
                                   capture_output=True, text=True, check=True).stdout)
    assert outs[0] == outs[1] and outs[0].strip()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"forget_fraction": 0.0}, "forget_fraction must be in (0, 1), got 0.0"),
        ({"forget_fraction": 1.5}, "forget_fraction must be in (0, 1), got 1.5"),
        ({"forget_fraction": 0.0001, "train_subset": 100}, "empty forget set"),
        ({"forget_classes": ["zebra"]}, "unknown forget class 'zebra'"),
        ({"forget_classes": [10]}, "unknown forget class 10"),
        ({"forget_index": [1, 2, 1000]}, "forget index list: index 1000 (entry 2) is out of range"),
        ({"forget_index": [-1]}, "forget index list: index -1 (entry 0) is out of range"),
        ({"forget_index": [3, 4, 3]}, "forget index list: index 3 is listed more than once"),
        ({"forget_index": []}, "forget set would be empty"),
        ({"train_subset": 5000}, "train_subset must be in [2, 1000], got 5000"),
        ({"heldout_subset": 101}, "heldout_subset must be in [2, 100], got 101"),
        ({"heldout_subset": 1}, "heldout_subset must be in [2, 100], got 1"),
        ({"forget_classes": [1], "forget_index": [1]}, "not both"),
    ],
)
def test_bad_specs_raise_clear_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        make_split(labels(), 100, CLASSES, **spec)
    assert message in str(err.value)


def test_index_file_formats(tmp_path) -> None:
    from unlearning.data.splits import load_index_file

    np.save(tmp_path / "f.npy", np.array([4, 2, 9]))
    (tmp_path / "f.txt").write_text("4, 2\n9\n")
    assert load_index_file(tmp_path / "f.npy").tolist() == [4, 2, 9]
    assert load_index_file(tmp_path / "f.txt").tolist() == [4, 2, 9]
    (tmp_path / "bad.txt").write_text("4 two")
    with pytest.raises(ValueError, match="must hold integers"):
        load_index_file(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="does not exist"):
        load_index_file(tmp_path / "missing.npy")
