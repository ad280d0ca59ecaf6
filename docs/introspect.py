"""What the documentation generator needs from the running package, as one JSON file.

``python docs/introspect.py OUT.json`` (run by ``docs/gen_pages.py`` in a subprocess, so that the
package's imports and the CLI's warning filters stay out of the MkDocs process) writes:

- ``methods``: every ``UnlearnModule`` subclass defined in a module of ``unlearning.methods``
  (every submodule is imported, registered in ``__init__`` or not), with its declared streams and
  flags, and ``stage_classes``: the class each one-time stage of theirs names;
- ``configs``: for every YAML file under ``configs/`` with a ``model.class_path``, the class it
  resolves to (as the CLI resolves it), so that each method's page finds its configs by class, not
  by file name;
- ``help``: the ``--help`` text of ``unlearning`` and of each of its subcommands, run in-process;
- ``errors``: modules that failed to import and configs that name no class (the generator reports
  them as warnings, which fail ``mkdocs build --strict``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import sys
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: the width the help texts are wrapped at (argparse reads it from COLUMNS)
HELP_COLUMNS = "100"


def qualified(cls: type) -> str:
    """``module.QualName`` of a class: the path under which the API reference documents it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def methods(errors: list[str]) -> list[dict]:
    """Every ``UnlearnModule`` subclass defined in ``unlearning.methods`` and its submodules."""
    import unlearning.methods
    from unlearning.modules import UnlearnModule

    modules = [unlearning.methods]
    for info in pkgutil.walk_packages(unlearning.methods.__path__, "unlearning.methods."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as err:  # noqa: BLE001 - reported, and the build fails on it
            errors.append(f"cannot import {info.name}: {type(err).__name__}: {err}")
    found: dict[str, dict] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, UnlearnModule) or cls is UnlearnModule:
                continue
            if not cls.__module__.startswith("unlearning.methods"):
                continue
            doc = inspect.getdoc(cls) or ""
            found[qualified(cls)] = {
                "name": cls.__name__,
                "path": qualified(cls),
                "exported": getattr(unlearning.methods, cls.__name__, None) is cls,
                "summary": doc.split("\n\n", 1)[0].replace("\n", " ").strip(),
                "train_streams": list(cls.train_streams),
                "extra_streams": list(getattr(cls, "extra_streams", ()) or ()),
                "uses_original": bool(getattr(cls, "uses_original", False)),
                "resumable": bool(getattr(cls, "resumable", True)),
                "stages": dict(getattr(cls, "stages", {}) or {}),
                "bases": [qualified(b) for b in cls.__bases__],
            }
    return sorted(found.values(), key=lambda m: m["name"].lower())


def stage_classes(found: list[dict], errors: list[str]) -> dict[str, str]:
    """``{class path as a method's ``stages`` gives it: the class's own path}``."""
    from unlearning.methods import module_class

    out: dict[str, str] = {}
    for stage in sorted({s for m in found for s in m["stages"].values()}):
        cls = module_class(stage)
        if cls is None:
            errors.append(f"stage class {stage!r} names no class")
        else:
            out[stage] = qualified(cls)
    return out


def configs(errors: list[str]) -> dict[str, str]:
    """``{config path: class path}`` for every config under ``configs/`` that names a model."""
    from unlearning.methods import module_class

    out: dict[str, str] = {}
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        rel = path.relative_to(ROOT).as_posix()
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            errors.append(f"{rel} is not valid YAML: {err}")
            continue
        model = data.get("model") if isinstance(data, dict) else None
        class_path = model.get("class_path") if isinstance(model, dict) else None
        if not isinstance(class_path, str):
            continue
        cls = module_class(class_path)
        if cls is None:
            errors.append(f"{rel}: model.class_path {class_path!r} names no class")
            continue
        out[rel] = qualified(cls)
    return out


def help_texts() -> dict[str, str]:
    """``{subcommand: --help output}``; ``""`` is the top-level ``unlearning --help``."""
    import unlearning.cli

    os.environ["COLUMNS"] = HELP_COLUMNS
    sys.argv[0] = "unlearning"
    out: dict[str, str] = {}
    for sub in ["", *unlearning.cli.SUBCOMMANDS]:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            unlearning.cli.main([sub, "--help"] if sub else ["--help"], save_config=False)
        out[sub] = buffer.getvalue().rstrip() + "\n"
    return out


def main(out: str) -> None:
    """Write the JSON file ``out``."""
    errors: list[str] = []
    data: dict = {"errors": errors}
    for key, fn in (("methods", methods), ("configs", configs)):
        try:
            data[key] = fn(errors)
        except Exception:  # noqa: BLE001 - reported, and the build fails on it
            errors.append(f"{key}: {traceback.format_exc()}")
            data[key] = [] if key == "methods" else {}
    data["stage_classes"] = stage_classes(data["methods"], errors)
    try:
        data["help"] = help_texts()
    except Exception:  # noqa: BLE001
        errors.append(f"help: {traceback.format_exc()}")
        data["help"] = {}
    Path(out).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
