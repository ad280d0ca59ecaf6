"""A run folder: what ``unlearning fit`` leaves in it, how a finished run is told from an
interrupted one, and how a repeated command is kept from overwriting it.

A fit writes into ``<save_dir>/<name>/<version>/`` (the logger's folder; the project's configs use
``version: ""`` so that later stages can name a fixed path): ``checkpoints/last.ckpt`` after every
epoch, the best checkpoint, ``config.yaml``, TensorBoard events, and, once the fit has run to its
end, ``checkpoints/last.ckpt.finished``. Later stages name the original or the oracle by that
folder or by the ``.ckpt`` path (:func:`resolve_checkpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "RunFolderError",
    "check_checkpoint_network",
    "check_run_folder",
    "clear_run_folder",
    "configured_network",
    "finished_marker",
    "Snapshot",
    "mark_finished",
    "resolve_checkpoint",
    "run_finished",
    "safe_load",
]

LAST = "last.ckpt"
CHECKPOINTS = "checkpoints"


class RunFolderError(ValueError):
    """A fit would overwrite a run that is already in its folder."""


def finished_marker(ckpt: str | Path) -> Path:
    """The file beside ``ckpt`` that says the fit which wrote it ran to its end."""
    ckpt = Path(ckpt)
    return ckpt.with_name(ckpt.name + ".finished")


def mark_finished(ckpt: str | Path) -> None:
    """Mark ``ckpt`` as the checkpoint of a finished fit (its size and modification time, so that a
    later write of the checkpoint, e.g. by a resumed fit that is killed again, unmarks it)."""
    st = Path(ckpt).stat()
    finished_marker(ckpt).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def run_finished(ckpt: str | Path) -> bool:
    """Whether ``ckpt`` is the checkpoint of a fit that ran to its end (not one that a killed or
    crashed run left behind)."""
    ckpt, marker = Path(ckpt), finished_marker(ckpt)
    if not (ckpt.is_file() and marker.is_file()):
        return False
    try:
        mark = json.loads(marker.read_text())
    except ValueError:
        return False
    st = ckpt.stat()
    return mark == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint given as a ``.ckpt`` file or as the run folder of ``unlearning fit`` (then its
    ``checkpoints/last.ckpt``).

    Raises:
        FileNotFoundError: if ``path`` is neither a file nor a run folder holding ``checkpoints/last.ckpt``.
    """
    path = Path(path)
    if path.is_dir():
        last = path / CHECKPOINTS / LAST
        if last.is_file():
            return last
        raise FileNotFoundError(
            f"{str(path)!r} is a folder without {CHECKPOINTS}/{LAST}: expected a .ckpt file or the run folder of `unlearning fit`"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist: expected a .ckpt file or the run "
                                "folder of `unlearning fit`")
    return path


