"""The one error tree: every error class lives in ``authbridge.errors`` and its docstring draws
the tree as it is."""

from __future__ import annotations

import importlib
import pkgutil
import re

import authbridge
from authbridge import errors

_TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*?)(?P<name>[A-Z]\w+)(?:\s{2,}.*)?$")


def drawn_tree() -> dict[str, str | None]:
    """Each class the module docstring draws, with the parent it is drawn under."""
    doc = errors.__doc__ or ""
    lines = [line[4:] for line in doc.splitlines() if line.startswith("    ")]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        match = _TREE_LINE.match(line)
        assert match is not None, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 4
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def every_module() -> None:
    """Import every module of the package (not the migration scripts, which Alembic runs)."""
    for module in pkgutil.walk_packages(authbridge.__path__, "authbridge."):
        if not module.name.startswith("authbridge.storage.migrations"):
            importlib.import_module(module.name)


def subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_authbridge_error_is_defined_in_errors() -> None:
    every_module()
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in subclasses(errors.AuthBridgeError)
        if cls.__module__ != errors.__name__
    )
    assert elsewhere == []


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    actual: dict[str, str | None] = {errors.AuthBridgeError.__name__: None}
    for cls in subclasses(errors.AuthBridgeError):
        if cls.__module__ == errors.__name__:
            actual[cls.__name__] = cls.__mro__[1].__name__
    assert drawn_tree() == actual
