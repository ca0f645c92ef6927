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


def echoing_connector(target: Path, base_url: str) -> Path:
    """A folder with the API-key connector ``echo-encoded``, whose ``validate`` the
    :class:`~tests.support.providers.ErrorShapes` at ``base_url`` refuses, quoting the key in
    every encoding it knows."""
    folder = target / "tests" / "echo-encoded"
    folder.mkdir(parents=True)
    (folder / "auth.yaml").write_text(
        "type: api_key\n"
        "definition:\n"
        "  auth:\n"
        "    api_key: {type: password, name: API key}\n"
        "  validate:\n"
        f"    url: {base_url}/errors/echo-encoded\n"
        "    headers: {X-Api-Key: '{{api_key}}'}\n",
        encoding="utf-8",
    )
    return target