def safe_load(path: str | Path) -> Any:
    """``torch.load`` of a checkpoint that cannot run code: only tensors and plain containers are
    unpickled (``weights_only=True``), on the CPU.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a file written by ``torch.save``, or if it holds other objects
            (whose unpickling could run code: it is refused, and nothing in it ran).
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is not a checkpoint: expected a file written by torch.save "
                         "(the .ckpt of `unlearning fit`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"checkpoint {str(path)!r} holds objects that cannot be loaded safely (only tensors and "
                         "plain containers are allowed); it was refused and nothing in it ran") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{str(path)!r} is not a readable checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None


def configured_network(config: Any) -> tuple[str, dict[str, Any]] | None:
    """The network a subcommand's config builds, ``(class name, init arguments)``, from its
    ``model.init_args.net`` (or ``net_spec``); ``None`` when the config names none."""
    as_dict = config.as_dict() if hasattr(config, "as_dict") else config
    init = ((as_dict or {}).get("model") or {}).get("init_args") or {}
    net = init.get("net") or init.get("net_spec")
    if not isinstance(net, dict) or not isinstance(net.get("class_path"), str):
        return None
    return net["class_path"].rpartition(".")[2], dict(net.get("init_args") or {})


def check_checkpoint_network(ckpt_path: str | Path, given: tuple[str, dict[str, Any]] | None,
                             found: tuple[str, dict[str, Any]] | None) -> None:
    """Refuse a ``--ckpt_path`` whose network (``found``, what its hyperparameters put in the
    config) is not the one the config gives (``given``): LightningCLI would build the checkpoint's
    network instead, silently, and fail later on the data or train another model than configured.

    Raises:
        ValueError: naming the checkpoint, its network and the config's.
    """
    if given is None or found is None:
        return
    differ = [k for k in sorted(set(given[1]) & set(found[1])) if given[1][k] != found[1][k]]
    if given[0] == found[0] and not differ:
        return

    def show(net: tuple[str, dict[str, Any]]) -> str:
        args = differ if given[0] == found[0] else sorted(net[1])
        return f"{net[0]}({', '.join(f'{k}={net[1][k]!r}' for k in args)})"

    raise ValueError(f"checkpoint {str(ckpt_path)!r} holds a {show(found)} network: expected the config's "
                     f"{show(given)} (--model.init_args.net); give a checkpoint of that network, or its own config")


def _checkpoint_files(ckpt_dirs: Iterable[Path]) -> list[Path]:
    dirs = {d.absolute() for d in ckpt_dirs}
    return sorted(p for d in dirs if d.is_dir() for p in d.glob("*.ckpt"))


def check_run_folder(run_dir: Path, ckpt_dirs: Iterable[Path], flags: str = "--ckpt_path last") -> None:
    """Refuse to start a fresh fit where a run already left checkpoints.

    Args:
        run_dir: the run's folder (the logger's).
        ckpt_dirs: the folders its checkpoint callbacks write into.
        flags: how the user resumes (named in the message).

    Raises:
        RunFolderError: naming the folder, whether its run finished, and the ways forward.
    """
    found = _checkpoint_files(ckpt_dirs)
    if not found:
        return
    last = next((p for p in found if p.name == LAST), found[0])
    new = "a new folder with --trainer.logger.init_args.version NAME (or .name)"
    if run_finished(last):
        raise RunFolderError(
            f"{run_dir} already holds a finished run ({last.parent.name}/{last.name}), "
            f"which later stages may read: train into {new}, or replace it with --overwrite true"
        )
    raise RunFolderError(
        f"{run_dir} already holds a run that did not finish ({', '.join(p.name for p in found)}): resume it with {flags}, "
        f"train into {new}, or replace it with --overwrite true"
    )


def clear_run_folder(run_dir: Path, ckpt_dirs: Iterable[Path]) -> list[Path]:
    """Remove what a fit left in ``run_dir`` (checkpoints and their markers, TensorBoard events,
    ``config.yaml``, ``hparams.yaml``), leaving any other file and sub-folder alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    for d in ckpt_dirs:
        if d.is_dir():
            for p in (*d.glob("*.ckpt"), *d.glob("*.ckpt.finished")):
                p.unlink()
                removed.append(p)
    if run_dir.is_dir():
        for p in (*run_dir.glob("events.out.tfevents.*"), run_dir / "config.yaml", run_dir / "hparams.yaml"):
            if p.is_file():
                p.unlink()
                removed.append(p)
    return removed


class Snapshot:
    """What exists of a run folder before a run, to put it back when the run fails before it
    trained: the paths under it, and the bytes of the files a starting run rewrites
    (``config.yaml``, ``hparams.yaml``).

    Args:
        run_dir: the run's folder; when it does not exist yet, the snapshot covers its highest
            missing ancestor (so that the folders the run creates are removed too).
    """

    REWRITTEN = ("config.yaml", "hparams.yaml")

    def __init__(self, run_dir: Path) -> None:
        root = Path(run_dir).absolute()
        while not root.parent.exists():
            root = root.parent
        self.root = root
        self.paths = {root, *root.rglob("*")} if root.exists() else set()
        self.saved = {p: (p.read_bytes(), p.stat()) for p in (Path(run_dir) / name for name in self.REWRITTEN) if p.is_file()}

    def restore(self) -> list[Path]:
        """Remove what was created under the folder since the snapshot and put back the rewritten
        files; what existed before is left as it was.

        Returns:
            The paths removed, deepest first.
        """
        created: list[Path] = []
        if self.root.exists():
            created = sorted({self.root, *self.root.rglob("*")} - self.paths, key=lambda p: len(p.parts), reverse=True)
        for p in created:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        for p, (data, st) in self.saved.items():
            if not p.is_file() or p.read_bytes() != data:
                p.write_bytes(data)
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        return created
