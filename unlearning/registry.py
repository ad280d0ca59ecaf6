"""Class names of a config, resolved: the one place that turns a ``class_path`` into a class.

A config names a class by a dotted path (``package.module.Class``) or, for the project's own
classes, by a short name (``SCRUB``, ``ResNet18``, ``CIFAR10DataModule``), looked up in the
packages that export the classes of its section, as LightningCLI resolves it. This module imports
nothing of the project at module level: every layer may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

__all__ = ["SHORT_NAMES", "find_object", "module_class", "resolve_class"]

#: where a short class_path of a config section is looked up, by section
SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "model": ("unlearning.methods", "unlearning.modules"), "net": ("unlearning.nets",),
    "data": ("unlearning.data",), "model.init_args": ("unlearning.callbacks", "lightning.pytorch.callbacks", "unlearning.methods"),
}


def find_object(class_path: str, packages: Sequence[str] = ()) -> Any:
    """The object a dotted path names, or the first of ``packages`` that exports a short name.

    Args:
        class_path: ``package.module.Name``, or a bare ``Name``.
        packages: the packages a bare name is looked up in, in order.

    Returns:
        The object; ``None`` when the module of a dotted path has no such name or no package
        exports a bare name as a class.

    Raises:
        ImportError: if the module of a dotted path (or a package) cannot be imported.
    """
    if "." in class_path:
        module, _, name = class_path.rpartition(".")
        return getattr(importlib.import_module(module), name, None)
    for package in packages:
        found = getattr(importlib.import_module(package), class_path, None)
        if isinstance(found, type):
            return found
    return None


def resolve_class(class_path: str, section: str) -> type:
    """The class a config's ``class_path`` names (a dotted path, or a short name of the project's
    classes for ``section``, as LightningCLI resolves it).

    Args:
        class_path: the config's ``class_path``.
        section: a key of :data:`SHORT_NAMES` (``model``, ``net``, ``data``, ``model.init_args``).

    Returns:
        The class.

    Raises:
        ValueError: if no such class can be imported.
    """
    try:
        cls = find_object(class_path, SHORT_NAMES[section])
    except ImportError as err:
        raise ValueError(f"{section} class_path {class_path!r} cannot be imported: {err}") from None
    if isinstance(cls, type):
        return cls
    raise ValueError(f"{section} class_path {class_path!r} names no class: expected a dotted path or one of "
                     f"the names exported by {', '.join(SHORT_NAMES[section])}")


def module_class(class_path: str) -> type | None:
    """The LightningModule class a config's ``class_path`` names: a dotted path, or a short name
    of the project's methods and modules (as LightningCLI resolves it); ``None`` if not found.

    Args:
        class_path: the ``model`` section's ``class_path``.

    Returns:
        The class, or ``None``.
    """
    try:
        return resolve_class(class_path, "model")
    except ValueError:
        return None
