"""Connector folders for tests, rendered from templates with a loopback server's port."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any


def render_connectors(source: Path, target: Path, **values: Any) -> Path:
    """Copy the connector tree ``source`` to ``target``, filling ``$NAME`` placeholders."""
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = string.Template(path.read_text(encoding="utf-8")).substitute(values)
        destination.write_text(text, encoding="utf-8")
    return target
