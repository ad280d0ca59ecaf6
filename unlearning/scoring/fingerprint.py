"""The code identity of a cached model: which source files train it, and a digest of each.

A cache keyed by configs alone hands back the runs of old code after a method's source is edited.
So every recipe also carries the digest of the code that trains it, in three parts: the module
(the LightningModule's class and everything its files use: base classes, losses, metrics, cost
accounting), the network of the config and the data module. Each part is the set of the project's
own modules reachable from the class: a module's file is followed to every project module whose
class, function or submodule it names at module level; third-party and standard-library modules
are not followed (their versions are recorded apart). A package's ``__init__`` contributes only
what it defines itself, not everything it re-exports, so that editing one method invalidates
that method's entries and not those of every method the package lists.

A file's digest is taken over its syntax tree (``ast.dump``) without its docstrings: editing a
comment, a docstring or the layout keeps every key, editing code changes the keys of exactly the
entries whose part reaches the file. Why by hand: no maintained library fingerprints the code behind a
training (joblib's memory hashes one function's source, not the classes it uses).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
import sysconfig
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

from unlearning.registry import resolve_class

__all__ = ["code_identity", "module_files"]


@lru_cache(maxsize=1)
def _third_party_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(str(Path(r).resolve()) for r in roots)


def _is_project(module: types.ModuleType) -> bool:
    """The project's own code: this package, or a module with a source file outside the standard
    library and the installed packages (a user's methods, an example)."""
    name = module.__name__
    if name == "unlearning" or name.startswith("unlearning."):
        return True
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return False
    resolved = str(Path(file).resolve())
    return not any(resolved.startswith(root) for root in _third_party_roots()) and "site-packages" not in resolved


def _uses(module: types.ModuleType) -> set[str]:
    """The names of the modules whose classes, functions or submodules ``module`` names at module
    level (a package: only what it defines itself)."""
    package = hasattr(module, "__path__")
    used = set()
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType):
            if not package:
                used.add(value.__name__)
        elif isinstance(value, (type, types.FunctionType)):
            owner = getattr(value, "__module__", None)
            if isinstance(owner, str) and (not package or owner == module.__name__):
                used.add(owner)
    used.discard(module.__name__)
    return used


def module_files(obj: type) -> dict[str, str]:
    """The project modules reachable from a class (its defining module and every base class's),
    each with the digest of its source's syntax tree: ``{module name: digest}``."""
    start = {c.__module__ for c in inspect.getmro(obj) if c is not object}
    seen: dict[str, str] = {}
    todo = sorted(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        module = sys.modules.get(name)
        if module is None or not _is_project(module):
            continue
        seen[name] = _source_digest(module.__file__)
        todo.extend(sorted(_uses(module) - set(seen)))
    return dict(sorted(seen.items()))


def _source_digest(file: str) -> str:
    stat = os.stat(file)
    return _tree_digest(file, stat.st_mtime_ns, stat.st_size)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring of the module and of every class and function taken out (they
    document the code and change nothing it does)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=1024)
def _tree_digest(file: str, mtime_ns: int, size: int) -> str:
    """The digest of a file's syntax tree, parsed once per version (its modification time and size)."""
    text = Path(file).read_text(encoding="utf-8")
    try:
        tree = ast.dump(_without_docstrings(ast.parse(text)), include_attributes=False)
    except SyntaxError:  # pragma: no cover - an importable module parses
        tree = text
    return hashlib.sha256(tree.encode()).hexdigest()[:16]


def _part(files: dict[str, str]) -> dict[str, Any]:
    text = "\n".join(f"{k}={v}" for k, v in sorted(files.items()))
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16], "files": files}


def code_identity(cfg: dict[str, Any], data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The code that trains a stage config's model on ``data``, by part (``module``, ``net``,
    ``data``, and ``other`` for further classes the module's settings name), each ``{"digest": ..., "files": {module: digest}}``; ``net`` is empty when the
    config names no network (the module's default is then part of the module's code).

    Raises:
        ValueError: if a class_path of the config or the data cannot be imported.
    """
    model = cfg.get("model")
    model_path = model.get("class_path") if isinstance(model, dict) else model
    parts = {"module": _part(module_files(resolve_class(str(model_path), "model")))}
    net = ((model.get("init_args") or {}).get("net") if isinstance(model, dict) else None)
    net_path = net.get("class_path") if isinstance(net, dict) else None
    parts["net"] = _part(module_files(resolve_class(str(net_path), "net")) if net_path else {})
    parts["data"] = _part(module_files(resolve_class(str(data["class_path"]), "data")))
    # other classes the module's settings name (e.g. a recipe's train_callbacks) train the model too;
    # the part exists only when there are any, so that the keys of other configs stay as they were
    others = sorted(_class_paths({k: v for k, v in ((model.get("init_args") or {}) if isinstance(model, dict) else {}).items()
                                  if k != "net"}))
    if others:
        files: dict[str, str] = {}
        for path in others:
            files.update(module_files(resolve_class(path, "model.init_args")))
        parts["other"] = _part(files)
    return parts


def _class_paths(value: Any) -> set[str]:
    """Every ``class_path`` in a nested config value."""
    if isinstance(value, dict):
        found = {str(value["class_path"])} if "class_path" in value else set()
        return found.union(*(_class_paths(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_class_paths(v) for v in value))
    return set()


def code_digests(identity: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The digests of a :func:`code_identity` alone (what enters a cache key)."""
    return {part: value["digest"] for part, value in identity.items()}
