"""Forget scenarios: which training examples a deletion request names.

A scenario is chosen by ``class_path`` in the data module's ``forget_scenario`` argument, e.g.::

    data:
      class_path: CIFAR10DataModule
      init_args:
        forget_scenario:
          class_path: ScoreBandForget
          init_args: {scores_file: runs/memorisation/cpu/memorisation.npz, band: high, fraction: 0.1}

Each scenario is a pure function of (labels, the pool of training examples, class names, a seeded
generator): every rank, and every later run, selects the same forget set. A scenario that reads a
file names the argument in :attr:`ForgetScenario.content_args`: the score's cache keys such a file
by its content, never by its path, so that a file rewritten in place is a new recipe.

The data module's ``forget_fraction``, ``forget_classes`` and ``forget_index_file`` remain as
shorthands for :class:`RandomForget`, :class:`ClassForget` and :class:`IndexForget`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

__all__ = ["ClassForget", "ForgetScenario", "IndexForget", "RandomForget", "ScoreBandForget", "check_forget_fraction",
           "check_forget_indices", "class_ids", "load_index_file"]


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
    return _check_share("forget_fraction", forget_fraction)


def class_ids(classes: Sequence[int | str], class_names: Sequence[str]) -> list[int]:
    """Class ids of ``classes`` given by id or by name.

    Raises:
        ValueError: naming an unknown class and what is expected.
    """
    ids = []
    for c in classes:
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


def _check_share(name: str, value: float, closed: bool = False) -> float:
    """``value`` checked to lie in (0, 1), or (0, 1] when ``closed``; the error names ``name``."""
    ok = 0.0 < float(value) <= 1.0 if closed else 0.0 < float(value) < 1.0
    if not ok:
        raise ValueError(f"{name} must be in (0, 1{']' if closed else ')'}, got {value}")
    return float(value)


def _count(fraction: float, pool: torch.Tensor) -> int:
    k = round(fraction * pool.numel())
    if k == 0:
        raise ValueError(f"forget_fraction={fraction} of {pool.numel()} examples is an empty forget set")
    return k


class ForgetScenario:
    """Base class: a rule that picks the forget set from the pool of training examples.

    Subclasses implement :meth:`select`; one that must have given examples in the pool (a list of
    indices) returns them from :meth:`pinned`.
    """

    #: init arguments that name files whose content enters the cache key in place of the path
    content_args: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`pinned` returns examples the training subset must hold (the scenario then
    #: shapes the original's training set, not only the split of it)
    pins_examples: ClassVar[bool] = False

    def spec(self) -> dict[str, Any]:
        """The scenario as a config section (``class_path`` and ``init_args``), of plain values."""
        cls = type(self)
        args = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()
                if not k.startswith("_") and v is not None}
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}

    def pinned(self, num_train: int) -> np.ndarray | None:
        """Indices the pool must hold (drawn around them when the data module takes a subset).

        Args:
            num_train: the size of the source's training set.

        Returns:
            The indices, or ``None`` when any pool will do.
        """
        return None

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """The forget set.

        Args:
            labels: labels of the source's whole training set, shape ``(n,)``.
            pool: the indices of the training examples in use (all, or the seeded subset).
            class_names: class names in label order.
            generator: the split's seeded generator (draws from it are part of the split).

        Returns:
            Indices into the source's training set, a non-empty subset of ``pool``.
        """
        raise NotImplementedError


class RandomForget(ForgetScenario):
    """A seeded random share of the training examples (the competition's setting).

    Args:
        fraction: share of the pool to forget, in (0, 1).
    """

    def __init__(self, fraction: float = 0.1) -> None:
        self.fraction = check_forget_fraction(fraction)

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """A random ``fraction`` of the pool."""
        k = _count(self.fraction, pool)
        return pool[torch.randperm(pool.numel(), generator=generator)[:k]]


class ClassForget(ForgetScenario):
    """Every example of some classes (class-wise forgetting), or a seeded share of them (partial
    class).

    Args:
        classes: class ids or names; several make a multi-class scenario.
        share: share of each class's examples to forget, in (0, 1]; 1 forgets the whole class.
    """

    def __init__(self, classes: list[int | str], share: float = 1.0) -> None:
        if not classes:
            raise ValueError("classes must name at least one class to forget, got an empty list")
        self.classes = list(classes)
        self.share = _check_share("share", share, closed=True)

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """The pool's examples of the classes (a share of each class when ``share`` < 1)."""
        ids = torch.tensor(class_ids(self.classes, class_names))
        forget = pool[torch.isin(labels[pool], ids)]
        if forget.numel() == 0:
            raise ValueError(f"forget classes {self.classes} have no example in the training set")
        if self.share < 1.0:
            parts = []
            for c in ids.tolist():
                members = forget[labels[forget] == c]
                parts.append(members[torch.randperm(members.numel(), generator=generator)[:_count(self.share, members)]])
            forget = torch.cat(parts)
        return forget


class IndexForget(ForgetScenario):
    """Examples given by index into the source's training set: listed in a file (``.npy``, or text
    of integers separated by whitespace or commas) or in the config; they are always part of the
    pool.

    Args:
        path: the file (its content, not its path, enters the cache key).
        indices: the indices themselves, instead of a file.
    """

    content_args: ClassVar[tuple[str, ...]] = ("path",)
    pins_examples: ClassVar[bool] = True

    def __init__(self, path: str | None = None, indices: list[int] | None = None) -> None:
        if (path is None) == (indices is None):
            raise ValueError("IndexForget takes a path or indices: give exactly one")
        self.path = str(path) if path is not None else None
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        self._checked: tuple[int, np.ndarray] | None = None  # (num_train, indices): the file is read once

    def pinned(self, num_train: int) -> np.ndarray:
        """The indices (checked: in range, each once, at least one)."""
        if self._checked is not None and self._checked[0] == num_train:
            return self._checked[1]
        if self.path is not None:
            idx = load_index_file(self.path, num_train=num_train)
            where = f"the forget index file {self.path!r}"
        else:
            idx = self.indices
            check_forget_indices(idx, num_train)
            where = "the forget index list"
        if idx.size == 0:
            raise ValueError(f"{where} lists no index: the forget set would be empty")
        self._checked = (num_train, idx)
        return idx

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """The given indices."""
        return torch.from_numpy(np.unique(self.pinned(int(labels.shape[0]))))


#: how :class:`ScoreBandForget` picks from examples ranked by score
Band = Literal["high", "low", "middle", "mixed"]


class ScoreBandForget(ForgetScenario):
    """The examples at one end (or the middle) of a per-example score: the most or least memorised
    examples of ``unlearning memorise`` (its ``estimate`` or a proxy), or any score in the same
    file format.

    The ranking covers the pool's examples that have a finite score. ``high`` takes the highest,
    ``low`` the lowest, ``middle`` those closest to the median, and ``mixed`` a third of each (RUM's
    three levels, in one request). Note that the lowest-loss examples of a model are mostly
    low-memorisation ones: ``low`` of a memorisation score is the easy case, ``high`` the hard one.
    ``low`` of ``original_loss`` is MUBox's cheap worst case (the lowest-loss examples under the
    original; not Fan et al.'s searched one), ``high`` its best case; ``low`` of
    ``centroid_quantile`` is the high-entanglement set, ``high`` the low-entanglement one.

    Args:
        scores_file: a ``.npz`` holding ``index`` (indices into the source's training set) and
            the score under ``key`` (one value per index).
        key: the score's name in the file (``estimate``, ``confidence_proxy``, ``accuracy_proxy``,
            ``original_loss``, ``centroid_distance``, ``centroid_quantile``).
        band: which examples, by rank.
        fraction: the forget set's size as a share of the pool, in (0, 1) (the random scenario's
            size, so that the two compare).
    """

    content_args: ClassVar[tuple[str, ...]] = ("scores_file",)

    def __init__(self, scores_file: str, key: str = "estimate", band: Band = "high", fraction: float = 0.1) -> None:
        if band not in ("high", "low", "middle", "mixed"):
            raise ValueError(f"band must be one of high, low, middle, mixed, got {band!r}")
        self.scores_file, self.key, self.band = str(scores_file), key, band
        self.fraction = _check_share("fraction", fraction)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The file's ``index`` and the score under :attr:`key`.

        Raises:
            ValueError: naming the file when it is missing, unreadable or lacks the arrays.
        """
        path = Path(self.scores_file)
        where = f"scores file {self.scores_file!r}"
        if not path.is_file():
            raise ValueError(f"{where} does not exist: expected the .npz written by `unlearning memorise` "
                             "(run it first, or point scores_file at its memorisation.npz)")
        try:
            with np.load(path, allow_pickle=False) as f:
                if "index" not in f or self.key not in f:
                    raise ValueError(f"{where} has no {'index' if 'index' not in f else self.key!r} array: "
                                     f"expected the keys index and {self.key!r}, found {sorted(f.files)}")
                index, score = np.asarray(f["index"], dtype=np.int64), np.asarray(f[self.key], dtype=np.float64)
        except (OSError, EOFError) as err:
            raise ValueError(f"{where} cannot be read ({type(err).__name__}): expected a .npz file") from None
        if index.shape != score.shape:
            raise ValueError(f"{where}: index and {self.key!r} differ in length ({index.size} and {score.size})")
        return index, score

    def scores_of(self, indices: np.ndarray) -> np.ndarray:
        """The score of each of ``indices`` (indices into the source's training set); NaN for an
        example the file does not score."""
        index, score = self.scores()
        indices = np.asarray(indices, dtype=np.int64)
        size = int(max(index.max(initial=-1), indices.max(initial=-1))) + 1
        by_index = np.full(size, np.nan)
        valid = index >= 0
        by_index[index[valid]] = score[valid]
        return by_index[indices]

    def select(self, labels: torch.Tensor, pool: torch.Tensor, class_names: Sequence[str],
               generator: torch.Generator) -> torch.Tensor:
        """The pool's examples of the band."""
        pool_scores = self.scores_of(pool.numpy())
        by_index = np.full(int(labels.shape[0]), np.nan)
        by_index[pool.numpy()] = pool_scores
        candidates = pool.numpy()[np.isfinite(pool_scores)]
        k = _count(self.fraction, pool)
        if candidates.size < k:
            raise ValueError(f"scores file {self.scores_file!r} scores {candidates.size} of the {pool.numel()} examples "
                             f"in use, fewer than the {k} to forget: expected scores of this data split")
        ranked = candidates[np.argsort(by_index[candidates], kind="stable")]  # lowest first
        if self.band == "low":
            chosen = ranked[:k]
        elif self.band == "high":
            chosen = ranked[-k:]
        elif self.band == "middle":
            chosen = _closest_to_median(ranked, by_index, k)
        else:
            low, high = k // 3, k // 3
            middle = k - low - high
            rest = ranked[low:ranked.size - high]
            chosen = np.concatenate([ranked[:low], _closest_to_median(rest, by_index, middle), ranked[ranked.size - high:]])
        return torch.from_numpy(np.sort(chosen))


def _closest_to_median(ranked: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` of ``ranked`` (sorted by ``score``) whose scores are closest to their median."""
    median = np.median(score[ranked])
    return ranked[np.argsort(np.abs(score[ranked] - median), kind="stable")[:k]]
