"""Forgetting quality F of the NeurIPS 2023 Machine Unlearning competition, and its final score.

The definition is the competition's, as published by its organisers in
google-deepmind/unlearning_evaluation (``metric.py``) and in their note "Evaluation for the NeurIPS
Machine Unlearning Competition"; the docs site's metrics page (``docs/metrics.md``, "Per-example
epsilon") restates it, and this module follows it with the exact grids described below. All arithmetic is float64.

For each forget example there are two samples of N logit-scaled confidences: R, under N retrained
(oracle) models, and U, under N unlearned models. The one with the larger median is the positive
sample P, the other the negative sample Q. If the narrower sample's range is below 1% of the wider
one's (or both ranges are 0) the example gets epsilon = 50. Otherwise a family of attacks tries to
tell P from Q:

* family A, one threshold: ``t = linspace(lo, hi, ceil((hi - lo) * 100))`` over the pooled range;
  predict P when ``c >= t``;
* family B, an interval around the narrower sample K (width w, the other sample O): right ends
  ``r = linspace(min(K) + w - 2, max(K) + 2, ceil(...))``, for each 400 left ends
  ``l = linspace(r - w - 2, r - w + 2, 400)``; predict K when ``l <= c <= r``.

Each attack, with the predicted class as positive, has ``FPR = k / N`` and ``FNR = k' / N``. It
gives epsilon = inf if both are 0, is dropped if exactly one is 0, and otherwise gives
``max(log(1 - d - FPR) - log(FNR), log(1 - d - FNR) - log(FPR))`` floored at 0 (d = 1e-5, a term
whose log argument is not positive is ignored). The example's epsilon is the largest over the
surviving attacks (0 if none), clipped to [0, 50]. Points: with ``M = ceil(ln(N - 1))``, epsilon in
``[0.5 b, 0.5 (b + 1))`` scores ``2^-b`` for ``b = 0 .. 2M - 1``, and epsilon >= M scores 0.
F is the mean of the points over the forget set; the final score is
``F * (RA_U / RA_R) * (TA_U / TA_R)``.

Why by hand: no maintained library that we know of implements this metric; the organisers'
``metric.py`` is a research script, not an installable package: a Python loop over examples, CUDA
hard-coded, ``N x 160,000`` tensors per example for family B (far too slow on a CPU for thousands
of examples), ``torch.linspace`` for family A and float32 rates. Where it and that restatement
differ in such details, this module follows the restatement: numpy's linspace everywhere, rates
``k / N`` in float64, the 1% rule written ``min(rP, rQ) < 0.01 * max(rP, rQ)`` (not a ratio), and
epsilon 50 when both ranges are 0.

How it is vectorised (over examples and attacks, in chunks of examples to bound memory), with
results equal bit for bit to scoring every attack one by one (the tests check this against a
loop-by-loop reference):

* thresholds and right ends are ``a + float64(i) * s`` with ``s = (b - a) / (n - 1)``, then ``b``
  exactly at the end: what ``np.linspace`` returns, bit for bit, so a threshold that lands on a
  sample value counts the same way;
* an attack's epsilon depends only on its pair of counts ``(k_pos, k_neg)``, so it is read from an
  ``(N + 1) x (N + 1)`` table computed once with ``np.log``;
* counts come from sorted samples and ``torch.searchsorted``: ``#(c >= t)``, and
  ``#(l <= c <= r) = max(#(c <= r) - #(c < l), 0)``;
* family B has 400 left ends per right end, but for one right end the left ends
  ``l_0 <= ... <= l_398`` are non-decreasing, so the counts ``#(c < l_i)`` only change at
  ``i = g(c) = #{i : l_i <= c}`` for the 2N sample values: only those ``i`` (and ``i = 0``, and the
  last left end, which linspace sets to the stop value exactly) give distinct attacks. ``g(c)`` is
  ``floor((c - l_0) / s) + 1`` unless that quotient is within a rounding bound of an integer;
  those few entries are settled by exact comparisons with the linspace values.

The 1,000 x N = 64 case takes about 1 to 2 s on two shared CPU cores (random normal inputs). Torch
runs single-threaded inside `per_example_epsilon`: its ops are many and small, and on a busy
machine intra-op threads made the same call 10 to 50 times slower.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "DELTA",
    "EPSILON_CAP",
    "final_score",
    "forgetting_points",
    "forgetting_quality",
    "per_example_epsilon",
]

DELTA = 1e-5
"""The delta of the (epsilon, delta) bound."""
EPSILON_CAP = 50.0
"""Epsilon is clipped to [0, EPSILON_CAP]; degenerate examples get EPSILON_CAP."""
_PER_UNIT = 100  # thresholds (family A) and right ends (family B) per unit of confidence
_BUFFER = 2.0  # family B: right ends reach this far beyond K, left ends this far around r - w
_NUM_LEFT = 400  # family B: left ends per right end, ceil(2 * _BUFFER * _PER_UNIT)
_CHUNK_ELEMENTS = 1 << 19  # elements of the largest per-chunk tensor (4 MB in float64)
# Many small ops: torch's intra-op threads bring little, and on a busy machine (2 cores shared with
# trainings) their barriers made the same call 10 to 50 times slower.
_NUM_THREADS = 1


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the process's setting."""
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


