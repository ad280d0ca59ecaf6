"""Tests of the competition's forgetting quality (unlearning.metrics.forgetting).

The vectorised epsilon is checked, bit for bit, against a plain reference written below straight
from the definition (the docs' metrics page, "Per-example epsilon"): loops over examples, over family A thresholds and over family B right
ends, ``np.linspace`` for every threshold, and counts by direct comparison. Only the 400 left ends
of one right end are handled as one numpy array (a Python loop over them would take seconds per
example); each left end is still counted on its own by the plain ``l <= c <= r`` test.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from unlearning.metrics import forgetting
from unlearning.metrics.forgetting import (
    final_score,
    forgetting_points,
    forgetting_quality,
    per_example_epsilon,
)

D = 1e-5


# --------------------------------------------------------------------------------------------
# Reference implementation, loop by loop.


def attack_epsilons(k_pos: np.ndarray, k_neg: np.ndarray, n: int, delta: float = D) -> np.ndarray:
    """Epsilon of each attack from its counts; dropped attacks are NaN.

    k_pos of the n positive values and k_neg of the n negative values are predicted positive.
    """
    fpr = np.asarray(k_neg) / n
    fnr = (n - np.asarray(k_pos)) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        # A term whose log has a non-positive argument is ignored (NaN, skipped by fmax).
        term1 = np.where(1 - delta - fpr > 0, np.log(1 - delta - fpr) - np.log(fnr), np.nan)
        term2 = np.where(1 - delta - fnr > 0, np.log(1 - delta - fnr) - np.log(fpr), np.nan)
    eps = np.fmax(term1, term2)
    eps = np.where(np.isnan(eps), np.nan, np.maximum(eps, 0.0))  # floored at 0
    eps = np.where((fpr == 0) != (fnr == 0), np.nan, eps)  # exactly one zero: dropped
    return np.where((fpr == 0) & (fnr == 0), np.inf, eps)  # both zero: inf


def reference_epsilon(
    oracle: np.ndarray,
    unlearned: np.ndarray,
    delta: float = D,
    extra_thresholds: int = 0,
    extra_right_ends: int = 0,
) -> np.ndarray:
    """Per-example epsilon, as the definition words it. ``extra_*`` inject off-by-ones."""
    oracle = np.asarray(oracle, dtype=np.float64)
    unlearned = np.asarray(unlearned, dtype=np.float64)
    result = []
    for r_s, u_s in zip(oracle, unlearned):
        n = len(r_s)
        if np.median(r_s) > np.median(u_s):
            pos, neg = r_s, u_s
        else:
            pos, neg = u_s, r_s
        r_p = pos.max() - pos.min()
        r_q = neg.max() - neg.min()
        if min(r_p, r_q) < 0.01 * max(r_p, r_q) or (r_p == 0 and r_q == 0):
            result.append(50.0)
            continue
        # Per attack, how many of the positive / negative values are predicted positive.
        a_pos, a_neg = [], []

        # Family A: P is positive, predict positive when c >= t.
        lo = min(pos.min(), neg.min())
        hi = max(pos.max(), neg.max())
        for t in np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)) + extra_thresholds):
            a_pos.append(np.sum(pos >= t))
            a_neg.append(np.sum(neg >= t))
        counts_pos, counts_neg = [np.array(a_pos, dtype=int)], [np.array(a_neg, dtype=int)]

        # Family B: K is positive, predict K when l <= c <= r (400 left ends at a time).
        if r_p >= r_q:
            kk, oo = neg, pos
        else:
            kk, oo = pos, neg
        w = kk.max() - kk.min()
        a = kk.min() + w - 2
        b = kk.max() + 2
        for r in np.linspace(a, b, int(np.ceil((b - a) * 100)) + extra_right_ends):
            lefts = np.linspace(r - w - 2, r - w + 2, 400)
            counts_pos.append(np.sum((lefts[:, None] <= kk[None, :]) & (kk[None, :] <= r), axis=1))
            counts_neg.append(np.sum((lefts[:, None] <= oo[None, :]) & (oo[None, :] <= r), axis=1))

        eps = attack_epsilons(np.concatenate(counts_pos), np.concatenate(counts_neg), n, delta)
        best = float(np.nanmax(eps)) if not np.isnan(eps).all() else 0.0  # 0 if none survives
        result.append(min(max(best, 0.0), 50.0))
    return np.asarray(result)


# --------------------------------------------------------------------------------------------
# Inputs.


def random_inputs(seed: int, n_models: int, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-example random normals with random means and spreads (narrow to a few units)."""
    rng = np.random.default_rng(seed)
    shape = (n_examples, 1)
    mu_r, mu_u = rng.normal(1.0, 2.0, shape), rng.normal(1.0, 2.0, shape)
    sd_r = np.exp(rng.uniform(np.log(0.02), np.log(3.0), shape))
    sd_u = np.exp(rng.uniform(np.log(0.02), np.log(3.0), shape))
    r = mu_r + sd_r * rng.standard_normal((n_examples, n_models))
    u = mu_u + sd_u * rng.standard_normal((n_examples, n_models))
    return r, u


