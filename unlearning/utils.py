"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "silence_lightning_noise"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds.

    Readers never see a half-written file: they find the old file or the complete new one. On an
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _DropTips:
    """A logging filter that drops Lightning's advertisements ("💡 Tip: ... try installing ...")."""

    def filter(self, record: object) -> bool:
        return not str(getattr(record, "msg", "")).startswith("💡 Tip")


def silence_lightning_noise() -> None:
    """Drop what Lightning prints that is not the user's business: its advertising tips, the
    warning about modules in eval mode (unlearning modules keep frozen copies, such as the
    original, in eval mode on purpose), its own deprecation of ``LeafSpec`` checks, its caution
    against ``args`` beside command-line arguments (the pipeline runs the CLI in-process from
    scripts that have arguments of their own), and its warning about a checkpoint folder that is
    not empty (the ``unlearning`` command guards run folders itself). Idempotent."""
    import logging
    import warnings

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # the pipeline runs the CLI in-process with its own arguments, inside scripts that have theirs
    warnings.filterwarnings("ignore", message=r".*args parameter is intended to run from within Python.*")
    # the unlearning command refuses a fresh fit into a folder holding a run; one that goes on is a
    # resume or an explicit --overwrite, which this warning would only second-guess
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty.*")
