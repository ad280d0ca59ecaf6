"""A Griffe extension: the package's Sphinx-style roles become MkDocs cross-references.

The docstrings are Google style but name other objects the Sphinx way,
``:class:`~unlearning.modules.UnlearnModule```, ``:meth:`cycle```, ``:func:`net_spec```. Python-Markdown
would print those roles as they are; this extension rewrites each into an autorefs link
(``[`UnlearnModule`][unlearning.modules.unlearn.UnlearnModule]``) before the docstrings are parsed.

A target is looked up as Sphinx would: an absolute dotted path, else a name in the scope of the
documented object (its class, inherited members included, then its module and the packages above),
else a name (or dotted tail) that one object of the package alone has. What resolves to the
package's public API becomes a link (to its documented owner where it has no docstring of its own,
so is not rendered: a class attribute described in its class's docstring); what resolves outside
the package (no inventory is loaded: the site builds offline) or to a private object (not in the
reference) becomes inline code. A target
that resolves to nothing (and is not another library's dotted path) stays a link to its own
text, which autorefs reports as ``Could not find cross-reference target``: ``mkdocs build
--strict`` fails on it.

RST's literal-block marker (a paragraph ending in ``::``) becomes a single colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):`([^`]+)`")
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
_LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package (see the module docstring)."""

    def __init__(self) -> None:
        self._suffixes: dict[str, list[griffe.Object]] = {}

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Index the package's objects, then rewrite every docstring in it."""
        objects = list(self._walk(pkg))
        self._suffixes = {}
        for obj in objects:
            parts = obj.path.split(".")
            for i in range(1, len(parts)):
                self._suffixes.setdefault(".".join(parts[i:]), []).append(obj)
        for obj in objects:
            if obj.docstring is not None:
                obj.docstring.value = self._rewrite(obj, obj.docstring.value, loader, pkg.name)

    def _walk(self, obj: griffe.Object):
        yield obj
        for member in obj.members.values():
            if not member.is_alias:
                yield from self._walk(member)

    def _rewrite(self, obj: griffe.Object, text: str, loader: griffe.GriffeLoader, package: str) -> str:
        def replace(match: re.Match[str]) -> str:
            target = match.group(1).strip()
            title = None
            if (titled := _TITLED.match(target)) is not None:
                title, target = titled.group("title"), titled.group("target")
            short = target.startswith("~")
            target = target.lstrip("~").lstrip(".")
            shown = title or (target.rsplit(".", 1)[-1] if short else target)
            found = self._resolve(obj, target, loader)
            if found is None:
                if "." in target and target.split(".", 1)[0] != package:
                    return f"`{shown}`"  # another library's object: no inventory to link to
                return f"[`{shown}`][{target}]"  # no such object: autorefs reports it
            if isinstance(found, str) or not found.path.startswith(f"{package}."):
                return f"`{shown}`"  # outside the package: no inventory to link to
            if _private(found.path):
                return f"`{shown}`"  # exists, but private: not in the reference
            rendered = found
            while not (rendered.is_module or rendered.has_docstrings) and rendered.parent is not None:
                rendered = rendered.parent  # undocumented (not rendered): its documented owner
            return f"[`{shown}`][{rendered.path}]"

        return _LITERAL_MARKER.sub(":", _ROLE.sub(replace, text))

    def _resolve(self, obj: griffe.Object, target: str, loader: griffe.GriffeLoader) -> griffe.Object | str | None:
        """The object ``target`` names from ``obj`` (an alias followed to its target; the
        target's path when that lies outside the loaded packages), or ``None``."""
        parts = target.split(".")
        with_scope = [obj, *self._parents(obj)]
        candidates = [lambda: loader.modules_collection.get_member(target)]
        candidates += [lambda scope=scope: self._lookup(scope, parts) for scope in with_scope]
        for candidate in candidates:
            try:
                found = candidate()
            except (KeyError, ValueError, IndexError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if found is not None:
                return self._final(found)
        matches = self._suffixes.get(target, [])
        if len({m.path for m in matches}) == 1:
            return matches[0]
        return None

    @staticmethod
    def _parents(obj: griffe.Object):
        while obj.parent is not None:
            obj = obj.parent
            yield obj

    @staticmethod
    def _lookup(scope: griffe.Object, parts: list[str]) -> griffe.Object | griffe.Alias | None:
        current: Any = scope
        for part in parts:
            members = current.all_members if current.is_class else current.members
            if part not in members:
                return None
            current = members[part]
        return current

    @staticmethod
    def _final(found: griffe.Object | griffe.Alias) -> griffe.Object | str:
        if found.is_alias:
            try:
                return found.final_target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                return found.target_path  # outside the loaded packages
        return found