def _as_float64(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_examples, N), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has non-finite values")
    return x


def _epsilon_table(n: int, delta: float) -> np.ndarray:
    """Epsilon of an attack from its counts: ``table[k_pos, k_neg]``, with dropped attacks as 0.

    ``k_pos`` of the N positive values and ``k_neg`` of the N negative values are predicted
    positive, so ``FNR = (N - k_pos) / N`` and ``FPR = k_neg / N``. A dropped attack (exactly one of
    FPR, FNR is 0) or one with no usable term is stored as 0: every surviving attack gives at least
    0 and an example with no survivor gets 0, so this leaves the maximum unchanged.
    """
    k = np.arange(n + 1, dtype=np.float64)
    fnr = ((n - k) / n)[:, None] * np.ones((1, n + 1))
    fpr = (k / n)[None, :] * np.ones((n + 1, 1))
    one_minus_d = 1.0 - delta
    with np.errstate(divide="ignore", invalid="ignore"):
        a1, a2 = one_minus_d - fpr, one_minus_d - fnr
        t1 = np.where(a1 > 0, np.log(np.where(a1 > 0, a1, 1.0)) - np.log(np.where(fnr > 0, fnr, 1.0)), -np.inf)
        t2 = np.where(a2 > 0, np.log(np.where(a2 > 0, a2, 1.0)) - np.log(np.where(fpr > 0, fpr, 1.0)), -np.inf)
    eps = np.maximum(np.maximum(t1, t2), 0.0)
    eps[(fpr == 0) != (fnr == 0)] = 0.0  # dropped
    eps[(fpr == 0) & (fnr == 0)] = np.inf  # perfect separation
    return eps


def _linspace_rows(a: torch.Tensor, b: torch.Tensor, n: torch.Tensor, width: int, offset: int = 0) -> torch.Tensor:
    """Row-wise ``np.linspace(a[e], b[e], n[e])[offset:offset + width]``, bit for bit, padded.

    Entry ``i < n - 1`` is ``a + float64(i) * ((b - a) / (n - 1))``, entry ``n - 1`` is ``b`` (``a``
    when ``n == 1``); entries from ``n`` on are padding (finite, to be masked by the caller).
    """
    i = torch.arange(offset, offset + width, dtype=torch.float64)
    step = (b - a) / torch.clamp(n - 1, min=1).to(torch.float64)
    out = a[..., None] + i * step[..., None]
    last = (i == (n - 1)[..., None].to(torch.float64)) & (n > 1)[..., None]
    return torch.where(last, b[..., None], out)


