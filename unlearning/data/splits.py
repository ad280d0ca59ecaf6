"""Retain / forget / val / test splits as a pure function of (labels, spec, seed).

Nothing here depends on the process, the device or the DDP rank: every rank computes the same
split from the same arguments, and so does every later run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unlearning.data.scenarios import (  # the index file's reader and the checks: importable from here as before
    ClassForget,
    ForgetScenario,
    IndexForget,
    RandomForget,
    check_forget_fraction,
    check_forget_indices,
    load_index_file,
)

__all__ = ["STREAMS", "Split", "check_forget_fraction", "check_forget_indices", "load_index_file", "make_split",
           "shorthand_scenario"]

#: Names of the data streams a module can ask for. ``train`` is retain + forget shuffled together
#: (what the original model trains on).
STREAMS = ("train", "retain", "forget", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices of each part of a split.

    Attributes:
        retain: indices into the source's training set, sorted.
        forget: indices into the source's training set, sorted, disjoint from ``retain``.
        val: indices into the source's held-out (test) set.
        test: indices into the source's held-out set, disjoint from ``val``.
    """

    retain: torch.Tensor
    forget: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    @property
    def train(self) -> torch.Tensor:
        """Retain and forget together: the original model's training set, sorted."""
        return torch.sort(torch.cat([self.retain, self.forget])).values


def shorthand_scenario(
    forget_fraction: float = 0.1,
    forget_classes: Sequence[int | str] | None = None,
    forget_index: Sequence[int] | np.ndarray | None = None,
) -> ForgetScenario:
    """The scenario the shorthand arguments name: every example of ``forget_classes``; else the
    examples listed in ``forget_index``; else a random ``forget_fraction`` of the training examples.

    Raises:
        ValueError: when both classes and indices are given.
    """
    if forget_classes and forget_index is not None:
        raise ValueError("give either forget_classes or a forget index file, not both")
    if forget_classes:
        return ClassForget(list(forget_classes))
    if forget_index is not None:
        return IndexForget(indices=np.asarray(forget_index, dtype=np.int64).reshape(-1).tolist())
    return RandomForget(forget_fraction)


def make_split(
    train_labels: torch.Tensor,
    num_heldout: int,
    class_names: Sequence[str],
    *,
    forget_fraction: float = 0.1,
    forget_classes: Sequence[int | str] | None = None,
    forget_index: Sequence[int] | np.ndarray | None = None,
    forget_scenario: ForgetScenario | None = None,
    train_subset: int | None = None,
    heldout_subset: int | None = None,
    seed: int = 0,
    val_test_seed: int = 42,
    val_fraction: float = 0.5,
) -> Split:
    """Split a labelled training set into retain/forget and a held-out set into val/test.

    The forget set is chosen by ``forget_scenario`` (see :mod:`unlearning.data.scenarios`), or by
    the shorthands (:func:`shorthand_scenario`): every example of ``forget_classes``; the examples
    listed in ``forget_index``; or a random ``forget_fraction`` of the training examples.

    Args:
        train_labels: labels of the source's training set, shape ``(n,)``.
        num_heldout: size of the source's held-out set (CIFAR-10's test set).
        class_names: class names in label order.
        forget_fraction: share of the (sub)set to forget, in (0, 1).
        forget_classes: class ids or names to forget entirely.
        forget_index: indices into the source's training set to forget.
        forget_scenario: the rule that picks the forget set, instead of the shorthands.
        train_subset: use only this many training examples (for CPU runs); indices a scenario
            pins (``forget_index``) are always part of the subset.
        heldout_subset: use only this many held-out examples (drawn with ``val_test_seed``), split
            into val and test as the whole set would be; shrinks evaluation on small machines.
        seed: seed of the subset and of the scenario's draws (the random forget set).
        val_test_seed: seed of the val/test split (42, as in the starting kit).
        val_fraction: share of the held-out set used for validation; the rest is test.

    Returns:
        The split.

    Raises:
        ValueError: on any bad spec (fraction outside (0, 1), unknown class, index out of range,
            duplicate index, empty forget set, subset larger than the data, ...).
    """
    n = int(train_labels.shape[0])
    if forget_scenario is not None and (forget_classes or forget_index is not None):
        raise ValueError("give either a forget_scenario or the forget_classes / forget index shorthands, not both")
    scenario = forget_scenario if forget_scenario is not None else shorthand_scenario(forget_fraction, forget_classes, forget_index)
    if train_subset is not None and not 1 < train_subset <= n:
        raise ValueError(f"train_subset must be in [2, {n}], got {train_subset}")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    pinned = scenario.pinned(n)
    if pinned is None or train_subset is None:
        pool = perm[:train_subset] if train_subset is not None else torch.arange(n)
    else:
        pinned_t = torch.from_numpy(np.unique(pinned))
        if train_subset <= pinned_t.numel():
            raise ValueError(f"train_subset={train_subset} must exceed the {pinned_t.numel()} forget indices")
        is_pinned = torch.zeros(n, dtype=torch.bool)
        is_pinned[pinned_t] = True
        pool = torch.cat([pinned_t, perm[~is_pinned[perm]][: train_subset - pinned_t.numel()]])
    forget = scenario.select(train_labels, pool, class_names, gen)
    forget = torch.sort(forget).values
    in_forget = torch.zeros(n, dtype=torch.bool)
    in_forget[forget] = True
    retain = torch.sort(pool[~in_forget[pool]]).values
    if retain.numel() == 0:
        raise ValueError("the retain set would be empty: the forget set covers the whole training set")

    if num_heldout < 2:
        raise ValueError(f"need at least 2 held-out examples for val and test, got {num_heldout}")
    heldout = torch.arange(num_heldout)
    if heldout_subset is not None:
        if not 2 <= heldout_subset <= num_heldout:
            raise ValueError(f"heldout_subset must be in [2, {num_heldout}], got {heldout_subset}")
        g = torch.Generator().manual_seed(val_test_seed + 1)
        heldout = torch.sort(torch.randperm(num_heldout, generator=g)[:heldout_subset]).values
    # As in the starting kit: test, val = random_split(held_out, [0.5, 0.5], Generator().manual_seed(42)).
    parts = torch.utils.data.random_split(
        range(heldout.numel()), [1 - val_fraction, val_fraction], generator=torch.Generator().manual_seed(val_test_seed)
    )
    test, val = (heldout[torch.tensor(list(p.indices), dtype=torch.long)] for p in parts)
    return Split(retain=retain.long(), forget=forget.long(), val=val, test=test)
