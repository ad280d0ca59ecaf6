"""Weights files: the ``state_dict`` a user's training code saved, found in the file, checked
against a network and loaded into it (by ``unlearning import`` for a trained original, and by a
training recipe's ``init_weights`` for the pretrained weights a model starts from).

Loading goes through :func:`~unlearning.runfolder.safe_load` (``weights_only``): a file that holds
pickled code is refused. Why by hand: ``nn.Module.load_state_dict`` checks keys and shapes but
raises a multi-line error without the file's name or the prefix that would fix it, and no maintained
library finds a ``state_dict`` among the common wrappers of a saved file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearning.nets.base import weights_module
from unlearning.runfolder import safe_load

__all__ = ["STATE_DICT_KEYS", "check_state_dict", "extract_state_dict", "load_weights"]

#: the keys under which a training script commonly saves the ``state_dict`` beside other things
STATE_DICT_KEYS = ("state_dict", "model", "net", "model_state_dict")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _names(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def extract_state_dict(obj: Any, path: str, key: str | None = None,
                       strip_prefix: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """The ``state_dict`` in a loaded weights file, with the given key prefixes removed.

    Args:
        obj: what ``torch.load`` returned.
        path: the file's path, for messages.
        key: the entry that holds the ``state_dict``; ``None``: the object itself if it is one,
            else the first of :data:`STATE_DICT_KEYS` that holds one.
        strip_prefix: prefixes removed from the start of every key that has them, in order
            (e.g. ``module.`` of ``DataParallel``, ``model.`` or ``net.`` of a wrapper).

    Returns:
        ``{name: tensor}``.

    Raises:
        ValueError: if no ``state_dict`` is found, naming the file's top-level keys.
    """
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"weights file {path!r} has no entry {key!r}: its top-level keys are {found}")
        state = obj[key]
    elif _is_state_dict(obj):
        state = obj
    else:
        state = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj, Mapping) and _is_state_dict(obj.get(k))), None)
    if not _is_state_dict(state):
        where = f"entry {key!r}" if key is not None else f"the file or its entries {list(STATE_DICT_KEYS)}"
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"weights file {path!r} holds no state_dict (a dict of tensors) in {where}: "
                         f"found {found}; name the entry with --key")
    state = dict(state)
    for prefix in strip_prefix:
        state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
    return state


def check_state_dict(state: Mapping[str, torch.Tensor], net: nn.Module, path: str,
                     strip_prefix: Sequence[str] = (), skip: tuple[str, ...] = (),
                     strip_flag: str = "--strip_prefix") -> None:
    """Check that ``state`` fits ``net``'s weights module (:func:`~unlearning.nets.weights_module`):
    the same keys and shapes.

    Args:
        state: the weights.
        net: the network.
        path: the file's path, for messages.
        strip_prefix: the prefixes already stripped (not suggested again).
        skip: key prefixes of the network not expected in ``state``.
        strip_flag: the option that strips a prefix, named in the hint.

    Raises:
        ValueError: one line naming the missing, unexpected and mis-shaped entries (and, when
            every key of the file starts with a common prefix, the ``--strip_prefix`` that would
            remove it).
    """
    expected = {k: v for k, v in weights_module(net).state_dict().items() if not (skip and k.startswith(skip))}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    parts = [f"missing {_names(missing)}" if missing else "", f"unexpected {_names(unexpected)}" if unexpected else "",
             f"mis-shaped {_names(shapes, 2)}" if shapes else ""]
    heads = {k.split(".", 1)[0] for k in state}
    hint = ""
    if len(heads) == 1 and missing and all("." in k for k in state):
        prefix = f"{heads.pop()}."
        if prefix not in strip_prefix:
            hint = f"; every key starts with {prefix!r}: add {strip_flag} {prefix}"
    spec = getattr(net, "init_args", {})
    what = f"{type(net).__name__}({', '.join(f'{k}={v}' for k, v in spec.items() if v not in ({}, None))})"
    raise ValueError(f"weights file {path!r} does not fit the network {what}: "
                     f"{'; '.join(p for p in parts if p)}{hint}")


def load_weights(net: nn.Module, path: str | Path, strip_prefix: Sequence[str] = (), skip: Sequence[str] = (),
                 key: str | None = None, strip_flag: str = "--strip_prefix") -> None:
    """Load a weights file into ``net``'s weights module (:func:`~unlearning.nets.weights_module`),
    in place, after checking it: every entry but the skipped ones must be present and of the
    network's shape.

    Args:
        net: the network.
        path: a file saved by ``torch.save``: a ``state_dict`` or a dict holding one under one of
            :data:`STATE_DICT_KEYS`.
        strip_prefix: key prefixes removed in order (e.g. ``module.``).
        skip: key prefixes left as the network has them (e.g. ``fc.``: a classifier head trained
            on other classes, started afresh), in the file and in the network alike.
        key: the entry of the file that holds the ``state_dict`` (see :func:`extract_state_dict`).
        strip_flag: the option that strips a prefix, named in an error's hint.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it holds code or no ``state_dict``, or does not fit the network (one line).
    """
    path = str(path)
    state = extract_state_dict(safe_load(path), path, key, list(strip_prefix))
    skipped = tuple(skip)
    state = {k: v for k, v in state.items() if not k.startswith(skipped)} if skipped else state
    check_state_dict(state, net, path, list(strip_prefix), skip=skipped, strip_flag=strip_flag)
    weights_module(net).load_state_dict(state, strict=not skipped)
