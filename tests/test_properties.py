"""Property-based tests (hypothesis) where the input space is large: split specs, seed ranges,
the epsilon metric's degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unlearning.data.splits import make_split
from unlearning.metrics.forgetting import per_example_epsilon
from unlearning.scoring import parse_seed_range

CLASSES = tuple(f"c{i}" for i in range(10))
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(n=st.integers(20, 600), frac=st.floats(0.01, 0.95), subset=st.one_of(st.none(), st.integers(2, 600)),
       heldout=st.integers(2, 300), seed=st.integers(0, 2**31 - 1))
def test_random_forget_splits_partition_the_pool(n: int, frac: float, subset: int | None, heldout: int, seed: int) -> None:
    assume(subset is None or subset <= n)
    labels = torch.arange(n) % 10
    pool_size = subset if subset is not None else n
    k = round(frac * pool_size)
    if k == 0 or k == pool_size:
        with pytest.raises(ValueError):
            make_split(labels, heldout, CLASSES, forget_fraction=frac, train_subset=subset, seed=seed)
        return
    s = make_split(labels, heldout, CLASSES, forget_fraction=frac, train_subset=subset, seed=seed)
    retain, forget = set(s.retain.tolist()), set(s.forget.tolist())
    assert len(forget) == k == s.forget.numel() and len(retain) == pool_size - k == s.retain.numel()
    assert not retain & forget and all(0 <= i < n for i in retain | forget)
    val, test = set(s.val.tolist()), set(s.test.tolist())
    assert not val & test and val | test == set(range(heldout))
    again = make_split(labels, heldout, CLASSES, forget_fraction=frac, train_subset=subset, seed=seed)
    assert torch.equal(again.forget, s.forget) and torch.equal(again.val, s.val)  # a pure function


@FAST
@given(classes=st.sets(st.integers(0, 9), min_size=1, max_size=9), n=st.integers(20, 400))
def test_class_splits_forget_exactly_those_classes(classes: set[int], n: int) -> None:
    labels = torch.arange(n) % 10
    s = make_split(labels, 10, CLASSES, forget_classes=sorted(classes))
    assert set(labels[s.forget].tolist()) == classes
    assert not set(labels[s.retain].tolist()) & classes
    assert s.forget.numel() + s.retain.numel() == n


@FAST
@given(a=st.integers(0, 500), length=st.integers(1, 500), stop=st.integers(1, 1000))
def test_seed_ranges(a: int, length: int, stop: int) -> None:
    b = a + length
    assert parse_seed_range(f"{a}:{b}", stop) == range(a, b)
    assert parse_seed_range(str(a), stop) == range(a, a + 1)
    assert parse_seed_range(f"{a}:", max(stop, a + 1)) == range(a, max(stop, a + 1))
    with pytest.raises(ValueError, match="seeds must"):
        parse_seed_range(f"{b}:{a}", stop)


finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)


@FAST
@given(values=st.lists(finite, min_size=4, max_size=12), seed=st.integers(0, 1000))
def test_epsilon_of_a_sample_against_itself_is_zero_and_order_free(values: list[float], seed: int) -> None:
    p = np.asarray(values, dtype=np.float64)
    assume(p.max() - p.min() > 1e-3)
    same = per_example_epsilon(p[None, :], p[None, :])
    assert same[0] == 0.0  # no attack tells a sample from itself
    q = np.random.default_rng(seed).permutation(p)
    assert per_example_epsilon(p[None, :], q[None, :])[0] == 0.0  # the order of the models is irrelevant


@FAST
@given(values=st.lists(finite, min_size=4, max_size=12), shift=st.floats(-5, 5), seed=st.integers(0, 1000))
def test_epsilon_is_symmetric_and_bounded(values: list[float], shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.asarray(values, dtype=np.float64)
    q = rng.permutation(p) + shift + rng.normal(0, 0.1, p.size)
    e_pq, e_qp = per_example_epsilon(p[None], q[None])[0], per_example_epsilon(q[None], p[None])[0]
    assert e_pq == e_qp and 0.0 <= e_pq <= 50.0


@FAST
@given(c=finite, d=finite, n=st.integers(3, 12), values=st.lists(finite, min_size=12, max_size=12))
def test_degenerate_samples_score_the_cap(c: float, d: float, n: int, values: list[float]) -> None:
    """Both samples constant, or one constant and the other spread: epsilon is 50 (docs/metrics.md)."""
    const_p, const_q = np.full((1, n), c), np.full((1, n), d)
    assert per_example_epsilon(const_p, const_q)[0] == 50.0
    spread = np.asarray(values[:n], dtype=np.float64)[None]
    assume(spread.max() - spread.min() > 0.5)
    assert per_example_epsilon(const_p, spread)[0] == 50.0
    assert per_example_epsilon(spread, const_p)[0] == 50.0
