"""Imports run one way (issue 26): every module of ``unlearning/`` imports only from its own
package or from a lower layer, imports inside functions included.

The layers, bottom up: the leaves (the registry, the output and file helpers, the run folder);
data, networks and metrics, which know no module; callbacks; the LightningModules; the methods;
building a run from a config; scoring, the pipeline and the scripts; the command line on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "unlearning"

#: the layers, bottom first: a module may import from its own top-level part or a lower layer
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"unlearning"}),  # the root package: its version only
    frozenset({"registry", "utils", "tables", "runfolder"}),
    frozenset({"nets", "metrics", "data"}),
    frozenset({"callbacks"}),
    frozenset({"modules"}),
    frozenset({"methods"}),
    frozenset({"build"}),
    frozenset({"scoring", "pipeline", "scripts"}),
    frozenset({"importing", "memorisation"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The top-level part of ``unlearning.x.y``: ``x`` (``unlearning`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every ``unlearning`` module that ``source`` imports, anywhere in it (inside functions and
    ``TYPE_CHECKING`` blocks too), as ``(line, module name)``; relative imports resolved.

    Args:
        source: the module's source text.
        module: its dotted name.
        is_package: whether it is a package's ``__init__``.

    Returns:
        The imports of the project's modules, in the order of the syntax tree's walk.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names = [".".join([*base, *([node.module] if node.module else [])])]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "unlearning" or name.startswith("unlearning.")]
    return found


def layer_violations() -> list[str]:
    """Every import of the package that crosses a layer upwards or sideways, one line each."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        here = _part(module)
        for line, target in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            there = _part(target)
            if there != here and RANK[there] >= RANK[here]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} (layer {RANK[here]}) imports "
                           f"{target} (layer {RANK[there]})")
    return bad


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(RANK), f"give these a layer in LAYERS: {sorted(parts - set(RANK))}"


def test_imports_run_one_way() -> None:
    bad = layer_violations()
    assert not bad, "imports that cross a layer:\n" + "\n".join(bad)


def test_nothing_below_the_command_line_imports_it() -> None:
    importers = {_module_name(p) for p in PACKAGE.rglob("*.py")
                 if any(_part(t) == "cli" for _, t in imported_modules(p.read_text(encoding="utf-8"), _module_name(p)))}
    assert importers <= {"unlearning.__main__", "unlearning.cli"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from unlearning.cli import main\n", [(2, "unlearning.cli")]),
        ("if TYPE_CHECKING:\n    import unlearning.scoring.fingerprint as c\n", [(2, "unlearning.scoring.fingerprint")]),
        ("from ..scoring import runs\n", [(1, "unlearning.scoring")]),
        ("from . import base\n", [(1, "unlearning.methods")]),
        ("import numpy\nfrom lightning import Trainer\n", []),
    ],
)
def test_the_walk_sees_imports_inside_functions_and_relative_ones(source: str, expected: list) -> None:
    assert imported_modules(source, "unlearning.methods.ssd") == expected
