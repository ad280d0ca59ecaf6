"""The model cache of ``unlearning score``: one folder per (kind, recipe key), one per seed.

Layout::

    <cache_dir>/<kind>-<key>/recipe.json          what the key stands for (for humans)
    <cache_dir>/<kind>-<key>/seed-0007/model.ckpt  the trained model (weights and metadata)
    <cache_dir>/<kind>-<key>/seed-0007/record.json its test metrics and cost
    <cache_dir>/<kind>-<key>/seed-0007/forget_lsc.npy  logit-scaled confidence of each forget example
    <cache_dir>/<kind>-<key>/seed-0007/retain_lsc.npy, heldout_lsc.npy  the same on a retain sample and
                                                   on the held-out (test) examples (KLOM)

A seed's folder is filled under a temporary name and renamed into place once everything in it is
written: a folder with the final name is always complete, so a killed run leaves only temporary
folders, which the next run on the same host removes, and several processes (or machines sharing
the folder) can fill one cache. A process trains a seed only while it holds the seed's claim,
``<kind>-<key>/.seed-0007.lock``, an operating-system file lock (``filelock``): no two processes
train the same model at once, and the lock of a killed process is released with it, so the next
one takes the model over. (On a network file system without working ``flock``, two machines may
train the same seed; the rename still keeps exactly one, complete.) Why by hand: Lightning
checkpoints one run; no maintained library we know of caches whole trainings by recipe and seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlearning.utils import atomic_path

__all__ = ["MARGIN_FILES", "CachedRun", "RecipeCache", "recipe_key", "write_json_atomic"]

MODEL_FILE = "model.ckpt"
RECORD_FILE = "record.json"
LSC_FILE = "forget_lsc.npy"
#: the margins (logit-scaled confidences) a cached model keeps, by group of examples
MARGIN_FILES = {"forget": LSC_FILE, "retain": "retain_lsc.npy", "heldout": "heldout_lsc.npy"}
_TMP_PREFIX = ".tmp-"


def recipe_key(recipe: Any) -> str:
    """A short stable hash of a JSON-able description of a recipe (sorted keys)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's live process
        return True
    return True


@dataclass(frozen=True)
class CachedRun:
    """A finished model in the cache."""

    seed: int
    path: Path

    @property
    def checkpoint(self) -> Path:
        """The model's checkpoint."""
        return self.path / MODEL_FILE

    def record(self) -> dict[str, Any]:
        """Its metrics, cost and provenance."""
        return json.loads((self.path / RECORD_FILE).read_text())

    def forget_lsc(self) -> np.ndarray:
        """Logit-scaled confidence of every forget example, in the split's forget order."""
        return np.load(self.path / LSC_FILE)

    def margins(self, group: str) -> np.ndarray:
        """Logit-scaled confidences of a group of examples (``forget``, ``retain``: the fixed
        retain sample, ``heldout``: the test examples), in a fixed order."""
        return np.load(self.path / MARGIN_FILES[group])

    def has_margins(self) -> bool:
        """Whether every group's margins are stored (entries cached before KLOM lack some)."""
        return all((self.path / f).is_file() for f in MARGIN_FILES.values())


class RecipeCache:
    """The seeds of one recipe: which are finished, and a safe way to add one.

    Args:
        root: the cache folder.
        kind: ``original``, ``oracle`` or ``method``.
        recipe: a JSON-able description of everything that determines the model but the seed.
    """

    def __init__(self, root: str | Path, kind: str, recipe: dict[str, Any]) -> None:
        self.key = recipe_key(recipe)
        self.kind = kind
        self.recipe = recipe
        self.dir = Path(root) / f"{kind}-{self.key}"

    def seed_dir(self, seed: int) -> Path:
        """The folder of a finished seed."""
        return self.dir / f"seed-{seed:04d}"

    def get(self, seed: int) -> CachedRun | None:
        """The finished run of ``seed``, or ``None``."""
        path = self.seed_dir(seed)
        if (path / RECORD_FILE).is_file():
            return CachedRun(seed, path)
        return None

    def missing(self, seeds: list[int]) -> list[int]:
        """The seeds of ``seeds`` not finished yet."""
        return [s for s in seeds if self.get(s) is None]

    def clean_stale(self) -> None:
        """Remove temporary folders left by killed runs of this host (their process is gone)."""
        if not self.dir.is_dir():
            return
        host = socket.gethostname()
        for tmp in self.dir.glob(f"{_TMP_PREFIX}*"):
            parts = tmp.name[len(_TMP_PREFIX) :].split("@")
            if len(parts) == 3 and parts[1] == host and parts[0].isdigit() and not _pid_alive(int(parts[0])):
                shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def claim(self, seed: int, wait: bool = False) -> Iterator[bool]:
        """Hold the claim of ``seed`` for the block: yields ``True`` when this process holds it,
        ``False`` when another live process does (only with ``wait=False``; with ``wait=True`` the
        block waits until that process finishes or dies)."""
        from filelock import FileLock, Timeout

        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.dir / f".seed-{seed:04d}.lock", timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    @contextlib.contextmanager
    def writing(self, seed: int) -> Iterator[Path]:
        """A temporary folder to fill for ``seed``; renamed into place when the block succeeds.

        If another process finished the same seed meanwhile, its model is kept and this one is
        discarded. On an error the temporary folder is removed.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        recipe_file = self.dir / "recipe.json"
        if not recipe_file.is_file():
            write_json_atomic(recipe_file, {"kind": self.kind, "key": self.key, "recipe": self.recipe})
        tmp = self.dir / f"{_TMP_PREFIX}{os.getpid()}@{socket.gethostname()}@seed-{seed:04d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            if not (tmp / RECORD_FILE).is_file():
                raise RuntimeError(f"run of seed {seed} wrote no {RECORD_FILE}")
            try:
                os.rename(tmp, self.seed_dir(seed))
            except OSError:
                if self.get(seed) is None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def now() -> str:
    """The current UTC time, ISO 8601."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
