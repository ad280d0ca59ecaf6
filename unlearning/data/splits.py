"""Retain / forget / val / test splits as a pure function of (labels, spec, seed).

Nothing here depends on the process, the device or the DDP rank: every rank computes the same
split from the same arguments, and so does every later run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["STREAMS", "Split", "check_forget_fraction", "check_forget_indices", "load_index_file", "make_split"]

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


def load_index_file(path: str | Path, num_train: int | None = None) -> np.ndarray:
    """Read forget indices from a ``.npy`` file or a text file (whitespace or comma separated).

    Args:
        path: the file.
        num_train: the size of the source's training set; when given, every index must be in
            ``[0, num_train)`` and listed once (checked here to name the file and the entry).

    Raises:
        ValueError: if the file is missing, does not hold integers, or (with ``num_train``) lists
            an index out of range or twice; the message names the file and the bad entry.
    """
    path = Path(path)
    where = f"forget index file {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist: expected a .npy file or a text file of integer indices")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{where} cannot be read ({str(err).splitlines()[0] if str(err) else type(err).__name__}): "
                             "expected an integer array saved by numpy.save") from None
    else:
        try:
            text = path.read_text().replace(",", " ").split()
        except UnicodeDecodeError:
            raise ValueError(f"{where} is not a text file: expected integer indices separated by "
                             "whitespace or commas, or a .npy file") from None
        bad = next(((i, t) for i, t in enumerate(text) if not re.fullmatch(r"[+-]?[0-9]+", t)), None)
        if bad is not None:
            raise ValueError(f"{where} must hold integers: entry {bad[0]} is {bad[1]!r}: expected integer "
                             "indices into the training set, separated by whitespace or commas")
        arr = np.array([int(t) for t in text], dtype=np.int64)
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{where} must hold integers, got dtype {arr.dtype}: expected an integer array")
    arr = arr.astype(np.int64).reshape(-1)
    if num_train is not None:
        check_forget_indices(arr, num_train, where)
    return arr


def check_forget_indices(idx: np.ndarray, num_train: int, where: str = "forget index list") -> None:
    """Every index in ``[0, num_train)`` and listed once.

    Args:
        idx: the indices, in the order given.
        num_train: the size of the source's training set.
        where: what listed them, for the message (e.g. the file).

    Raises:
        ValueError: naming ``where``, the first bad index and its entry.
    """
    out = np.flatnonzero((idx < 0) | (idx >= num_train))
    if out.size:
        raise ValueError(f"{where}: index {int(idx[out[0]])} (entry {int(out[0])}) is out of range: expected "
                         f"indices in [0, {num_train - 1}] (the training set has {num_train} examples)")
    _, first, counts = np.unique(idx, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(np.flatnonzero(idx == idx[first[counts > 1][0]])[1])  # the second listing of it
        raise ValueError(f"{where}: index {int(idx[dup])} is listed more than once (entry {dup} repeats it): "
                         "expected every index once")


def check_forget_fraction(forget_fraction: float) -> float:
    """The share of the training set to forget, checked to lie in (0, 1).

    Raises:
        ValueError: naming the value.
    """
    if not 0.0 < float(forget_fraction) < 1.0:
        raise ValueError(f"forget_fraction must be in (0, 1), got {forget_fraction}")
    return float(forget_fraction)


def _class_ids(forget_classes: Sequence[int | str], class_names: Sequence[str]) -> list[int]:
    ids = []
    for c in forget_classes:
        if isinstance(c, str) and not c.lstrip("-").isdigit():
            if c not in class_names:
                raise ValueError(f"unknown forget class {c!r}: expected one of {list(class_names)}")
            ids.append(list(class_names).index(c))
        else:
            i = int(c)
            if not 0 <= i < len(class_names):
                raise ValueError(f"unknown forget class {c!r}: expected an id in [0, {len(class_names) - 1}]")
            ids.append(i)
    return ids


def make_split(
    train_labels: torch.Tensor,
    num_heldout: int,
    class_names: Sequence[str],
    *,
    forget_fraction: float = 0.1,
    forget_classes: Sequence[int | str] | None = None,
    forget_index: Sequence[int] | np.ndarray | None = None,
    train_subset: int | None = None,
    heldout_subset: int | None = None,
    seed: int = 0,
    val_test_seed: int = 42,
    val_fraction: float = 0.5,
) -> Split:
    """Split a labelled training set into retain/forget and a held-out set into val/test.

    The forget set is, in order of precedence: every example of ``forget_classes``; the examples
    listed in ``forget_index``; or a random ``forget_fraction`` of the training examples.

    Args:
        train_labels: labels of the source's training set, shape ``(n,)``.
        num_heldout: size of the source's held-out set (CIFAR-10's test set).
        class_names: class names in label order.
        forget_fraction: share of the (sub)set to forget, in (0, 1).
        forget_classes: class ids or names to forget entirely.
        forget_index: indices into the source's training set to forget.
        train_subset: use only this many training examples (for CPU runs); forget indices given by
            ``forget_index`` are always part of the subset.
        heldout_subset: use only this many held-out examples (drawn with ``val_test_seed``), split
            into val and test as the whole set would be; shrinks evaluation on small machines.
        seed: seed of the subset and of the random forget set.
        val_test_seed: seed of the val/test split (42, as in the starting kit).
        val_fraction: share of the held-out set used for validation; the rest is test.

    Returns:
        The split.

    Raises:
        ValueError: on any bad spec (fraction outside (0, 1), unknown class, index out of range,
            duplicate index, empty forget set, subset larger than the data, ...).
    """
    n = int(train_labels.shape[0])
    if forget_classes and forget_index is not None:
        raise ValueError("give either forget_classes or a forget index file, not both")
    if train_subset is not None and not 1 < train_subset <= n:
        raise ValueError(f"train_subset must be in [2, {n}], got {train_subset}")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)

    if forget_index is not None:
        idx = np.asarray(forget_index, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("the forget index file lists no index: the forget set would be empty")
        check_forget_indices(idx, n)
        forget = torch.from_numpy(np.unique(idx))
        if train_subset is not None:
            if train_subset <= forget.numel():
                raise ValueError(
                    f"train_subset={train_subset} must exceed the {forget.numel()} forget indices"
                )
            is_forget = torch.zeros(n, dtype=torch.bool)
            is_forget[forget] = True
            others = perm[~is_forget[perm]][: train_subset - forget.numel()]
            pool = torch.cat([forget, others])
        else:
            pool = torch.arange(n)
    else:
        pool = perm[:train_subset] if train_subset is not None else torch.arange(n)
        if forget_classes:
            ids = torch.tensor(_class_ids(forget_classes, class_names))
            forget = pool[torch.isin(train_labels[pool], ids)]
            if forget.numel() == 0:
                raise ValueError(f"forget classes {list(forget_classes)} have no example in the training set")
        else:
            k = round(check_forget_fraction(forget_fraction) * pool.numel())
            if k == 0:
                raise ValueError(
                    f"forget_fraction={forget_fraction} of {pool.numel()} examples is an empty forget set"
                )
            order = torch.randperm(pool.numel(), generator=gen)
            forget = pool[order[:k]]
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
