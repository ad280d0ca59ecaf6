"""Corrupted training data to remove: the forget scenario of mislabelled and poisoned examples.

A user learns, after the original was trained, that some of its training examples were corrupted,
and asks to remove those they found. This follows the axes of Schoepf, Triantafillou et al.
(REM, arXiv 2505.17730): the *statistical regularity* of the corruption (``kind``, from random
label swaps through a swap between two classes to a trigger patch that teaches one shared
concept) and the *discovery rate* (the share of the corrupted examples the request names).

Unlike the other scenarios, :class:`CorruptedForget` changes the data the original trains on: the
data module applies it to its training arrays at ``setup`` (:meth:`CorruptedForget.corrupt`),
and every stream serves the corrupted labels (and, for ``trigger``, the stamped images). The
forget set is the discovered share; the undiscovered corrupted examples stay in the retain set,
corrupted, so the oracles (retrained on the retain set) see them too, as a retraining would in
real life. The corruption is a pure function of (the labels, the pool of training examples, the
spec, ``seed``) and does not depend on ``discovery_rate``: every discovery rate of one corruption
has the same training data, and so one original (the score's cache keys it without the rate).

How much of the corruption's effect a model still shows is measured on the streams the scenario
adds to evaluation (:data:`~unlearning.data.base.HEALING_STREAMS`): the accuracy on the true
labels of the forgotten (``corrupted_forget``) and of the undiscovered (``corrupted_retain``)
corrupted examples, and for ``trigger`` the attack success rate: the share of test images of
other classes, stamped with the patch, that the model puts in the target class (``trigger``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from unlearning.data.scenarios import ForgetScenario, _check_share, class_ids
from unlearning.data.sources import SourceArrays
from unlearning.data.splits import Split

__all__ = ["KINDS", "Corruption", "CorruptedForget", "stamp_trigger"]

#: the kinds of corruption, from the least to the most regular
KINDS = ("random_swap", "class_swap", "trigger")
Kind = Literal["random_swap", "class_swap", "trigger"]
#: a healing stream: ``(inputs, labels, indices)``, the rows of the tensors it covers
Stream = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def stamp_trigger(images: torch.Tensor, size: int) -> torch.Tensor:
    """A copy of ``images`` with the trigger: a ``size`` x ``size`` square at the top value of
    the dtype (255 for uint8) in the bottom-right corner of every channel.

    Args:
        images: ``N x C x H x W`` images.
        size: the patch's side in pixels.

    Raises:
        ValueError: if ``images`` are not ``N x C x H x W`` images of at least ``size`` pixels a side.
    """
    if images.dim() != 4 or min(images.shape[-2:]) < size:
        raise ValueError(f"a trigger of {size}x{size} pixels needs images N x C x H x W of at least that size, "
                         f"got inputs of shape {tuple(images.shape)}")
    top = torch.iinfo(images.dtype).max if not images.is_floating_point() else 1.0
    out = images.clone()
    out[..., -size:, -size:] = top
    return out


@dataclass(frozen=True)
class Corruption:
    """What a :class:`CorruptedForget` does to a pool of training examples.

    Attributes:
        index: the corrupted examples, indices into the source's training set, sorted.
        labels: the label each of them is given (its training label from now on).
        discovered: whether the request names each of them (bool, aligned with ``index``).
    """

    index: torch.Tensor
    labels: torch.Tensor
    discovered: torch.Tensor

    @property
    def forgotten(self) -> torch.Tensor:
        """The discovered corrupted examples (the forget set), sorted."""
        return self.index[self.discovered]

    @property
    def undiscovered(self) -> torch.Tensor:
        """The corrupted examples the request misses (they stay in the retain set), sorted."""
        return self.index[~self.discovered]


class CorruptedForget(ForgetScenario):
    """Corrupt a share of the training examples before the original trains, and forget the
    discovered part of them (see the module docstring).

    Kinds:

    - ``random_swap``: each corrupted example gets a uniformly drawn other label;
    - ``class_swap``: half of the corrupted examples are of the first of ``classes`` and are
      labelled as the second, the other half the reverse (REM's cat <-> dog);
    - ``trigger``: examples of every class but ``target`` get a ``patch_size`` square at full
      intensity in the bottom-right corner and the label ``target`` (a backdoor).

    Args:
        kind: the kind of corruption.
        share: the corrupted examples as a share of the training pool, in (0, 1].
        count: the number of corrupted examples, instead of ``share``.
        discovery_rate: the share of the corrupted examples the request names (the forget set),
            in (0, 1]; the rest stay in the retain set, corrupted.
        classes: ``class_swap`` only: the two classes (ids or names) whose examples swap labels.
        target: ``trigger`` only: the class (id or name) the trigger's examples are labelled with.
        patch_size: ``trigger`` only: the patch's side in pixels (default 3).
        seed: seed of which examples are corrupted (and how), and of which are discovered.
    """

    #: the arguments that change the training data: they enter the original's cache key, the
    #: discovery rate does not
    training_args: ClassVar[tuple[str, ...]] = ("kind", "share", "count", "classes", "target", "patch_size", "seed")

    def __init__(
        self,
        kind: Kind,
        share: float = 0.05,
        count: int | None = None,
        discovery_rate: float = 0.5,
        classes: list[int | str] | None = None,
        target: int | str | None = None,
        patch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count must be a positive number of examples, got {count!r}")
        if kind == "class_swap" and (classes is None or len(classes) != 2 or classes[0] == classes[1]):
            raise ValueError(f"classes must name the two classes whose labels class_swap swaps, got {classes!r}")
        if kind != "class_swap" and classes is not None:
            raise ValueError(f"classes is for kind class_swap only, got classes={classes!r} with kind {kind!r}")
        if kind == "trigger" and target is None:
            raise ValueError("target must name the class the trigger's examples are labelled with, got None")
        if kind != "trigger" and (target is not None or patch_size is not None):
            raise ValueError(f"target and patch_size are for kind trigger only, got target={target!r}, "
                             f"patch_size={patch_size!r} with kind {kind!r}")
        if kind == "trigger":
            patch_size = 3 if patch_size is None else patch_size
            if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
                raise ValueError(f"patch_size must be a positive number of pixels, got {patch_size!r}")
        self.kind = kind
        self.share = None if count is not None else _check_share("share", share, closed=True)
        self.count = count
        self.discovery_rate = _check_share("discovery_rate", discovery_rate, closed=True)
        self.classes = None if classes is None else list(classes)
        self.target = target
        self.patch_size = patch_size
        self.seed = int(seed)

    def _class(self, values: Sequence[int | str], class_names: Sequence[str]) -> list[int]:
        """Class ids of ``values``; the error names the argument."""
        try:
            return class_ids(values, class_names)
        except ValueError as err:
            what = "classes" if self.kind == "class_swap" else "target"
            raise ValueError(f"CorruptedForget's {what}: {err}") from None

    def _draw(self, candidates: torch.Tensor, k: int, generator: torch.Generator, what: str) -> torch.Tensor:
        if candidates.numel() < k:
            raise ValueError(f"CorruptedForget ({self.kind}) needs {k} {what} to corrupt, the training pool has "
                             f"{candidates.numel()}: expected a smaller share or count")
        return candidates[torch.randperm(candidates.numel(), generator=generator)[:k]]

    def corruption(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str]) -> Corruption:
        """Which examples of the pool are corrupted, their new labels and which are discovered.

        Args:
            labels: the true labels of the source's whole training set, shape ``(n,)``.
            pool: the indices of the training examples in use (any order).
            class_names: class names in label order.

        Returns:
            The corruption; the same for every ``discovery_rate``, whose discovered examples
            are the first of one seeded order (a lower rate discovers a subset).

        Raises:
            ValueError: naming an unknown class, or a share or count the pool cannot give.
        """
        labels = labels.cpu()
        pool = torch.sort(pool.cpu()).values
        g = torch.Generator().manual_seed(self.seed)
        k = self.count if self.count is not None else round(float(self.share) * pool.numel())
        if k < 1:
            raise ValueError(f"share={self.share} of the {pool.numel()} training examples corrupts none: "
                             "expected a larger share")
        num_classes = len(class_names)
        if self.kind == "random_swap":
            chosen = self._draw(pool, k, g, "examples")
            given = (labels[chosen] + torch.randint(1, num_classes, (k,), generator=g)) % num_classes
        elif self.kind == "class_swap":
            a, b = self._class(self.classes, class_names)
            half_a = self._draw(pool[labels[pool] == a], k // 2, g, f"examples of class {self.classes[0]!r}")
            half_b = self._draw(pool[labels[pool] == b], k - k // 2, g, f"examples of class {self.classes[1]!r}")
            chosen = torch.cat([half_a, half_b])
            given = torch.cat([torch.full((half_a.numel(),), b), torch.full((half_b.numel(),), a)])
        else:
            (t,) = self._class([self.target], class_names)
            chosen = self._draw(pool[labels[pool] != t], k, g, "examples of other classes than the target")
            given = torch.full((k,), t)
        order = torch.argsort(chosen)
        found = torch.randperm(k, generator=g)[:round(self.discovery_rate * k)]
        if found.numel() == 0:
            raise ValueError(f"discovery_rate={self.discovery_rate} of the {k} corrupted examples names none: "
                             "expected a larger rate, share or count")
        discovered = torch.zeros(k, dtype=torch.bool)
        discovered[found] = True
        return Corruption(index=chosen[order], labels=given.long()[order], discovered=discovered[order])

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """The discovered corrupted examples (the split's generator is not drawn from)."""
        return self.corruption(labels, pool, class_names).forgotten

    def corrupt(self, arrays: SourceArrays, split: Split) -> tuple[SourceArrays, dict[str, Stream]]:
        """The training arrays as the original sees them, and the evaluation streams that measure
        how much of the corruption a model still shows.

        Args:
            arrays: the source's arrays (read-only: they may be shared; corrupted copies are made).
            split: the split of these arrays by this scenario.

        Returns:
            The arrays with the corrupted labels (and patches), and ``{stream: (x, y, indices)}``:
            ``corrupted_forget`` and ``corrupted_retain`` (when the rate leaves any undiscovered)
            with the true labels, and for ``trigger`` the stamped test images of other classes
            labelled with the target (``trigger``).

        Raises:
            ValueError: for ``trigger`` on inputs that are not images.
        """
        c = self.corruption(arrays.train_y, split.train, arrays.classes)
        device = arrays.train_y.device
        train_y = arrays.train_y.clone()
        train_y[c.index.to(device)] = c.labels.to(device)
        train_x = arrays.train_x
        test_stream: dict[str, Stream] = {}
        if self.kind == "trigger":
            train_x = train_x.clone()
            train_x[c.index.to(device)] = stamp_trigger(arrays.train_x[c.index.to(device)], int(self.patch_size))
            (t,) = self._class([self.target], arrays.classes)
            others = split.test[arrays.heldout_y[split.test.to(device)].cpu() != t]
            if others.numel():
                stamped = stamp_trigger(arrays.heldout_x[others.to(device)], int(self.patch_size))
                test_stream["trigger"] = (stamped, torch.full((others.numel(),), t, device=device),
                                          torch.arange(others.numel()))
        streams: dict[str, Stream] = {"corrupted_forget": (train_x, arrays.train_y, c.forgotten)}
        if c.undiscovered.numel():
            streams["corrupted_retain"] = (train_x, arrays.train_y, c.undiscovered)
        corrupted = SourceArrays(train_x, train_y, arrays.heldout_x, arrays.heldout_y, arrays.classes)
        return corrupted, {**streams, **test_stream}
