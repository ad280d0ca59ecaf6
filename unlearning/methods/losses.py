"""Losses shared by several unlearning algorithms.

Why by hand: these are a few lines each on top of ``torch.nn.functional``; no maintained library
ships them in this form (distillation with temperature, one-dimensional distribution matching of
per-example statistics, a weighted anchor towards the original's weights).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from unlearning.metrics.outputs import attack_features

__all__ = ["anchor_penalty", "distill_kl", "match_unseen", "quantile_match"]


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(teacher_T || student_T) * T^2`` averaged over the batch (Hinton distillation)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


def quantile_match(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared 1-D Wasserstein-2 distance between two samples of a statistic.

    ``values`` (with gradients) is sorted; each of its order statistics is paired with the
    quantile of ``target`` (treated as a constant) at the same rank, ``(i + 0.5) / n``, and the
    mean squared difference is returned. The samples may have different sizes. Zero when the two
    empirical distributions are equal; the gradient moves each value towards its rank's target.

    Args:
        values: ``(n,)`` sample to move.
        target: ``(m,)`` sample to match (detached).

    Returns:
        A scalar tensor.
    """
    values, target = values.float().reshape(-1), target.detach().float().reshape(-1)
    if values.numel() == 0 or target.numel() == 0:
        raise ValueError(f"quantile_match needs non-empty samples, got sizes {values.numel()} and {target.numel()}")
    ranks = (torch.arange(values.numel(), device=values.device, dtype=torch.float32) + 0.5) / values.numel()
    goal = torch.quantile(target, ranks)
    return F.mse_loss(values.sort().values, goal)


def match_unseen(logits: torch.Tensor, labels: torch.Tensor, unseen_logits: torch.Tensor,
                 unseen_labels: torch.Tensor) -> torch.Tensor:
    """Move the outputs on some examples towards what unseen examples get: the sum of
    :func:`quantile_match` of the logit-scaled confidence, the loss and the entropy (each on the
    scale of :func:`~unlearning.metrics.attack_features`) against the unseen sample's."""
    f = attack_features(logits, labels)[:, :3]
    g = attack_features(unseen_logits, unseen_labels)[:, :3]
    return sum(quantile_match(f[:, k], g[:, k]) for k in range(3))


def anchor_penalty(params: Iterable[torch.Tensor], anchors: Iterable[torch.Tensor],
                   weights: Iterable[torch.Tensor] | None = None) -> torch.Tensor:
    """``sum_i w_i (theta_i - theta0_i)^2 / 2`` over all parameters: an L2 (``weights=None``) or
    Fisher-weighted (EWC) pull towards the original's weights."""
    params, anchors = list(params), list(anchors)
    ws = list(weights) if weights is not None else [None] * len(params)
    total = params[0].new_zeros(())
    for p, a, w in zip(params, anchors, ws):
        d = (p - a).pow(2)
        total = total + 0.5 * (d if w is None else w * d).sum()
    return total
