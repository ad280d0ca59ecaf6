"""Per-example memorisation and entanglement: the Feldman-Zhang estimate from models trained on
random subsets, the Spearman correlation of a proxy with it, the entanglement score of a forget set
against its retain set (RUM's), a per-example stand-in for it (the distance to the example's class
centroid), and the penultimate features of a network that they are computed on.

Everything here is a pure function of arrays, apart from :func:`penultimate_outputs` (and
:func:`penultimate_features`), which run a
network. The models, the subsets and the files are ``unlearning memorise``'s
(:mod:`unlearning.memorisation`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "SCORES_FILE",
    "MemorisationWarning",
    "centroid_distance",
    "entanglement_score",
    "load_scores",
    "load_simulated_oracles",
    "memorisation_estimate",
    "penultimate_features",
    "penultimate_layer",
    "penultimate_outputs",
    "simulated_oracle_target",
    "spearman",
    "subset_masks",
    "within_class_quantile",
]

#: the file ``unlearning memorise`` writes its per-example scores to
SCORES_FILE = "memorisation.npz"


def load_scores(path: str | Path, required: Sequence[str] = ("index", "estimate")) -> dict[str, np.ndarray]:
    """The arrays of a scores file of ``unlearning memorise`` (``memorisation.npz``).

    Args:
        path: the ``.npz`` file, or the run folder holding it.
        required: keys the file must hold.

    Raises:
        ValueError: naming the file if it does not exist or lacks a required key.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_FILE
    if not path.is_file():
        raise ValueError(f"memorisation scores {str(path)!r} do not exist: "
                         f"expected the {SCORES_FILE} of unlearning memorise")
    with np.load(path, allow_pickle=False) as f:
        scores = {k: f[k] for k in f.files}
    missing = [k for k in required if k not in scores]
    if missing:
        raise ValueError(f"memorisation scores {str(path)!r} have no {' and '.join(map(repr, missing))}: "
                         f"expected a file of unlearning memorise, found {sorted(scores)}")
    return scores



class MemorisationWarning(UserWarning):
    """Some examples have no estimate: never in, or never out of, a model's training subset."""


