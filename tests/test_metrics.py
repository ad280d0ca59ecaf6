"""The per-run measurements measure what they claim: attacks and output statistics."""

from __future__ import annotations

import numpy as np
import torch

from unlearning.metrics import logit_scaled_confidence, mia_efficacy, per_example_stats, simple_mia


def test_logit_scaled_confidence_matches_its_definition() -> None:
    logits = torch.randn(50, 10, dtype=torch.float64) * 5
    y = torch.randint(0, 10, (50,))
    p = torch.softmax(logits, 1)
    p_y = p[torch.arange(50), y]
    expected = torch.log(p_y) - torch.log(1 - p_y)
    torch.testing.assert_close(logit_scaled_confidence(logits, y), expected)
    stats = per_example_stats(logits, y)
    torch.testing.assert_close(stats["confidence"].double(), p_y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats["loss"].double(), -torch.log(p_y), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats["entropy"].double(), -(p * p.log()).sum(1), rtol=1e-5, atol=1e-5)


def test_simple_mia_separates_members_and_is_chance_otherwise() -> None:
    rng = np.random.default_rng(0)
    test_losses = rng.exponential(1.0, 2000) + 0.5
    members = rng.exponential(0.05, 200)  # memorised: much lower loss than unseen data
    assert simple_mia(members, test_losses) > 0.95
    unseen_like = rng.exponential(1.0, 200) + 0.5  # drawn like the test set
    assert abs(simple_mia(unseen_like, test_losses) - 0.5) < 0.08  # balanced: chance despite 200 vs 2000


def test_mia_efficacy_counts_targets_called_non_members() -> None:
    rng = np.random.default_rng(0)
    retain = rng.uniform(0.9, 1.0, 1000)  # members: confident
    test = rng.uniform(0.0, 0.6, 1000)  # non-members: unsure
    assert mia_efficacy(retain, test, rng.uniform(0.0, 0.6, 300)) > 0.95  # forgotten
    assert mia_efficacy(retain, test, rng.uniform(0.9, 1.0, 300)) < 0.05  # still remembered
    half = np.concatenate([rng.uniform(0.0, 0.6, 150), rng.uniform(0.9, 1.0, 150)])
    assert abs(mia_efficacy(retain, test, half) - 0.5) < 0.05