def _grid_linspace_case(rng: np.random.Generator, n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """Every value is one of family A's thresholds (np.linspace(lo, hi, n)), with ties."""
    lo, hi = sorted(rng.uniform(-2.0, 2.0, 2))
    grid = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    r = grid[rng.integers(0, len(grid), n_models)]
    u = grid[rng.integers(0, len(grid), n_models)]
    r[0], u[-1] = lo, hi
    return r, u


def _family_b_grid_case(rng: np.random.Generator, n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """The narrow sample K's inner values and the wide sample's values are family B ends."""
    k_min = rng.uniform(-1.0, 1.0)
    w = rng.uniform(0.3, 1.5)
    k_max = k_min + w
    w = k_max - k_min
    a, b = k_min + w - 2, k_max + 2
    rights = np.linspace(a, b, int(np.ceil((b - a) * 100)))
    inner = rights[(rights > k_min) & (rights < k_max)]
    kk = np.concatenate([[k_min, k_max], rng.choice(inner, n_models - 2)]) if n_models > 2 else np.array([k_min, k_max])
    ends = []
    for _ in range(n_models):
        r = rights[rng.integers(len(rights))]
        if rng.random() < 0.5:
            ends.append(r)
        else:
            ends.append(np.linspace(r - w - 2, r - w + 2, 400)[rng.integers(400)])
    oo = np.asarray(ends)
    oo[0], oo[-1] = k_min - 1.5, k_max + 1.5  # O is the wider sample, so K stays K
    rng.shuffle(kk)
    rng.shuffle(oo)
    return (kk, oo) if rng.random() < 0.5 else (oo, kk)


def _near_separated_case(rng: np.random.Generator, n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """P lies above Q with a gap under 0.01: whether an attack separates them depends on where
    exactly the thresholds and right ends fall."""
    gap = rng.uniform(0.0, 0.012)
    q = rng.uniform(-1.0, 0.0, n_models)
    q[0] = 0.0
    p = gap + rng.uniform(0.0, 1.5, n_models)
    p[0] = gap
    return p, q


def _end_point_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """N = 8 with a pooled range whose last linspace value must be set to ``hi`` exactly.

    ``lo + (n - 1) * s`` rounds above ``hi`` here, so a threshold formula without numpy's exact end
    point misses the sample values at ``hi`` (6 of P, 1 of Q: epsilon log 6, the best attack).
    """
    while True:
        lo, hi = rng.uniform(-2.0, 0.0), rng.uniform(0.5, 2.0)
        n = int(np.ceil((hi - lo) * 100))
        if lo + (n - 1) * ((hi - lo) / (n - 1)) > hi:
            break
    p = np.array([lo, lo + 0.3] + [hi] * 6)
    q = np.concatenate([[hi, hi - 0.001], rng.uniform(hi - 0.8, hi - 0.1, 6)])
    return p, q


def _last_left_end_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The best attack is family B's last left end (``stop``, set exactly by linspace) only.

    K (width w > 2) has 7 values in [stop, r] for the first right end r >= max(K); O has one
    value inside, one 0.001 below stop (inside for every other left end of r) and one 0.001
    above r (inside for every later right end): (7, 1) -> epsilon log 7, else at most log 6.
    """
    k_min = rng.uniform(-1.0, 1.0)
    k_max = k_min + rng.uniform(2.2, 3.0)
    w = k_max - k_min
    a, b = k_min + w - 2, k_max + 2
    rights = np.linspace(a, b, int(np.ceil((b - a) * 100)))
    r = rights[np.searchsorted(rights, k_max)]
    stop = np.linspace(r - w - 2, r - w + 2, 400)[-1]
    kk = np.array([k_min, stop, *np.linspace(stop, k_max, 7)[1:-1], k_max])
    oo = k_min - np.array([3.0, 2.5, 2.0, 1.5, 1.0])
    oo = np.concatenate([oo, [stop - 0.001, (stop + k_max) / 2 + 0.0011, r + 0.001]])
    return (kk, oo) if rng.random() < 0.5 else (oo, kk)


FAMILY_B_A_ROUNDING = (
    np.array(
        [
            0.47747916636462784, 0.036376409472397286, 0.036259081762577194, 0.3672034771415702,
            0.21682753729194615, 0.22685259994858775, 0.48249169769294864, 0.45742904105134463,
        ]
    ),
    np.array(
        [
            0.12660197338217172, 0.026351346815755683, 1.9824916976929488, -1.4637409182374228,
            -2.6604827728740146, -0.6252777258659485, 1.3194671018127024, 0.7281057327806679,
        ]
    ),
)


def _integer_range_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pooled range exactly 1.0, so (hi - lo) * 100 is the integer 100 (ceil differs from
    floor + 1), and a gap under 0.01 between Q (in [0, s]) and P (in [s + d, 1])."""
    split = rng.integers(20, 80) / 100
    gap = rng.uniform(0.0, 0.01)
    q = np.concatenate([[0.0, split], rng.uniform(0.0, split, 6)])
    p = np.concatenate([[split + gap, 1.0], rng.uniform(split + gap, 1.0, 6)])
    return p, q


EQUAL_MEDIANS_ORIENTED = [
    (
        np.array(
            [
                -1.0957165211718947, -0.8702754212428183, -0.4149257942839988, -0.11396929369874481,
                0.002018636353295629, 0.9298010050668453, 2.049099925915093,
            ]
        ),
        np.array(
            [
                -0.23494357092026685, -0.9891888341632533, -0.16544098371456872, -0.11396929369874481,
                0.5278858475762782, 5.46308404509453, 0.1447764301485343,
            ]
        ),
    ),
    (
        np.array(
            [
                -1.6334583335053745, -0.5751168052615034, -0.27034301401571786, -0.08716582459143903,
                0.07187810120571658, 0.24113631445995712, 2.5139418556677957,
            ]
        ),
        np.array(
            [
                -0.37282210279872496, -0.47654242851480527, -0.10724035786642835, -0.08716582459143903,
                4.216125757301469, 0.6081834501629224, 0.49186857134769707,
            ]
        ),
    ),
    (
        np.array(
            [
                -1.4443922407291492, -1.2929778197105142, -1.0376129318516767, -0.10497401018670231,
                -0.05058625582759644, 0.4083549452953956, 1.522093800369905,
            ]
        ),
        np.array(
            [
                -0.2530914413718445, -0.7860016974810083, -0.6112900949281358, -0.10497401018670231,
                2.4102837278685305, 1.0973064566677007, -0.019462630805015577,
            ]
        ),
    ),
]


def _equal_medians_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """N = 7, both medians exactly m, spreads and skews different."""
    r = np.sort(rng.normal(0.0, 1.0, 7))
    m = r[3]
    below = -rng.exponential(rng.uniform(0.05, 2.0), 3)
    above = rng.exponential(rng.uniform(0.05, 2.0), 3)
    u = m + np.concatenate([below, [0.0], above])
    return r, rng.permutation(u)


def adversarial_inputs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Named hard cases: (name, oracle rows, unlearned rows)."""
    rng = np.random.default_rng(1234)
    cases = []

    def add(name: str, rows: list[tuple[np.ndarray, np.ndarray]]) -> None:
        r = np.stack([np.asarray(r, float) for r, _ in rows])
        u = np.stack([np.asarray(u, float) for _, u in rows])
        cases.append((name, r, u))

    # Values on a 0.01 grid: many ties, pooled range a whole number of hundredths.
    add("grid_0.01", [(rng.integers(-60, 60, 8) / 100, rng.integers(-80, 40, 8) / 100) for _ in range(12)])
    add("grid_0.01_n3", [(rng.integers(-30, 30, 3) / 100, rng.integers(-30, 30, 3) / 100) for _ in range(12)])
    # Values that are family A thresholds, and values that are family B right or left ends.
    add("linspace_values", [_grid_linspace_case(rng, 8) for _ in range(10)])
    add("family_b_ends", [_family_b_grid_case(rng, 8) for _ in range(10)])
    add("family_b_ends_n16", [_family_b_grid_case(rng, 16) for _ in range(6)])
    # A row of the same kind (found by search) where a right end computed from
    # min(K) + (w - 2) instead of (min(K) + w) - 2, one ulp away, changes epsilon.
    add("family_b_a_rounding", [FAMILY_B_A_ROUNDING])
    # Gaps under 0.01 between the samples, and numpy's exact end point.
    add("near_separated", [_near_separated_case(rng, 8) for _ in range(24)])
    add("end_point", [_end_point_case(rng) for _ in range(12)])
    add("integer_range", [_integer_range_case(rng) for _ in range(40)])
    add("last_left_end", [_last_left_end_case(rng) for _ in range(6)])
    # Equal medians, different samples: U is the positive sample (R only when its median is
    # larger). Mostly the orientation makes no difference; in the three literal rows it does.
    add("equal_medians", [_equal_medians_case(rng) for _ in range(6)] + EQUAL_MEDIANS_ORIENTED)
    # Identical samples.
    add("identical", [(x, x.copy()) for x in (rng.normal(0, 1, 8) for _ in range(4))])
    # Degenerate ranges: one constant, both constant (equal or not), a ratio just under/over 1%.
    add("one_constant", [(np.full(8, 0.3), rng.normal(0, 1, 8)), (rng.normal(0, 1, 8), np.full(8, -2.0))])
    add("both_constant", [(np.full(8, 1.0), np.full(8, 1.0)), (np.full(8, 1.0), np.full(8, 2.0))])
    # Range ratio just under, just over and exactly 1%; the narrow sample starts on a value of the
    # wide one, so no attack separates them.
    base = np.linspace(0.0, 1.0, 8)
    add("one_percent", [(base, base * f + base[3]) for f in (0.0099, 0.0101, 0.01)])
    # Ranges exactly 0.01 and 1.0 (0.01 < 0.01 * 1.0 is false: not degenerate), and ranges with
    # r_min < 0.01 * r_max true but r_min / r_max < 0.01 false (rounding): degenerate, as the
    # spec writes the rule.
    r_max = 0.3803647443400834
    r_min = 0.0038036474434008337
    add(
        "one_percent_exact",
        [
            ([0.0, 0.01, 0.002, 0.004, 0.006, 0.008, 0.005, 0.003], [-0.5, 0.5, 0.001, 0.0045, 0.0095, -0.2, 0.3, 0.1]),
            (
                [0.0, r_min, r_min / 2, r_min / 4, r_min / 3, r_min / 5, r_min / 6, r_min / 7],
                [0.0, r_max, 0.001, 0.002, 0.1, 0.2, 0.3, 0.0015],
            ),
        ],
    )
    # Fully separated (inf, clipped to 50) and one-sided overlaps (FPR = 0 or FNR = 0 attacks).
    add("separated", [(rng.normal(5, 0.5, 8), rng.normal(0, 0.5, 8)) for _ in range(3)])
    add("touching", [(np.array([0.0, 0.2, 0.5, 1.0]), np.array([1.0, 1.3, 1.6, 2.0]))])
    add(
        "one_sided",
        [
            (np.array([0.0, 0.1, 0.2, 3.0]), np.array([0.15, 3.1, 3.2, 3.3])),
            (np.array([0, 1, 2, 3.0]), np.array([2.5, 2.6, 2.7, 9.0])),
        ],
    )
    # N = 2.
    add("n2", [(rng.normal(0, 1, 2), rng.normal(0.5, 1, 2)) for _ in range(10)])
    add("n2_grid", [(rng.integers(0, 5, 2) / 100, rng.integers(0, 5, 2) / 100) for _ in range(10)])
    # Very wide ranges (thousands of family A thresholds) and very narrow ones (< 0.01: n = 1).
    add("wide", [(rng.normal(0, 8, 8), rng.normal(3, 6, 8)) for _ in range(3)])
    add("narrow", [(1.0 + rng.uniform(0, 0.004, 8), 1.002 + rng.uniform(0, 0.004, 8)) for _ in range(6)])
    add("narrow_exact", [(np.array([0.0, 0.005, 0.01]), np.array([0.002, 0.006, 0.009]))])
    # Large magnitudes (coarser float spacing around the thresholds).
    add("large_offset", [(1e4 + rng.normal(0, 1, 8), 1e4 + rng.normal(0.5, 1, 8)) for _ in range(3)])
    return cases


ADVERSARIAL = adversarial_inputs()


# --------------------------------------------------------------------------------------------
# Epsilon: vectorised == reference, bit for bit.


@pytest.mark.parametrize("n_models", [2, 3, 8, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epsilon_matches_reference_random(seed: int, n_models: int) -> None:
    r, u = random_inputs(seed, n_models, 20)
    got = per_example_epsilon(r, u)
    want = reference_epsilon(r, u)
    assert got.dtype == np.float64 and got.shape == (20,)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("n", [2, 3, 7, 10, 12, 64, 100])
def test_epsilon_table_matches_attack_formula(n: int) -> None:
    # Every (k_pos, k_neg) pair; dropped attacks are stored as 0 in the table.
    k_pos, k_neg = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    want = attack_epsilons(k_pos, k_neg, n)
    assert np.array_equal(forgetting._epsilon_table(n, D), np.where(np.isnan(want), 0.0, want))


def test_epsilon_matches_reference_n64() -> None:
    # The benchmark's distribution and N: hundreds of thresholds and right ends per example.
    rng = np.random.default_rng(64)
    r = rng.normal(2.0, 1.5, (6, 64))
    u = rng.normal(1.5, 2.0, (6, 64))
    assert np.array_equal(per_example_epsilon(r, u), reference_epsilon(r, u))


def test_left_counts_exact_on_and_next_to_left_ends() -> None:
    """g(c) - 1 = #{i < 399 : l_i <= c} - 1 for values equal to, and one ulp either side of,
    the linspace left ends (where an estimate by division can be off by one)."""
    rng = np.random.default_rng(3)
    starts = rng.uniform(-5.0, 5.0, 7)
    lefts = [np.linspace(s0, s0 + 4.0, 400) for s0 in starts]
    picks = np.concatenate([lf[rng.integers(0, 400, 20)] for lf in lefts])
    values = [picks, np.nextafter(picks, np.inf), np.nextafter(picks, -np.inf), rng.uniform(-6, 10, 40)]
    values = np.sort(np.concatenate(values))
    start = torch.from_numpy(np.array([lf[0] for lf in lefts]))[None, :]
    stop = torch.from_numpy(np.array([lf[-1] for lf in lefts]))[None, :]
    step = (stop - start) / 399.0
    got = forgetting._left_counts(torch.from_numpy(values)[None, :], start, step, 399).numpy()[0]
    for j, lf in enumerate(lefts):
        want = np.array([np.sum(lf[:399] <= c) for c in values]) - 1.0
        assert np.array_equal(got[j], want)


CASES = {name: (r, u) for name, r, u in ADVERSARIAL}


@functools.cache
def reference_for(name: str) -> np.ndarray:
    """Reference epsilons of a named adversarial case, computed once per session."""
    return reference_epsilon(*CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_epsilon_matches_reference_adversarial(name: str) -> None:
    got = per_example_epsilon(*CASES[name])
    want = reference_for(name)
    assert np.array_equal(got, want), f"{name}: {got} != {want}"


def test_epsilon_known_values_on_adversarial_cases() -> None:
    assert (per_example_epsilon(*CASES["identical"]) == 0.0).all()
    assert (per_example_epsilon(*CASES["one_constant"]) == 50.0).all()
    assert (per_example_epsilon(*CASES["both_constant"]) == 50.0).all()
    assert (per_example_epsilon(*CASES["separated"]) == 50.0).all()
    # Range ratio 0.0099 < 1%: degenerate; 0.0101 and exactly 1% (0.01 * 1 == 0.01): not.
    eps = per_example_epsilon(*CASES["one_percent"])
    assert eps[0] == 50.0 and eps[1] < 50.0 and eps[2] < 50.0
    r_min, r_max = 0.0038036474434008337, 0.3803647443400834
    assert r_min < 0.01 * r_max and not r_min / r_max < 0.01  # the two ways to write the rule
    eps = per_example_epsilon(*CASES["one_percent_exact"])
    assert eps[0] < 50.0 and eps[1] == 50.0
    assert (per_example_epsilon(*CASES["last_left_end"]) == np.log(1 - D - 1 / 8) - np.log(1 / 8)).all()


def test_adversarial_cases_catch_off_by_one() -> None:
    """The adversarial cases tell the definition from off-by-one variants of it (the reference
    with one threshold or right end more or less)."""
    r, u = CASES["near_separated"]
    want = reference_for("near_separated")
    variants = ({"extra_thresholds": 1}, {"extra_thresholds": -1}, {"extra_right_ends": 1}, {"extra_right_ends": -1})
    for kwargs in variants:
        assert not np.array_equal(reference_epsilon(r, u, **kwargs), want), kwargs


@pytest.mark.parametrize("name", ["near_separated", "end_point"])
def test_mutated_implementation_is_caught(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Mutations of the vectorised code fail the comparison with the reference: linspace with
    the spacing of one point more, and linspace without numpy's exact end point."""
    r, u = CASES[name]
    want = reference_for(name)
    assert np.array_equal(per_example_epsilon(r, u), want)
    original = forgetting._linspace_rows

    def one_more(a, b, n, width, offset=0):  # type: ignore[no-untyped-def]
        return original(a, b, n + 1, width + 1, offset)[..., :width].contiguous()

    def no_exact_end(a, b, n, width, offset=0):  # type: ignore[no-untyped-def]
        i = torch.arange(offset, offset + width, dtype=torch.float64)
        return a[..., None] + i * ((b - a) / torch.clamp(n - 1, min=1).to(torch.float64))[..., None]

    mutant = one_more if name == "near_separated" else no_exact_end
    monkeypatch.setattr(forgetting, "_linspace_rows", mutant)
    assert not np.array_equal(per_example_epsilon(r, u), want)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 100, 401, 1000])
def test_linspace_rows_is_numpy_linspace(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.normal(0, 5, 50)
    b = a + np.abs(rng.normal(0, 5, 50)) * rng.choice([0.0, 1e-3, 1.0], 50)
    got = forgetting._linspace_rows(torch.from_numpy(a), torch.from_numpy(b), torch.full((50,), n), max(n, 1)).numpy()
    for e in range(50):
        assert np.array_equal(got[e, :n], np.linspace(a[e], b[e], n))


def test_epsilon_accepts_tensors_and_checks_inputs() -> None:
    r, u = random_inputs(5, 8, 6)
    eps = per_example_epsilon(torch.from_numpy(r).float(), torch.from_numpy(u).float())
    assert np.array_equal(eps, per_example_epsilon(r.astype(np.float32), u.astype(np.float32)))
    assert per_example_epsilon(np.zeros((0, 8)), np.zeros((0, 8))).shape == (0,)
    with pytest.raises(ValueError, match="differ"):
        per_example_epsilon(r, u[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        per_example_epsilon(r[0], u[0])
    bad = r.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        per_example_epsilon(bad, u)


def test_epsilon_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    per_example_epsilon(*random_inputs(0, 4, 3))
    assert torch.get_num_threads() == before


def test_epsilon_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    r, u = random_inputs(7, 8, 20)
    want = per_example_epsilon(r, u)
    monkeypatch.setattr(forgetting, "_CHUNK_ELEMENTS", 1)  # one example per chunk
    assert np.array_equal(per_example_epsilon(r, u), want)
    monkeypatch.setattr(forgetting, "_CHUNK_ELEMENTS", 1 << 30)  # all in one chunk
    assert np.array_equal(per_example_epsilon(r, u), want)


# --------------------------------------------------------------------------------------------
# Points, F and the final score, by hand.


def test_points_n16() -> None:
    # N = 16: M = ceil(ln 15) = ceil(2.708) = 3, buckets of 0.5 up to 3: 1, 1/2, ..., 2^-5, then 0.
    eps = np.array([0.0, 0.49, 0.5, 1.2, 2.99, 3.0, 50.0])
    want = np.array([1.0, 1.0, 0.5, 0.25, 2.0**-5, 0.0, 0.0])
    assert np.array_equal(forgetting_points(eps, 16), want)


def test_points_edges() -> None:
    # N = 2: ln(1) = 0, M = 0, no bucket: every example scores 0.
    assert np.array_equal(forgetting_points(np.array([0.0, 0.3, 50.0]), 2), np.zeros(3))
    # N = 3: M = ceil(ln 2) = 1: [0, 0.5) -> 1, [0.5, 1) -> 1/2, >= 1 -> 0.
    assert np.array_equal(forgetting_points(np.array([0.4999, 0.5, 0.9999, 1.0]), 3), np.array([1.0, 0.5, 0.5, 0.0]))
    # N = 64: M = ceil(ln 63) = ceil(4.143) = 5: 10 buckets, the last [4.5, 5) -> 2^-9.
    assert np.array_equal(forgetting_points(np.array([4.75, 5.0, np.inf]), 64), np.array([2.0**-9, 0.0, 0.0]))
    with pytest.raises(ValueError):
        forgetting_points(np.array([0.1]), 1)
    with pytest.raises(ValueError):
        forgetting_points(np.array([-0.1]), 8)


def test_epsilon_and_f_by_hand() -> None:
    # N = 3. Example 1: R = [0, 1, 2] (median 1) is P, U = [-0.5, 0.5, 1.5] (median 0.5) is Q;
    # the samples interleave (Q P Q P Q P), so the best attacks catch 2 of 3 positives with 1 of
    # 3 false positives (a threshold in (0.5, 1]; the interval [0.5, 1.5] around K = Q):
    # FPR = FNR = 1/3, epsilon = log(1 - d - 1/3) - log(1/3) ~ 0.693 -> bucket [0.5, 1) -> 1/2.
    # Every other count pair gives epsilon <= 0 or is dropped (FNR = 0 or FPR = 0 alone).
    # Example 2: R = U = [0, 1, 2]: every attack has TPR = FPR, epsilon 0 -> 1 point.
    # Example 3: R = [5, 6, 7], U = [0, 1, 2]: a threshold in (2, 5] separates them: FPR = FNR =
    # 0, epsilon inf -> 50 -> 0 points.
    r = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [5.0, 6.0, 7.0]])
    u = np.array([[-0.5, 0.5, 1.5], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    eps = per_example_epsilon(r, u)
    assert eps[0] == pytest.approx(math.log(1 - D - 1 / 3) - math.log(1 / 3), rel=1e-12)
    assert eps[1] == 0.0 and eps[2] == 50.0
    assert np.array_equal(forgetting_points(eps, 3), np.array([0.5, 1.0, 0.0]))
    assert forgetting_quality(r, u) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert forgetting_quality(torch.from_numpy(r), torch.from_numpy(u)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty"):
        forgetting_quality(np.zeros((0, 3)), np.zeros((0, 3)))


def test_final_score_by_hand() -> None:
    # F x (RA_U / RA_R) x (TA_U / TA_R) = 0.5 x (0.9 / 0.95) x (0.8 / 0.85) = 0.4458...
    assert final_score(0.5, 0.9, 0.95, 0.8, 0.85) == pytest.approx(0.5 * 0.9 / 0.95 * 0.8 / 0.85)
    assert final_score(0.5, 0.9, 0.95, 0.8, 0.85) == pytest.approx(0.44582043, rel=1e-7)
    # No cap at 1: an unlearned model more accurate than the oracles scales F up.
    assert final_score(1.0, 1.0, 0.5, 1.0, 0.5) == 4.0
    assert final_score(0.0, 0.9, 0.9, 0.9, 0.9) == 0.0
    with pytest.raises(ValueError):
        final_score(0.5, 0.9, 0.0, 0.8, 0.85)
