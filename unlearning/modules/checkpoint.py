"""Reading the checkpoints of this project's modules, and the network spec they record.

Every module writes, beside Lightning's weights, an entry :data:`META_KEY` (the network spec, the
cost, the module's class and number of classes; see
:meth:`~unlearning.modules.EvaluatedModule.checkpoint_meta`) and, during a fit, an entry
:data:`RNG_KEY` (the random generators' states, :mod:`unlearning.modules.resume`). The functions
here read them back without the module's config: a later stage rebuilds a checkpoint's network
from the checkpoint alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from unlearning.nets import build_net, net_spec
from unlearning.runfolder import resolve_checkpoint, safe_load

__all__ = ["META_KEY", "RNG_KEY", "cli_net_spec", "load_checkpoint_meta", "load_net", "read_checkpoint"]

#: the checkpoint entry of the project's metadata (network spec, cost, module class, classes)
META_KEY = "unlearning"
#: the checkpoint entry of the random generators' states (:mod:`unlearning.modules.resume`)
RNG_KEY = "unlearning_rng"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of this project, loaded safely (``weights_only``) on the CPU.

    Args:
        path: a ``.ckpt`` file, or the run folder of ``unlearning fit`` (its ``checkpoints/last.ckpt``).

    Returns:
        The checkpoint's dict, holding ``state_dict`` and :data:`META_KEY`.

    Raises:
        FileNotFoundError: if the file (or the folder's ``last.ckpt``) does not exist.
        ValueError: if it was not written by a module of this project.
    """
    path = resolve_checkpoint(path)
    ckpt = safe_load(path)
    if META_KEY not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {str(path)!r} was not written by an unlearning module (no {META_KEY!r} entry)")
    return ckpt


def load_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The project's metadata of a checkpoint: network spec, cost, module class, classes.

    Args:
        path: as in :func:`read_checkpoint`.

    Returns:
        A copy of the checkpoint's :data:`META_KEY` entry.
    """
    return dict(read_checkpoint(path)[META_KEY])


def load_net(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a checkpoint's network from the checkpoint alone and load its weights.

    Args:
        path: a checkpoint written by any module of this project.

    Returns:
        ``(network, metadata)``; the network is in eval mode.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt[META_KEY]
    net = build_net(meta["net"])
    prefix = "net."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    net.load_state_dict(state)
    return net.eval(), dict(meta)


def cli_net_spec(net: nn.Module, key: str = "net") -> dict[str, Any]:
    """The spec of ``net``: from the LightningCLI config when the CLI built it, else from the net.

    LightningCLI records each init argument as parsed (``{"class_path", "init_args"}`` for a
    network); using that record lets any ``nn.Module`` chosen in a config be rebuilt, not only
    the project's :class:`~unlearning.nets.Net` subclasses. Lightning keeps it in a context
    variable while the CLI instantiates the module (there is no public accessor).

    Args:
        net: the network a module's ``__init__`` was given.
        key: the name of the module's init argument that holds it.

    Returns:
        ``{"class_path", "init_args"}``, as :func:`~unlearning.nets.build_net` reads it.
    """
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        given = (_given_hyperparameters.get() or {}).get(key)
    except ImportError:  # pragma: no cover - older/newer Lightning
        given = None
    if isinstance(given, dict) and isinstance(given.get("class_path"), str):
        cls = type(net)
        if given["class_path"] in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(given.get("init_args") or {})}
    return net_spec(net)
