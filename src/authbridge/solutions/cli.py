"""``authbridge solutions``: apply solution specs from YAML files, list, show and delete them.

A solution file declares a solution's auth slots (one connector account each) and config slots
(one JSON value each, checked by a JSON Schema); applying it again after an edit updates the
solution in place, and instances keep the values of the slots that remain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from authbridge import errors
from authbridge.cli.common import (
    CLI_ACTOR,
    ConnectorsOption,
    EnvOption,
    Opened,
    new_table,
    opened,
    out,
    reported_errors,
    wide,
)
from authbridge.errors import CliError

if TYPE_CHECKING:
    from authbridge.services.principals import Principal
    from authbridge.solutions import service as solutions
    from authbridge.storage.models import Solution

app = typer.Typer(
    help="Manage solutions: what end users configure (auth slots and config slots), "
    "declared in YAML files.",
    no_args_is_help=True,
)


def _principal(state: Opened) -> Principal:
    from authbridge.services.principals import Principal

    return Principal(environment_id=state.environment.id, actor=CLI_ACTOR)


def _read_spec(path: Path) -> solutions.SolutionSpec:
    import yaml

    from authbridge.solutions import service as solutions

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CliError(f"{path} is not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a mapping (key, title, authSlots, configSlots)")
    try:
        return solutions.parse_solution_spec(data)
    except errors.InvalidInput as error:
        raise CliError(f"{path}: {error.message}") from None


@app.command("apply")
def apply_command(
    file: Annotated[
        Path, typer.Argument(metavar="FILE.yaml", help="The solution spec.", dir_okay=False)
    ],
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Create a solution from a YAML file, or update the one with the same key in place.

    Slots are matched by externalId (case-sensitive). A slot left out of the file
    is removed from the solution and from every instance. A file looks like:

    \b
    key: typeform-to-sheets
    title: Typeform to Sheets
    authSlots:
      - externalId: external_typeform_authentication
        connector: typeform
        scopes:
          - forms:read
          - responses:read
    configSlots:
      - externalId: external_sheet_name
        schema: {type: string}
        default: leads

    See examples/solutions/typeform-to-sheets.yaml for every option.
    """
    from authbridge.solutions import service as solutions

    with reported_errors():
        spec = _read_spec(file)
        with opened(env, folders) as state:
            principal = _principal(state)
            applied = solutions.apply_solution_changes(state.bridge, state.session, principal, spec)
            solution_id = applied.solution.id
        # Committed: only now say so.
        if applied.created:
            out.print(f"Created solution '{spec.key}' ({solution_id}).", markup=False)
        elif applied.changes:
            out.print(f"Updated solution '{spec.key}' ({solution_id}):", markup=False)
        else:
            out.print(f"Solution '{spec.key}' is up to date: nothing changed.", markup=False)
        if not applied.created:
            for line in applied.changes:
                out.print(f"  {line}", markup=False)


@app.command("list")
def list_command(env: str = EnvOption, folders: ConnectorsOption = None) -> None:
    """List the environment's solutions."""
    from authbridge.solutions import service as solutions

    with reported_errors(), opened(env, folders) as state:
        principal = _principal(state)
        found = solutions.list_solutions(state.bridge, state.session, principal)
        if not found:
            out.print("No solutions yet: see 'authbridge solutions apply --help'.", markup=False)
            return
        table = new_table("key", "title", "auth slots", "config slots", "id")
        for solution in found:
            table.add_row(
                solution.key,
                solution.title,
                ", ".join(slot.external_id for slot in solution.auth_slots) or "-",
                ", ".join(slot.external_id for slot in solution.config_slots) or "-",
                solution.id,
            )
        wide.print(table)


def _flags(**flags: bool) -> str:
    return ", ".join(name.replace("_", "-") for name, on in flags.items() if on)


def _describe(solution: Solution) -> None:
    def line(label: str, value: Any) -> None:
        out.print(f"  {label:<14} {value}", markup=False)

    out.print(f"{solution.title} ({solution.key})", markup=False)
    line("id", solution.id)
    if solution.description:
        line("description", solution.description)
    for slot in solution.auth_slots:
        out.print(f"auth slot {slot.external_id}: {slot.title}", markup=False)
        variant = f", variant {slot.connector_variant}" if slot.connector_variant else ""
        line("connector", f"{slot.connector_key} {slot.connector_version}{variant}")
        line("scopes", " ".join(slot.scopes or []) or "(any)")
        flags = _flags(
            hidden=slot.hidden,
            static=slot.static,
            force_unique=slot.force_unique,
            refuses_extra_scopes=slot.on_extra_scopes == "refuse",
        )
        if flags:
            line("flags", flags)
        if slot.static:
            line("shared auth", slot.static_auth_id or "(deleted: apply a new staticAuthId)")
    from authbridge.solutions import service as solutions

    for workflow in solutions.spec_of(solution).workflows:
        out.print(f"workflow {workflow.key}: {workflow.title}", markup=False)
        line("trigger url", workflow.trigger_url)
    for config in solution.config_slots:
        out.print(f"config slot {config.external_id}: {config.title}", markup=False)
        line("schema", json.dumps(config.json_schema, separators=(",", ":")))
        if config.default is not None:
            line("default", json.dumps(config.default))
        if config.hidden:
            line("flags", "hidden")


@app.command("show")
def show_command(
    key: str = typer.Argument(..., metavar="KEY", help="The solution's key (or id)."),
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Show a solution's slots: connectors, scopes, flags, schemas and defaults."""
    from authbridge.solutions import service as solutions

    with reported_errors(), opened(env, folders) as state:
        principal = _principal(state)
        _describe(solutions.get_solution(state.bridge, state.session, principal, key))


@app.command("delete")
def delete_command(
    key: str = typer.Argument(..., metavar="KEY", help="The solution's key (or id)."),
    yes: bool = typer.Option(False, "--yes", help="Really delete it, with its instances."),
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Delete a solution and every instance of it (end users' settings are lost)."""
    from authbridge.solutions import service as solutions

    with reported_errors():
        if not yes:
            raise CliError(
                f"deleting solution '{key}' also deletes every instance of it; "
                "add --yes to go ahead"
            )
        with opened(env, folders) as state:
            principal = _principal(state)
            count = solutions.delete_solution(state.bridge, state.session, principal, key)
        out.print(f"Deleted solution '{key}' and {count} instance(s).", markup=False)
