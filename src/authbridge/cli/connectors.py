"""``authbridge connectors``: list, show and validate connector definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from authbridge.errors import AuthBridgeError, DefinitionError

if TYPE_CHECKING:
    from authbridge.connectors.loader import Connector
    from authbridge.connectors.registry import Registry

app = typer.Typer(help="List, inspect and validate connector definitions.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PathsOption = typer.Option(
    None,
    "--path",
    "-p",
    help="A connectors folder to load after the bundled catalog (repeatable). "
    "Defaults to the folders in AUTHBRIDGE_CONNECTORS.",
)


def _registry(paths: list[Path] | None) -> Registry:
    from authbridge.connectors.registry import Registry
    from authbridge.runtime import connector_folders

    try:
        return Registry.load(paths or connector_folders())
    except DefinitionError as exc:
        err.print("[red]Some connector definitions are invalid:[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False)
        err.print("Run [bold]authbridge connectors validate PATH[/bold] for details.")
        raise typer.Exit(1) from exc


@app.command("list")
def list_connectors(
    paths: list[Path] | None = PathsOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every connector (newest version of each) with its auth type."""
    from rich.table import Table

    registry = _registry(paths)
    rows = [
        {
            "key": c.key,
            "version": c.version,
            "type": c.auth_type,
            "label": c.label,
            "origin": c.origin,
        }
        for c in registry
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("key", "version", "auth type", "label", "from", title=f"{len(rows)} connectors")
    for row in rows:
        table.add_row(row["key"], row["version"], row["type"], row["label"], row["origin"])
    out.print(table)


def describe_property(value: Any) -> str:
    """A one-line, secret-free description of a definition property."""
    from authbridge.connectors.request_models import RequestSpec

    if isinstance(value, RequestSpec):
        return f"request {value.method or '(default method)'} {value.url}"
    if callable(value):
        return f"callable {getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


@app.command("show")
def show(
    key: str = typer.Argument(..., help="The connector key, e.g. freshdesk."),
    version: str | None = typer.Option(None, "--version", "-v", help="A specific version."),
    paths: list[Path] | None = PathsOption,
) -> None:
    """Show a connector's manifest, form fields and auth properties (never runs them)."""
    from rich.table import Table

    registry = _registry(paths)
    try:
        connector = registry.get(key, version)
        definition = connector.definition()
    except AuthBridgeError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    _print_header(connector, [c.version for c in registry.versions(key)])
    data = definition.model_dump(exclude_defaults=True, exclude={"type"})
    fields = data.pop("auth", None)
    if fields:
        table = Table("field", "type", "label", "required", title="Form fields")
        for name, spec in getattr(definition, "auth", {}).items():
            table.add_row(name, spec.type, spec.name or name, "yes" if spec.required else "no")
        out.print(table)
    for name in sorted(data):
        label = name.rstrip("_")
        out.print(f"  {label}: {describe_property(getattr(definition, name))}", markup=False)


def _print_header(connector: Connector, versions: list[str]) -> None:
    manifest = connector.manifest
    out.print(f"[bold]{connector.label}[/bold] ({connector.key}) — auth type {connector.auth_type}")
    out.print(f"  version {connector.version} (available: {', '.join(versions)})")
    out.print(f"  defined in {connector.source}", markup=False)
    if manifest.docs_url:
        out.print(f"  docs: {manifest.docs_url}", markup=False)
    if manifest.description:
        out.print(f"  {manifest.description}", markup=False)


@app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Connector folders to check. Without one, the bundled catalog is checked."
        ),
    ] = None,
) -> None:
    """Check connector folders; list every problem with file and key path, exit 1 on any."""
    from authbridge.connectors.registry import CATALOG, scan_folder

    targets = paths or [CATALOG]
    total = 0
    problems = []
    for folder in targets:
        report = scan_folder(folder, origin=str(folder))
        total += len(report.connectors)
        problems.extend(report.problems)
    if problems:
        err.print(f"[red]{len(problems)} problem(s) found:[/red]")
        for problem in problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(1)
    out.print(f"[green]OK[/green]: {total} connector(s) valid in {', '.join(map(str, targets))}")
