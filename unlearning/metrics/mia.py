"""Membership-inference attacks on a single model (scikit-learn does the learning)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

__all__ = ["mia_efficacy", "predictive_mia", "simple_mia"]


def _balanced(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    if len(a) > n:
        a = a[np.sort(rng.choice(len(a), n, replace=False))]
    if len(b) > n:
        b = b[np.sort(rng.choice(len(b), n, replace=False))]
    return a, b


def simple_mia(member_losses: np.ndarray, nonmember_losses: np.ndarray, n_splits: int = 10, seed: int = 0) -> float:
    """The starting kit's attack: logistic regression on per-example losses, members vs not.

    The larger sample is subsampled (seeded) to the size of the smaller one, so 0.5 is chance.
    Accuracy is cross-validated over ``n_splits`` stratified shuffle splits.

    Args:
        member_losses: losses of the examples whose membership is tested (the forget set).
        nonmember_losses: losses of unseen examples (the test set).
        n_splits: number of cross-validation splits (10 in the starting kit).
        seed: seed of the subsampling and of the splits.

    Returns:
        Mean cross-validated attack accuracy; about 0.5 for a model that never saw the members.

    Raises:
        ValueError: if either sample has fewer than 5 examples.
    """
    m = np.asarray(member_losses, dtype=np.float64).reshape(-1)
    n = np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
    if min(len(m), len(n)) < 5:
        raise ValueError(f"simple_mia needs at least 5 examples per side, got {len(m)} and {len(n)}")
    m, n = _balanced(m, n, np.random.default_rng(seed))
    x = np.concatenate([n, m])[:, None]
    y = np.concatenate([np.zeros(len(n)), np.ones(len(m))])
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed)
    return float(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy").mean())


def mia_efficacy(
    member_feature: np.ndarray,
    nonmember_feature: np.ndarray,
    target_feature: np.ndarray,
    max_train: int = 2000,
    seed: int = 0,
) -> float:
    """MIA-efficacy as in the SalUn papers: the share of target examples an attacker calls
    non-members.

    An RBF SVC (``C=3``, ``gamma="auto"``) is trained on a feature of known members (the retain
    set) against known non-members (the test set), balanced and capped at ``max_train`` examples
    per side (the SVC costs grow with the square of its training size), then applied to the
    forget set. The feature is the true-class confidence in SalUn.

    Args:
        member_feature: per-example feature of members (retain).
        nonmember_feature: per-example feature of non-members (test).
        target_feature: per-example feature of the examples to judge (forget).
        max_train: cap on attacker training examples per side.
        seed: seed of the subsampling.

    Returns:
        Share of targets predicted non-member, in [0, 1]; higher means more forgotten.
    """
    rng = np.random.default_rng(seed)
    m = np.asarray(member_feature, dtype=np.float64).reshape(-1)
    n = np.asarray(nonmember_feature, dtype=np.float64).reshape(-1)
    t = np.asarray(target_feature, dtype=np.float64).reshape(-1)
    m, n = _balanced(m, n, rng)
    if len(m) > max_train:
        m = m[rng.choice(len(m), max_train, replace=False)]
        n = n[rng.choice(len(n), max_train, replace=False)]
    x = np.concatenate([m, n])[:, None]
    y = np.concatenate([np.ones(len(m)), np.zeros(len(n))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float((clf.predict(t[:, None]) == 0).mean())


def predictive_mia(member_features: np.ndarray, nonmember_features: np.ndarray, n_splits: int = 10,
                   seed: int = 0) -> float:
    """The seed's "predictive manifold" attack: a gradient boosting classifier on what a model's
    whole output says about an example, members vs not.

    The features are those of :func:`~unlearning.metrics.attack_features` (logit-scaled
    confidence, loss and entropy, then the sorted probability vector), one row per example. As in
    :func:`simple_mia`, the larger sample is subsampled (seeded) to the smaller one's size, so 0.5
    is chance, and the accuracy is cross-validated over ``n_splits`` stratified shuffle splits.
    scikit-learn's histogram gradient boosting (50 trees of at most 15 leaves, fixed seed) does
    the learning.

    Args:
        member_features: ``(n, d)`` features of the examples whose membership is tested (forget).
        nonmember_features: ``(m, d)`` features of unseen examples (test).
        n_splits: number of cross-validation splits.
        seed: seed of the subsampling, the splits and the classifier.

    Returns:
        Mean cross-validated attack accuracy.

    Raises:
        ValueError: if either sample has fewer than 10 examples or the widths differ.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = np.asarray(member_features, dtype=np.float64)
    n = np.asarray(nonmember_features, dtype=np.float64)
    if m.ndim != 2 or n.ndim != 2 or m.shape[1] != n.shape[1]:
        raise ValueError(f"predictive_mia needs two (examples, features) arrays of one width, got {m.shape} and {n.shape}")
    if min(len(m), len(n)) < 10:
        raise ValueError(f"predictive_mia needs at least 10 examples per side, got {len(m)} and {len(n)}")
    rng = np.random.default_rng(seed)
    m, n = _balanced(m, n, rng)
    x = np.concatenate([n, m])
    y = np.concatenate([np.zeros(len(n)), np.ones(len(m))])
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed)
    clf = HistGradientBoostingClassifier(max_iter=50, max_leaf_nodes=15, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring="accuracy").mean())
