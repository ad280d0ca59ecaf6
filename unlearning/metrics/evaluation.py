"""The measurement of a model: from its per-example outputs on the streams to the logged metrics.

Plain functions, no Lightning: :class:`~unlearning.modules.EvaluatedModule` calls
:func:`stream_outputs` on every evaluation batch and :func:`measure` at the end of every
evaluation epoch, and anything that holds a model's outputs (a cached model re-evaluated, a test)
can call them without a ``Trainer``.

What is measured, per stream (``retain``, ``forget``, ``val``, ``test``): the accuracy and the mean
loss (and the reference's accuracy and the gap to it); across streams: the simple MIA (forget vs
test losses), MIA-efficacy (retain vs test confidences, applied to forget), at test time the
predictive-distribution attack (forget vs test :func:`~unlearning.metrics.attack_features`), and,
when a reference (the retrain oracle) was evaluated beside the model, the same attacks on the
reference, the gaps and the mean KL divergence from the reference's outputs to the model's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearning.metrics.mia import mia_efficacy, predictive_mia, simple_mia
from unlearning.metrics.outputs import attack_features, per_example_stats

__all__ = ["evaluate", "measure", "run_attack", "stream_outputs"]

#: the predictive attack's cross-validation splits in every evaluation (a few seconds on a CPU)
PREDICTIVE_SPLITS = 5


def stream_outputs(
    logits: torch.Tensor,
    labels: torch.Tensor,
    reference_logits: torch.Tensor | None = None,
    features: bool = False,
) -> dict[str, torch.Tensor]:
    """The per-example outputs of one batch that :func:`measure` reads, once concatenated.

    Args:
        logits: ``(n, classes)`` float logits of the model.
        labels: ``(n,)`` true classes.
        reference_logits: ``(n, classes)`` float logits of the reference (oracle), if one is
            evaluated beside the model.
        features: add the attack features of the predictive attack (``features``).

    Returns:
        ``(n, ...)`` tensors: the :func:`~unlearning.metrics.per_example_stats` (``loss``,
        ``confidence``, ``lsc``, ``entropy``), then ``features`` if asked, then, with a
        reference, its statistics as ``ref_<stat>`` and ``kl_to_ref``, the KL divergence
        ``KL(reference || model)`` of each example's predictive distributions.
    """
    out = {k: v.detach() for k, v in per_example_stats(logits, labels).items()}
    if features:
        out["features"] = attack_features(logits, labels).detach()
    if reference_logits is not None:
        for k, v in per_example_stats(reference_logits, labels).items():
            out[f"ref_{k}"] = v
        log_p, log_q = F.log_softmax(logits, 1), F.log_softmax(reference_logits, 1)
        out["kl_to_ref"] = (log_q.exp() * (log_q - log_p)).sum(1).detach()
    return out


def _predictive_attack(members: np.ndarray, nonmembers: np.ndarray, seed: int = 0) -> float:
    """The predictive-distribution attack as every evaluation runs it: :data:`PREDICTIVE_SPLITS` splits."""
    return predictive_mia(members, nonmembers, n_splits=PREDICTIVE_SPLITS, seed=seed)


#: the fewest examples of each sample with which an attack can run. simple_mia needs 5 and its
#: stratified 10 % test split at least one example of each side (2 x 6 examples); predictive_mia
#: needs 10; the SVC of mia_efficacy one of each side and one example to judge
_MIN_EXAMPLES: dict[Callable[..., float], int] = {simple_mia: 6, predictive_mia: 10, _predictive_attack: 10,
                                                  mia_efficacy: 1}


def run_attack(attack: Callable[..., float], *samples: np.ndarray, seed: int = 0) -> float:
    """Run a membership attack on the samples, or NaN when they cannot be attacked.

    An attack cannot run on too few examples (a small forget set; see ``_MIN_EXAMPLES``) or
    on non-finite outputs (a diverged model): the metric is then NaN, decided before the attack
    runs (scikit-learn would fail fold by fold, with a warning and a traceback each). A
    ``ValueError`` on samples that are large enough and finite is a bug and is raised.

    Args:
        attack: :func:`~unlearning.metrics.simple_mia`, :func:`~unlearning.metrics.mia_efficacy`
            or the predictive attack of every evaluation (any function of the samples and
            ``seed``; an unknown one needs at least one example per sample).
        *samples: the attack's per-example inputs.
        seed: the attack's seed.

    Returns:
        The attack's value, or NaN.

    Raises:
        ValueError: from the attack, when the samples were large enough and finite.
    """
    least = _MIN_EXAMPLES.get(attack, 1)
    if any(len(s) < least or not np.isfinite(s).all() for s in samples):
        return math.nan
    return attack(*samples, seed=seed)


def measure(
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    accuracy: Mapping[str, float],
    mean_loss: Mapping[str, float],
    reference_accuracy: Mapping[str, float] | None = None,
    reference_name: str = "oracle",
    seed: int = 0,
    predictive: bool = True,
) -> dict[str, float]:
    """The metrics of one evaluation, from the per-example outputs of every stream.

    Args:
        outputs: ``{stream: {name: (n, ...) array}}``, the :func:`stream_outputs` of each stream
            concatenated over its batches (``features`` needed on ``forget`` and ``test`` when
            ``predictive``; ``ref_<stat>`` and ``kl_to_ref`` when there is a reference).
        accuracy: ``{stream: accuracy}``; its streams, in its order, are the streams reported.
        mean_loss: ``{stream: mean cross-entropy}`` of the same streams.
        reference_accuracy: ``{stream: accuracy}`` of the reference evaluated beside the model;
            ``None`` when there is none.
        reference_name: the reference's name in the metric names (``oracle``).
        seed: seed of the attacks' subsampling and cross-validation splits.
        predictive: run the predictive-distribution attack (test time only: it costs seconds).

    Returns:
        ``{metric: value}``: ``<stream>_acc``, ``<stream>_loss`` (and ``<ref>_<stream>_acc``,
        ``<stream>_acc_gap``); with ``forget`` and ``test`` outputs ``simple_mia``,
        ``predictive_mia``, with ``retain`` ``mia_efficacy``; with a reference
        ``<ref>_simple_mia``, ``simple_mia_gap``, ``<ref>_mia_efficacy``, ``kl_to_<ref>_forget``
        and ``kl_to_<ref>_test``. An attack that cannot run (too few examples) is NaN.
    """
    scalars: dict[str, float] = {}
    for stream, acc in accuracy.items():
        scalars[f"{stream}_acc"] = acc
        scalars[f"{stream}_loss"] = mean_loss[stream]
        if reference_accuracy is not None:
            ref = reference_accuracy[stream]
            scalars[f"{reference_name}_{stream}_acc"] = ref
            scalars[f"{stream}_acc_gap"] = acc - ref
    f, t, r = outputs.get("forget"), outputs.get("test"), outputs.get("retain")
    if f is None or t is None:
        return scalars

    def attack(fn: Callable[..., float], *samples: Any) -> float:
        return run_attack(fn, *samples, seed=seed)

    scalars["simple_mia"] = attack(simple_mia, f["loss"], t["loss"])
    if predictive:
        scalars["predictive_mia"] = attack(_predictive_attack, f["features"], t["features"])
    if r is not None:
        scalars["mia_efficacy"] = attack(mia_efficacy, r["confidence"], t["confidence"], f["confidence"])
    if reference_accuracy is not None:
        ref_mia = attack(simple_mia, f["ref_loss"], t["ref_loss"])
        scalars[f"{reference_name}_simple_mia"] = ref_mia
        scalars["simple_mia_gap"] = scalars["simple_mia"] - ref_mia
        if r is not None:
            scalars[f"{reference_name}_mia_efficacy"] = attack(
                mia_efficacy, r["ref_confidence"], t["ref_confidence"], f["ref_confidence"]
            )
        scalars[f"kl_to_{reference_name}_forget"] = float(np.mean(f["kl_to_ref"]))
        scalars[f"kl_to_{reference_name}_test"] = float(np.mean(t["kl_to_ref"]))
    return scalars


@torch.no_grad()
def evaluate(
    model: Callable[[torch.Tensor], torch.Tensor],
    loaders: Mapping[str, Iterable[tuple[torch.Tensor, torch.Tensor]]],
    seed: int = 0,
    predictive: bool = True,
) -> dict[str, Any]:
    """Evaluate a model on named streams, on one device, without a ``Trainer``: what a test of an
    :class:`~unlearning.modules.EvaluatedModule` measures (without a reference), for a cached model
    evaluated once more.

    Args:
        model: maps a batch of inputs to logits (a module in eval mode).
        loaders: ``{stream: batches of (inputs, labels)}``, e.g. a data module's evaluation
            loaders; the streams are reported in this order.
        seed: seed of the attacks.
        predictive: run the predictive-distribution attack (its features are kept on ``forget``
            and ``test``).

    Returns:
        ``{"scalars": measure(...), "outputs": {stream: {name: array}}}``, as
        ``EvaluatedModule.last_eval`` holds them after a test.
    """
    outputs: dict[str, dict[str, np.ndarray]] = {}
    accuracy: dict[str, float] = {}
    mean_loss: dict[str, float] = {}
    for stream, loader in loaders.items():
        parts: dict[str, list[torch.Tensor]] = {}
        correct = seen = 0
        for x, y in loader:
            logits = model(x).float()
            correct += int((logits.argmax(1) == y).sum())
            seen += int(y.numel())
            for k, v in stream_outputs(logits, y, features=predictive and stream in ("forget", "test")).items():
                parts.setdefault(k, []).append(v)
        outputs[stream] = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
        accuracy[stream] = correct / seen if seen else math.nan
        mean_loss[stream] = float(outputs[stream]["loss"].mean()) if seen else math.nan
    return {"scalars": measure(outputs, accuracy, mean_loss, seed=seed, predictive=predictive), "outputs": outputs}
