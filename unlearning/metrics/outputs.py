"""Per-example statistics of a classifier's outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attack_features", "logit_scaled_confidence", "per_example_stats"]


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p_y - log(sum_{j != y} p_j)``, computed stably as ``z_y - logsumexp_{j != y} z_j``.

    The statistic of LiRA and of the NeurIPS 2023 unlearning competition's metric.

    Args:
        logits: ``(n, classes)`` logits.
        labels: ``(n,)`` true classes.

    Returns:
        ``(n,)`` confidences in the logits' dtype (use float64 logits for float64 results).
    """
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return z_y - torch.logsumexp(others, dim=1)


def per_example_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss, true-class confidence, logit-scaled confidence and entropy of each example.

    Args:
        logits: ``(n, classes)`` logits.
        labels: ``(n,)`` true classes.

    Returns:
        A dict of ``(n,)`` float32 tensors: ``loss`` (cross-entropy), ``confidence`` (softmax
        probability of the true class), ``lsc`` (logit-scaled confidence) and ``entropy`` (of the
        softmax, in nats).
    """
    logits = logits.float()
    logp = F.log_softmax(logits, dim=1)
    loss = -logp.gather(1, labels[:, None]).squeeze(1)
    return {
        "loss": loss,
        "confidence": torch.exp(-loss),
        "lsc": logit_scaled_confidence(logits, labels),
        "entropy": -(logp.exp() * logp).sum(1),
    }


def _symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def attack_features(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What a membership attacker reads off one output: a differentiable feature vector per example.

    Columns: the logit-scaled confidence of the label, the cross-entropy loss and the entropy
    (each ``sign(v) log(1 + |v|)``, so that memorised examples with confidences of 20 or more do not
    dominate), then the probability vector sorted in decreasing order (label-free, as a black-box
    attacker sees it). Gradients flow through every column.

    Args:
        logits: ``(n, classes)`` logits.
        labels: ``(n,)`` true classes.

    Returns:
        ``(n, classes + 3)`` float32 features.
    """
    logits = logits.float()
    logp = F.log_softmax(logits, dim=1)
    loss = -logp.gather(1, labels[:, None]).squeeze(1)
    entropy = -(logp.exp() * logp).sum(1)
    lsc = logit_scaled_confidence(logits, labels)
    scalars = _symlog(torch.stack([lsc, loss, entropy], dim=1))
    return torch.cat([scalars, logp.exp().sort(dim=1, descending=True).values], dim=1)
