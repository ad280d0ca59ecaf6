"""KLOM: the KL divergence of margins between oracles and unlearned models, per example.

From Georgiev et al., "Attribute-to-Delete: Machine Unlearning via Datamodel Matching" (ICLR 2025,
appendix E.1) and its EasyDUB benchmark; the docs site's metrics page (``docs/metrics.md``, KLOM)
states the definition this module follows. For each example, the margin (the logit-scaled confidence of its label) under N oracles
and under N unlearned models are two samples. Both are clipped to [-100, 100] and binned into 20
equal-width bins over their combined range; the histograms' probabilities p (oracles) and q
(unlearned), with q floored at 1e-5 where p > 0 and both renormalised to sum to 1, give
``KLOM = sum p log(p / q)``, i.e. KL(oracle || unlearned), in nats: 0 for identical histograms.

Binning: ``numpy.histogram``'s, whose last bin is closed, so a sample's maximum is counted (the
EasyDUB code's ``numpy.digitize`` leaves out values equal to the combined maximum). When both
samples are one constant, the range is widened to one unit, as there.

Why by hand: a few lines of numpy; scipy has the KL divergence but not this binning.
"""

from __future__ import annotations

import numpy as np

__all__ = ["klom"]


def klom(oracle: np.ndarray, unlearned: np.ndarray, bins: int = 20, floor: float = 1e-5,
         clip: float = 100.0) -> np.ndarray:
    """Per-example KLOM of two sets of models.

    Args:
        oracle: ``(num_examples, N)`` margins under N oracles.
        unlearned: ``(num_examples, M)`` margins under M unlearned models.
        bins: equal-width bins over each example's combined range.
        floor: floor of q where p > 0.
        clip: margins are clipped to ``[-clip, clip]``.

    Returns:
        ``(num_examples,)`` float64 divergences, >= 0.

    Raises:
        ValueError: on shapes that do not match or an empty sample.
    """
    p_s = np.clip(np.asarray(oracle, dtype=np.float64), -clip, clip)
    q_s = np.clip(np.asarray(unlearned, dtype=np.float64), -clip, clip)
    if p_s.ndim != 2 or q_s.ndim != 2 or p_s.shape[0] != q_s.shape[0] or min(p_s.shape[1], q_s.shape[1]) < 1:
        raise ValueError(f"klom needs (examples, models) arrays with the same examples, got {p_s.shape} and {q_s.shape}")
    if not (np.isfinite(p_s).all() and np.isfinite(q_s).all()):
        raise ValueError("klom needs finite margins")
    lo = np.minimum(p_s.min(1), q_s.min(1))
    hi = np.maximum(p_s.max(1), q_s.max(1))
    hi = np.where(hi > lo, hi, lo + 1.0)
    inner = np.linspace(lo, hi, bins + 1, axis=1)[:, 1:-1]  # numpy.histogram's edges, row by row

    def probabilities(s: np.ndarray) -> np.ndarray:
        # a value's bin is the number of inner edges at or below it, so the maximum is in the last
        k = (s[:, :, None] >= inner[:, None, :]).sum(-1)
        counts = np.zeros((s.shape[0], bins))
        np.add.at(counts, (np.repeat(np.arange(s.shape[0]), s.shape[1]), k.ravel()), 1.0)
        return counts / s.shape[1]

    p, q = probabilities(p_s), probabilities(q_s)
    q = np.where(p > 0, np.maximum(q, floor), q)
    p = p / p.sum(1, keepdims=True)
    q = q / q.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return terms.sum(1)
