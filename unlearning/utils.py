"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CHATTY_LOGGERS", "atomic_path", "check_writable", "silence_lightning_noise", "verbose", "versions", "write_error"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds.

    Readers never see a half-written file: they find the old file or the complete new one. On an
    error the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: when the file cannot be written (a full disk, a read-only folder): one line that
            names ``path`` (the operating system's own error, e.g. a failed ``write``, names no
            file), with the original ``errno``.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)


#: what a folder needs for a write that failed with this errno
_NEEDS = {
    errno.ENOSPC: "free space on its disk", errno.EDQUOT: "free space in this user's disk quota",
    errno.EACCES: "a folder this user can write to", errno.EPERM: "a folder this user can write to",
    errno.EROFS: "a folder on a writable file system",
}


def write_error(path: str | Path, err: OSError) -> OSError:
    """The error of a failed write of ``path``, as one line naming the file and what it needs.

    The returned error is of the same class as ``err`` (e.g. ``PermissionError``) with the same
    ``errno``; its message is the whole of its text.
    """
    reason = err.strerror or str(err) or type(err).__name__
    needs = _NEEDS.get(err.errno, "a writable folder with free space")
    message = f"cannot write {str(path)!r}: {reason}: expected {needs}; nothing was written under that name"
    try:
        new = type(err)(message)
    except TypeError:  # an OSError subclass with a constructor of its own
        new = OSError(message)
    new.errno = err.errno
    return new


def check_writable(path: str | Path, what: str) -> None:
    """Fail early, before any work, when ``path`` (a folder to be written, existing or not) could
    not be created or written: its nearest existing ancestor must be a folder this user can write
    to (and enter).

    Raises:
        PermissionError: naming ``what``, ``path`` and the read-only folder.
        NotADirectoryError: if ``path`` or an ancestor is a file.
    """
    path = Path(path)
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r}: {str(existing)!r} is a file: expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it is" if existing == path.absolute() else f"{str(existing)!r} is"
        raise PermissionError(f"{what} {str(path)!r} is not writable ({where} read-only for this user): "
                              "expected a folder this user can write to")


def versions() -> dict[str, str]:
    """The versions of the packages a result depends on, as recorded beside it (in checkpoints,
    cached runs and score files).

    Returns:
        ``{"unlearning", "torch", "lightning", "torchvision", "numpy"}`` -> version string.
    """
    import lightning
    import numpy
    import torch
    import torchvision

    import unlearning

    return {"unlearning": unlearning.__version__, "torch": str(torch.__version__),
            "lightning": str(lightning.__version__), "torchvision": str(torchvision.__version__),
            "numpy": numpy.__version__}


def verbose() -> bool:
    """Whether Lightning's own output is kept.

    Returns:
        ``True`` when ``-v`` was given to the ``unlearning`` command (it sets
        ``UNLEARNING_VERBOSE``), or ``UNLEARNING_DEBUG`` or ``UNLEARNING_VERBOSE`` is set.
    """
    return bool(os.environ.get("UNLEARNING_VERBOSE") or os.environ.get("UNLEARNING_DEBUG"))


#: Lightning's loggers whose INFO lines are its own chatter, not a result, each run over:
#:
#: - the seed's: "Seed set to 0";
#: - the rank-zero loggers (where ``rank_zero_info`` of both packages logs): "GPU available",
#:   "TPU available", "HPU available", "`Trainer.fit` stopped: `max_epochs=...` reached",
#:   "`Trainer(limit_val_batches=1.0)` was configured so ...", "You are using a CUDA device ...
#:   that has Tensor Cores", the advertising tips ("💡 Tip: ... try installing litlogger") and
#:   "Loading `train_dataloader` to estimate number of stepping batches";
#: - the CUDA accelerator's: "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]".
#:
#: They are raised to WARNING, so that their warnings still show; Lightning's warnings
#: (``rank_zero_warn``) go through Python's ``warnings``, not through these loggers. The model summary
#: is not a logging matter (with Rich installed it is printed to the console): the ``unlearning``
#: command turns it off instead (:meth:`unlearning.build.RunCLI.instantiate_trainer`).
CHATTY_LOGGERS = (
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)

#: the levels :data:`CHATTY_LOGGERS` had before :func:`silence_lightning_noise` raised them
_saved_levels: dict[str, int] = {}


def silence_lightning_noise(silence: bool = True) -> None:
    """Drop what Lightning prints that is not the user's business, or (``silence=False``, for
    ``-v`` / ``UNLEARNING_VERBOSE=1``) let its loggers speak again.

    Silenced: the INFO lines of :data:`CHATTY_LOGGERS` (seeds, devices, why a fit stopped, tips: a
    run shows its progress bar and what the project prints), and the warnings about modules in
    eval mode (unlearning modules keep frozen copies, such as the original, in eval mode on
    purpose), its own deprecation of ``LeafSpec`` checks, its caution against ``args`` beside
    command-line arguments (the pipeline runs the CLI in-process from scripts that have arguments
    of their own), and a checkpoint folder that is not empty (the ``unlearning`` command guards
    run folders itself). Every other warning is kept. Idempotent.

    Args:
        silence: ``True`` to silence; ``False`` to give the loggers back the levels they had
            before (the warning filters, process-wide, stay: a verbose command line never adds
            them).
    """
    import logging
    import warnings

    if not silence:
        for name, level in _saved_levels.items():
            logging.getLogger(name).setLevel(level)
        _saved_levels.clear()
        return
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        _saved_levels.setdefault(name, logger.level)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # the pipeline runs the CLI in-process with its own arguments, inside scripts that have theirs
    warnings.filterwarnings("ignore", message=r".*args parameter is intended to run from within Python.*")
    # the unlearning command refuses a fresh fit into a folder holding a run; one that goes on is a
    # resume or an explicit --overwrite, which this warning would only second-guess
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty.*")