def _as_2d(name: str, a: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a K x N array (models x examples), got shape {arr.shape}")
    return arr


def subset_masks(num_examples: int, num_models: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Which examples each model trains on: ``num_models`` independent random subsets of exactly
    ``round(fraction * num_examples)`` examples.

    Args:
        num_examples: N, the size of the training set.
        num_models: K.
        fraction: the share of the training set in each subset, in (0, 1).
        seed: seed of the draws (model ``k``'s subset depends only on ``seed`` and ``k``, so a
            larger K keeps the subsets of a smaller one).

    Returns:
        A ``K x N`` boolean array, ``True`` where the example is in the model's subset.

    Raises:
        ValueError: on a fraction outside (0, 1), or a subset that would be empty or everything.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"subset fraction must be in (0, 1), got {fraction}")
    if num_models < 1:
        raise ValueError(f"the number of models must be >= 1, got {num_models}")
    size = round(float(fraction) * num_examples)
    if not 0 < size < num_examples:
        raise ValueError(f"subset fraction {fraction} of {num_examples} examples gives {size} examples: "
                         "expected at least one example in and one out of each subset")
    masks = np.zeros((num_models, num_examples), dtype=bool)
    for k in range(num_models):
        rng = np.random.default_rng([int(seed), k])
        masks[k, rng.permutation(num_examples)[:size]] = True
    return masks


def memorisation_estimate(members: np.ndarray | torch.Tensor, correct: np.ndarray | torch.Tensor) -> np.ndarray:
    """The Feldman-Zhang memorisation estimate of each example:
    ``mem_i = P(correct_i | i in the subset) - P(correct_i | i not in it)``, each probability the
    mean over the models of that kind.

    Args:
        members: ``K x N`` booleans, ``True`` where model ``k`` trained on example ``i``.
        correct: ``K x N``, 1 (or ``True``) where model ``k`` predicts example ``i``'s label (any
            value in [0, 1], e.g. the label's probability, gives the soft estimate).

    Returns:
        ``N`` values in [-1, 1]; high means the example is only right when it was trained on.
        An example never in, or never out of, a subset has no estimate: ``NaN``, with one
        :class:`MemorisationWarning` counting them (train more models, or a fraction nearer 0.5).

    Raises:
        ValueError: if the arrays are not ``K x N`` of the same shape, ``members`` is not boolean
            (or 0/1), or ``correct`` has values outside [0, 1].
    """
    m = _as_2d("members", members)
    c = _as_2d("correct", correct).astype(np.float64)
    if m.shape != c.shape:
        raise ValueError(f"members and correct must have the same K x N shape, got {m.shape} and {c.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            bad = m[~np.isin(m, (0, 1))][0].item()
            raise ValueError(f"members must be booleans (or 0/1), got values such as {bad!r}")
        m = m.astype(bool)
    if not (np.isfinite(c).all() and (c >= 0).all() and (c <= 1).all()):
        bad = c[~(np.isfinite(c) & (c >= 0) & (c <= 1))][0].item()
        raise ValueError(f"correct must hold values in [0, 1] (1 = the model predicts the label), got {bad!r}")
    n_in, n_out = m.sum(0), (~m).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mem = (c * m).sum(0) / n_in - (c * ~m).sum(0) / n_out
    missing = (n_in == 0) | (n_out == 0)
    if missing.any():
        never_in, never_out = int((n_in == 0).sum()), int((n_out == 0).sum())
        warnings.warn(f"{int(missing.sum())} of {m.shape[1]} examples have no memorisation estimate (NaN): "
                      f"{never_in} never in a subset, {never_out} never out of one, over K = {m.shape[0]} models; "
                      "train more models", MemorisationWarning, stacklevel=2)
        mem[missing] = np.nan
    return mem


def simulated_oracle_target(members: np.ndarray | torch.Tensor, lsc: np.ndarray | torch.Tensor,
                            val_lsc_mean: np.ndarray | torch.Tensor, reference_val_lsc_mean: float) -> np.ndarray:
    """What a model retrained without each example would say of it, from subset models alone
    (the "simulated oracles" of :class:`~unlearning.methods.HypernetTrainer`).

    The mean logit-scaled confidence of example ``i`` over the models that did not train on it
    (over all K where every model did), plus the gap on unseen data between a full-data model
    (``reference_val_lsc_mean``, e.g. the original's mean on val) and the subset models (their
    mean on val): models trained on part of the data are less confident on unseen examples than
    one trained on all of it. Reads no oracle of any real request.

    Args:
        members: ``K x N`` booleans, ``True`` where model ``k`` trained on example ``i``.
        lsc: ``K x N`` logit-scaled confidence of each example's label under each model.
        val_lsc_mean: ``K``, each model's mean logit-scaled confidence on val.
        reference_val_lsc_mean: the full-data model's mean on the same val examples.

    Returns:
        ``N`` targets.

    Raises:
        ValueError: on shapes that do not match, naming them.
    """
    m = _as_2d("members", members).astype(bool)
    c = _as_2d("lsc", lsc).astype(np.float64)
    v = np.asarray(val_lsc_mean, dtype=np.float64).reshape(-1)
    if m.shape != c.shape or v.shape[0] != m.shape[0]:
        raise ValueError(f"members and lsc must be K x N and val_lsc_mean K, got {m.shape}, {c.shape} and {v.shape}")
    unseen = ~m
    count = unseen.sum(0)
    held = np.where(count > 0, (c * unseen).sum(0) / np.maximum(count, 1), c.mean(0))
    return held + (float(reference_val_lsc_mean) - float(v.mean()))


def load_simulated_oracles(path: str | Path, indices: np.ndarray, k: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The subset models' answers stored by ``unlearning memorise`` for ``indices``, the inputs of
    :func:`simulated_oracle_target`.

    Args:
        path: a ``memorisation.npz`` with ``index``, ``members``, ``lsc`` and ``val_lsc_mean``.
        indices: examples (indices into the source's training set), in the order wanted.
        k: the first ``k`` subset models (``None``: all).

    Returns:
        ``members`` and ``lsc`` (``k x len(indices)``) and ``val_lsc_mean`` (``k``).

    Raises:
        ValueError: when the file lacks those arrays, holds fewer than ``k`` models, or does not
            score every one of ``indices`` (naming how many it misses).
    """
    s = load_scores(path, required=("index", "members", "lsc", "val_lsc_mean"))
    total = s["members"].shape[0]
    k = total if k is None else int(k)
    if k > total:
        raise ValueError(f"{k} subset models asked, but {str(path)!r} holds {total}")
    indices = np.asarray(indices, dtype=np.int64)
    pos = np.minimum(np.searchsorted(s["index"], indices), s["index"].size - 1)
    missing = int((s["index"][pos] != indices).sum())
    if missing:
        raise ValueError(f"simulated oracles {str(path)!r} do not cover {missing} of the {indices.size} examples: "
                         "expected a memorise run on this training data")
    return s["members"][:k, pos].astype(bool), s["lsc"][:k, pos], s["val_lsc_mean"][:k]


def spearman(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Spearman's rank correlation of two score vectors (``scipy.stats.spearmanr``), over the
    examples where both are finite.

    Raises:
        ValueError: if the vectors differ in length or have fewer than 3 finite pairs.
    """
    from scipy.stats import spearmanr

    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).reshape(-1)
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"spearman needs two vectors of the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        raise ValueError(f"spearman needs at least 3 examples where both scores are finite, got {int(ok.sum())}")
    return float(spearmanr(x[ok], y[ok]).statistic)


def entanglement_score(retain: np.ndarray | torch.Tensor, forget: np.ndarray | torch.Tensor) -> float:
    """RUM's entanglement score of a forget set against its retain set in a feature space:

    ``ES = [mean_{i in R} ||g_i - mu_r||^2 + mean_{j in F} ||g_j - mu_f||^2]
    / [(||mu_r - mu||^2 + ||mu_f - mu||^2) / 2]``

    with ``mu_r``, ``mu_f`` the sets' means and ``mu = (mu_r + mu_f) / 2``: the spread within the
    two sets over the distance between them. Higher means more entangled (harder to unlearn).

    Args:
        retain: ``N_r x D`` features of the retain examples (e.g. :func:`penultimate_features`).
        forget: ``N_f x D`` features of the forget examples.

    Returns:
        The score, ``inf`` when the two means coincide.

    Raises:
        ValueError: if either set is empty, not 2-D, or the feature widths differ.
    """
    r = _features("retain", retain)
    f = _features("forget", forget)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"retain and forget features must have the same width, got {r.shape[1]} and {f.shape[1]}")
    mu_r, mu_f = r.mean(0), f.mean(0)
    mu = (mu_r + mu_f) / 2
    within = ((r - mu_r) ** 2).sum(1).mean() + ((f - mu_f) ** 2).sum(1).mean()
    between = (((mu_r - mu) ** 2).sum() + ((mu_f - mu) ** 2).sum()) / 2
    return float(within / between) if between > 0 else float("inf")


def _features(name: str, a: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} features must be a non-empty N x D array, got shape {arr.shape}")
    return arr


def centroid_distance(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Each example's distance to the mean of its own class in a feature space, in units of the
    mean distance between two class means:

    ``d_i = ||g_i - c_{y_i}|| / mean_{a < b} ||c_a - c_b||``

    with ``c_k`` the mean of the features of class ``k`` over the examples given (e.g. the whole
    training set). The unit makes values of different networks comparable. Classes differ in
    spread, so the examples with the lowest distances overall come mostly from the tightest
    classes; :func:`within_class_quantile` of it ranks each class on its own.

    Args:
        features: ``N x D`` features (e.g. :func:`penultimate_features` of the training set).
        labels: ``N`` integer labels.

    Returns:
        ``N`` non-negative values (float64).

    Raises:
        ValueError: if the features are not a non-empty ``N x D`` array, the labels are not ``N``
            integers, fewer than two classes are present, or all class means coincide.
    """
    g = _features("features", features)
    y = _labels(labels, g.shape[0])
    classes, inverse = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"centroid_distance needs at least 2 classes to set its unit, got {classes.size}")
    centroids = np.zeros((classes.size, g.shape[1]))
    np.add.at(centroids, inverse, g)
    centroids /= np.bincount(inverse)[:, None]
    a, b = np.triu_indices(classes.size, k=1)
    unit = float(np.linalg.norm(centroids[a] - centroids[b], axis=1).mean())
    if unit == 0.0:
        raise ValueError("centroid_distance: all class means coincide, so the distance has no unit")
    return np.linalg.norm(g - centroids[inverse], axis=1) / unit


def within_class_quantile(score: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Each example's quantile of ``score`` within its own class: ``(rank + 0.5) / n_class``, the
    rank counted from the class's lowest score (ties in the order given).

    Ranking these over the whole set takes the same share of every class from either end, which
    ranking the score itself does not. For :func:`centroid_distance` this matters for
    :func:`entanglement_score`: a set of the examples nearest their class means, the same share of
    each class, has nearly the retain set's mean and scores high (entangled); the lowest distances
    overall crowd into the tightest classes, whose mean lies apart from the rest.

    Args:
        score: ``N`` values (finite).
        labels: ``N`` integer labels.

    Returns:
        ``N`` values in (0, 1).

    Raises:
        ValueError: if the score is not ``N`` finite values or the labels are not ``N`` integers.
    """
    x = np.asarray(score.detach().cpu() if isinstance(score, torch.Tensor) else score, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError(f"within_class_quantile needs finite scores, got {x[~np.isfinite(x)][0]}")
    y = _labels(labels, x.size)
    out = np.empty(x.size)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        ranks = np.empty(members.size)
        ranks[np.argsort(x[members], kind="stable")] = np.arange(members.size)
        out[members] = (ranks + 0.5) / members.size
    return out


def _labels(labels: np.ndarray | torch.Tensor, n: int) -> np.ndarray:
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if y.size != n or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must be {n} integers (one per example), got {y.size} of dtype {y.dtype}")
    return y


def penultimate_layer(net: nn.Module) -> nn.Linear:
    """The classification head of a network: its last ``nn.Linear`` (in registration order), whose
    input is the penultimate feature vector. True of every net in :mod:`unlearning.nets`
    (``SmallCNN``'s ``head[-1]``, ``CifarResNet``'s ``head``, ``KitResNet18``'s ``model.fc``,
    ``FastCifarNet``'s ``head``, ``MLP``'s last layer).

    Raises:
        ValueError: if the network has no ``nn.Linear``.
    """
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"network {type(net).__name__} has no nn.Linear head: cannot find its penultimate features")
    return linears[-1]


@torch.no_grad()
def penultimate_outputs(
    net: nn.Module,
    batches: Iterable[torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The penultimate features of a network (the input of its head, :func:`penultimate_layer`)
    and its outputs (logits), from one pass: the features are read by a forward pre-hook while the
    network runs in eval mode; its mode is restored after.

    Args:
        net: the network (e.g. a :class:`~unlearning.modules.Classifier`'s ``net``).
        batches: input batches, on the network's device or the CPU.
        transform: applied to each batch first (e.g. the data module's ``eval_transform``).

    Returns:
        ``N x D`` features and ``N x C`` outputs (float32, on the CPU), in the batches' order.

    Raises:
        ValueError: if there is no batch, or the network has no ``nn.Linear`` head.
    """
    head = penultimate_layer(net)
    device = next(net.parameters()).device
    calls: list[torch.Tensor] = []
    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        calls.append(args[0].detach().flatten(1).float().cpu())

    was_training = net.training
    handle = head.register_forward_pre_hook(hook)
    net.eval()
    try:
        for x in batches:
            x = x.to(device)
            calls.clear()
            logits.append(net(transform(x) if transform is not None else x).detach().float().cpu())
            # a net that averages views (FastCifarNet's tta_flip) calls its head once per view:
            # the example's features are their mean
            feats.append(calls[0] if len(calls) == 1 else torch.stack(calls).mean(0))
    finally:
        handle.remove()
        net.train(was_training)
    if not feats:
        raise ValueError("penultimate_features got no batch")
    return torch.cat(feats), torch.cat(logits)


def penultimate_features(
    net: nn.Module,
    batches: Iterable[torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The penultimate features of a network (the input of its head, :func:`penultimate_layer`),
    read by a forward pre-hook while the network runs in eval mode; its mode is restored after.

    Args:
        net: the network (e.g. a :class:`~unlearning.modules.Classifier`'s ``net``).
        batches: input batches, on the network's device or the CPU.
        transform: applied to each batch first (e.g. the data module's ``eval_transform``).

    Returns:
        ``N x D`` features (float32, on the CPU), in the batches' order.
    """
    return penultimate_outputs(net, batches, transform)[0]