def _family_a(p: torch.Tensor, q: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Largest table epsilon over family A (one threshold) for each row of sorted ``p``, ``q``.

    Thresholds are taken in blocks of columns, so a very wide range (1,000 units is 100,000
    thresholds) does not need one huge tensor.
    """
    n_rows, n_models = p.shape
    lo = torch.minimum(p[:, 0], q[:, 0])
    hi = torch.maximum(p[:, -1], q[:, -1])
    count = torch.ceil((hi - lo) * _PER_UNIT).to(torch.int64)
    total = int(count.max()) if count.numel() else 0
    best = torch.zeros(n_rows, dtype=torch.float64)
    block = max(1, _CHUNK_ELEMENTS // max(n_rows, 1))
    for offset in range(0, total, block):
        width = min(block, total - offset)
        t = _linspace_rows(lo, hi, count, width, offset)
        k_pos = n_models - torch.searchsorted(p, t, side="left")  # #(P >= t)
        k_neg = n_models - torch.searchsorted(q, t, side="left")  # #(Q >= t)
        eps = table[k_pos * (n_models + 1) + k_neg]
        valid = torch.arange(offset, offset + width)[None, :] < count[:, None]
        best = torch.maximum(best, torch.where(valid, eps, 0.0).amax(dim=1))
    return best


def _left_counts(values: torch.Tensor, start: torch.Tensor, step: torch.Tensor, last: int) -> torch.Tensor:
    """``g(c) - 1`` with ``g(c) = #{i in 0..last-1 : start + float64(i) * step <= c}``, exactly.

    ``values`` is ``(E, m)``, ``start`` and ``step`` are ``(E, J)``; the result is ``(E, J, m)``
    float64. The sequence ``l[i] = start + float64(i) * step`` is non-decreasing in ``i`` (both
    roundings are monotone), so ``g`` is the one index with ``l[g - 1] <= c < l[g]``. With
    ``x = (c - start) / step``, ``g = floor(x) + 1`` unless ``x`` is within ``tol`` of an integer,
    where ``tol`` bounds the rounding in ``x`` (computed with the reciprocal of ``step``) and in the
    ``l[i]``: a few units of 2^-53 times ``(|start| + |c|) / step + 2 * last``; ``tol`` uses 2^-45,
    a 256-fold margin. Those few entries are settled by exact comparisons with the ``l[i]``.
    """
    st = start[..., None]
    inv = 1.0 / step[..., None]
    x = (values[:, None, :] - st) * inv
    h = torch.floor(x)
    c_abs = values.abs().amax(dim=1)[:, None, None]
    half_gap = 0.5 - ((st.abs() + c_abs) * inv + 1000.0) * 2.0**-45  # 0.5 - tol
    unsure = torch.abs((x - h) - 0.5) >= half_gap  # frac(x) <= tol or >= 1 - tol
    h = torch.clamp(h, -1.0, float(last - 1))
    idx = torch.nonzero(unsure.reshape(-1)).squeeze(1)
    if idx.numel() == 0:
        return h
    flat_h = h.reshape(-1)
    m = values.shape[1]
    row = idx // m  # index into the flattened (E, J)
    v = values.reshape(-1)[(idx // (m * start.shape[1])) * m + idx % m]
    s0 = start.reshape(-1)[row]
    s1 = step.reshape(-1)[row]
    g = flat_h[idx] + 1.0
    while True:
        up = (g < last) & (s0 + g * s1 <= v)  # l[g] <= c: g too small
        down = (g > 0) & (s0 + (g - 1.0) * s1 > v)  # l[g - 1] > c: g too large
        if not bool((up | down).any()):
            break
        g = g + up.to(torch.float64) - down.to(torch.float64)
    flat_h[idx] = g - 1.0
    return h


def _extended_table(table: torch.Tensor, n_models: int) -> torch.Tensor:
    """The flat table that family B reads with one gather, no mask.

    Entry ``(dk + N) * (2N + 1) + (do + N)`` is ``table[max(dk, 0), max(do, 0)]`` for
    ``dk, do in -N..N`` (a count difference ``#(<= r) - #(< l)`` is 0 when negative); then come
    ``3 (2N + 1)^2`` zeros that padded right ends and masked entries are pointed into.
    """
    stride = n_models + 1
    side = 2 * n_models + 1
    d = torch.arange(-n_models, n_models + 1).clamp(min=0)
    ext = table.reshape(stride, stride)[d[:, None], d[None, :]].reshape(-1)
    return torch.cat([ext, torch.zeros(3 * side * side, dtype=torch.float64)])


def _family_b(
    k: torch.Tensor, o: torch.Tensor, w: torch.Tensor, table: torch.Tensor, ext: torch.Tensor
) -> torch.Tensor:
    """Largest table epsilon over family B (an interval around sorted ``k``) for each row.

    ``table`` is the flattened ``(N + 1) x (N + 1)`` epsilon table, ``ext`` its extension.
    """
    n_rows, n_models = k.shape
    a = (k[:, 0] + w) - _BUFFER
    b = k[:, -1] + _BUFFER
    count = torch.ceil((b - a) * _PER_UNIT).to(torch.int64)
    width = int(count.max()) if count.numel() else 0
    if width == 0:
        return torch.zeros(n_rows, dtype=torch.float64)
    r = _linspace_rows(a, b, count, width)  # (E, J) right ends
    valid_r = torch.arange(width)[None, :] < count[:, None]
    le_k = torch.searchsorted(k, r, side="right")  # #(K <= r)
    le_o = torch.searchsorted(o, r, side="right")
    start = (r - w[:, None]) - _BUFFER  # np.linspace(r - w - 2, r - w + 2, 400)
    stop = (r - w[:, None]) + _BUFFER
    step = (stop - start) / float(_NUM_LEFT - 1)
    stride = n_models + 1
    ext_index = torch.int32 if ext.numel() < 2**31 else torch.int64

    # The last left end is `stop` exactly.
    lt_k = torch.searchsorted(k, stop, side="left")  # #(K < l)
    lt_o = torch.searchsorted(o, stop, side="left")
    k_in = torch.clamp(le_k - lt_k, min=0)  # #(l <= K <= r); 0 when l > r
    o_in = torch.clamp(le_o - lt_o, min=0)
    best = torch.where(valid_r, table[k_in * stride + o_in], 0.0)

    # Left ends 0 .. 398 (l_i = start + i * step) are non-decreasing. Sort the pooled values
    # (v_1 <= ... <= v_2N); then #(K < l_i) = #K among v_1..v_M with M = #{m : g(v_m) <= i}. As
    # i runs over 0 .. 398, M takes the value 0 (if g(v_1) > 0) and the ends m of the runs of
    # equal g(v_m) <= 398, and the counts are constant in between: only those M need scoring.
    pooled, order = torch.sort(torch.cat([k, o], dim=1), dim=1, stable=True)
    cum_k = torch.cumsum((order < n_models).to(torch.int32), dim=1)  # #K among v_1..v_M
    cum_o = torch.arange(1, 2 * n_models + 1, dtype=torch.int32)[None, :] - cum_k
    # A sentinel with g = 399 (above every left end) closes the last run.
    sentinel = pooled[:, -1:] + (4.0 * _BUFFER)
    h = _left_counts(torch.cat([pooled, sentinel], dim=1), start, step, _NUM_LEFT - 1)  # g - 1
    h[..., -1] = float(_NUM_LEFT - 2)  # whatever rounding did to pooled max + 8
    # ext[ind_r - ind_m + 2 * size * not_end]: see _extended_table.
    side = 2 * n_models + 1
    size = side * side
    ind_r = (le_k + n_models) * side + (le_o + n_models)
    ind_r = torch.where(valid_r, ind_r, size + (size - 1)).to(ext_index)  # padded: into zeros
    ind_m = (cum_k * side + cum_o).to(ext_index)
    not_end = (h[..., :-1] >= h[..., 1:]).to(ext_index)  # not a run end, or g(v_m) = 399
    ind = ind_r[..., None] - ind_m[:, None, :]
    ind += not_end * (2 * size)  # into the zeros
    eps = ext.index_select(0, ind.reshape(-1)).reshape(ind.shape).amax(dim=2)
    first = valid_r & (h[..., 0] >= 0)  # M = 0: no value below l_0
    eps0 = torch.where(first, table[le_k * stride + le_o], 0.0)
    return torch.maximum(torch.maximum(best, eps0), eps).amax(dim=1)


def _chunks(costs: np.ndarray, budget: int) -> list[np.ndarray]:
    """Group example indices (sorted by cost) so that ``len(chunk) * max cost`` stays in budget."""
    order = np.argsort(costs, kind="stable")
    out, cur, cur_max = [], [], 0
    for e in order:
        c = max(int(costs[e]), 1)
        if cur and (len(cur) + 1) * max(cur_max, c) > budget:
            out.append(np.asarray(cur))
            cur, cur_max = [], 0
        cur.append(e)
        cur_max = max(cur_max, c)
    if cur:
        out.append(np.asarray(cur))
    return out


def per_example_epsilon(
    oracle: np.ndarray | torch.Tensor,
    unlearned: np.ndarray | torch.Tensor,
    delta: float = DELTA,
) -> np.ndarray:
    """Per-example epsilon of the competition's metric (see the module docstring).

    Vectorised over examples and attacks, in chunks of examples to bound memory (about 0.5 GB at
    most for N = 64); equal, bit for bit, to scoring every attack one by one.

    Args:
        oracle: ``(num_examples, N)`` logit-scaled confidences of each forget example under N
            retrained models (R).
        unlearned: ``(num_examples, N)`` logit-scaled confidences under N unlearned models (U).
        delta: the delta of the (epsilon, delta) bound.

    Returns:
        ``(num_examples,)`` float64 epsilons in [0, 50].

    Raises:
        ValueError: if the shapes differ or are not 2-D, N is 0, or a value is not finite.
    """
    r = _as_float64(oracle, "oracle")
    u = _as_float64(unlearned, "unlearned")
    if r.shape != u.shape:
        raise ValueError(f"oracle and unlearned shapes differ: {r.shape} vs {u.shape}")
    n_examples, n_models = r.shape
    if n_models < 1:
        raise ValueError("need at least one model per sample")
    eps = np.full(n_examples, EPSILON_CAP)
    if n_examples == 0:
        return eps

    r_pos = np.median(r, axis=1) > np.median(u, axis=1)
    p = np.sort(np.where(r_pos[:, None], r, u), axis=1)
    q = np.sort(np.where(r_pos[:, None], u, r), axis=1)
    r_p, r_q = p[:, -1] - p[:, 0], q[:, -1] - q[:, 0]
    degenerate = (np.minimum(r_p, r_q) < 0.01 * np.maximum(r_p, r_q)) | ((r_p == 0) & (r_q == 0))
    live = np.flatnonzero(~degenerate)
    if live.size == 0:
        return eps

    p, q, r_p, r_q = p[live], q[live], r_p[live], r_q[live]
    k_is_q = r_p >= r_q
    k = np.where(k_is_q[:, None], q, p)
    o = np.where(k_is_q[:, None], p, q)
    w = np.where(k_is_q, r_q, r_p)
    # Per-example sizes, for chunking: family A thresholds, family B right ends x (2N + 2).
    n_a = np.ceil((np.maximum(p[:, -1], q[:, -1]) - np.minimum(p[:, 0], q[:, 0])) * _PER_UNIT)
    n_b = np.ceil(((k[:, -1] + _BUFFER) - ((k[:, 0] + w) - _BUFFER)) * _PER_UNIT)
    costs = np.maximum(np.minimum(n_a, _CHUNK_ELEMENTS), n_b * (2 * n_models + 2))

    table = torch.from_numpy(_epsilon_table(n_models, delta).reshape(-1))
    ext = _extended_table(table, n_models)
    out = np.empty(live.size)
    with _torch_threads(_NUM_THREADS):
        for idx in _chunks(costs, _CHUNK_ELEMENTS):
            tp, tq = torch.from_numpy(p[idx]), torch.from_numpy(q[idx])
            tk, to, tw = torch.from_numpy(k[idx]), torch.from_numpy(o[idx]), torch.from_numpy(w[idx])
            best = torch.maximum(_family_a(tp, tq, table), _family_b(tk, to, tw, table, ext))
            out[idx] = best.numpy()
    eps[live] = np.clip(out, 0.0, EPSILON_CAP)
    return eps


def forgetting_points(eps: np.ndarray, n_models: int) -> np.ndarray:
    """Points of each example from its epsilon.

    With ``M = ceil(ln(N - 1))``, epsilon in ``[0.5 b, 0.5 (b + 1))`` scores ``2^-b`` for
    ``b = 0 .. 2M - 1``, and epsilon ``>= M`` scores 0 (so with N = 2, M = 0 and every example
    scores 0).

    Args:
        eps: per-example epsilons (non-negative).
        n_models: N, the number of models in each sample.

    Returns:
        float64 points of the same shape as ``eps``, each in {0} or {2^-b}.

    Raises:
        ValueError: if ``n_models < 2`` or an epsilon is negative or NaN.
    """
    if n_models < 2:
        raise ValueError(f"forgetting points need N >= 2 models, got {n_models}")
    e = np.asarray(eps, dtype=np.float64)
    if np.isnan(e).any() or (e < 0).any():
        raise ValueError("epsilons must be non-negative numbers")
    m = math.ceil(math.log(n_models - 1))
    b = np.floor(2.0 * e)  # exact: doubling and floor do not round
    return np.where(b < 2 * m, np.exp2(-np.minimum(b, 2 * m)), 0.0)


def forgetting_quality(oracle: np.ndarray | torch.Tensor, unlearned: np.ndarray | torch.Tensor) -> float:
    """Forgetting quality F: the mean of the per-example points over the forget set.

    Args:
        oracle: ``(num_examples, N)`` logit-scaled confidences under N retrained models.
        unlearned: ``(num_examples, N)`` logit-scaled confidences under N unlearned models.

    Returns:
        F in [0, 1].

    Raises:
        ValueError: on an empty forget set, N < 2, or bad inputs (see `per_example_epsilon`).
    """
    eps = per_example_epsilon(oracle, unlearned)
    if eps.size == 0:
        raise ValueError("the forget set is empty")
    return float(forgetting_points(eps, np.shape(oracle)[1]).mean())


def final_score(  # noqa: N803 (F is the metric's name)
    F: float, ra_unlearned: float, ra_oracle: float, ta_unlearned: float, ta_oracle: float
) -> float:
    """The competition's final score ``F x (RA_U / RA_R) x (TA_U / TA_R)``, not capped at 1.

    Args:
        F: forgetting quality.
        ra_unlearned: retain accuracy averaged over the N unlearned models.
        ra_oracle: retain accuracy averaged over the N oracles.
        ta_unlearned: test accuracy averaged over the N unlearned models.
        ta_oracle: test accuracy averaged over the N oracles.

    Returns:
        The final score.

    Raises:
        ValueError: if an oracle accuracy is not positive.
    """
    if ra_oracle <= 0 or ta_oracle <= 0:
        raise ValueError("oracle accuracies must be positive")
    return float(F) * (float(ra_unlearned) / float(ra_oracle)) * (float(ta_unlearned) / float(ta_oracle))
