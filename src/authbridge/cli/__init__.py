"""The ``authbridge`` command line: ``app`` (the Typer app) and ``main`` are in
:mod:`authbridge.cli.commands`, loaded on first use.

The package itself imports nothing, so that a slice's commands (``authbridge.<slice>.cli``) can
import :mod:`authbridge.cli.common` without building the whole app, which imports every slice's
commands in turn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from authbridge.cli import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'authbridge.cli' has no attribute {name!r}")
