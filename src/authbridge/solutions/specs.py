"""Solution specs: what a host declares (from YAML, JSON or the API), parsed and checked.

A spec is pure data: :func:`parse_solution_spec` checks its shape (keys, external ids, slot
flags, JSON Schemas); whether its connectors and static authentications exist is checked when
it is applied (``solutions/service.py``). Keys are accepted in snake_case or camelCase, and
every problem names its key path (``authSlots[1].externalId``).

Config values are checked with JSON Schema draft 2020-12 (``jsonschema``), formats included;
schemas may only refer inside themselves (``$ref: '#/$defs/…'``): nothing is ever fetched.

``workflows`` are what the host runs for every instance, each reached at a trigger URL: a
template (``https://{{instance_id}}.hooks.example.com``) filled per instance with
:data:`WORKFLOW_VALUES` by the safe URL renderer (a host placeholder takes one DNS label).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
import referencing.exceptions
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from authbridge import errors
from authbridge.jsonvalues import json_problem
from authbridge.spec.templates import render_url, template_names

KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")
EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
MAX_SLOTS = 50
MAX_SCOPES = 100
MAX_JSON_BYTES = 64 * 1024
"""The largest schema, default or config value, as compact JSON."""
MAX_MESSAGES = 5
MAX_WORKFLOWS = 50
#: The values a workflow's trigger URL template may use, filled per instance.
WORKFLOW_VALUES = ("instance_id", "solution_id", "solution_key", "workflow", "owner")
_SAMPLE_ID = "00000000-0000-4000-8000-000000000000"
"""At most this many schema violations are listed in one error."""
Validator = jsonschema.Draft202012Validator
ExtraScopes = Literal["flag", "refuse"]
#: What an auth slot may do with scopes granted beyond its own.
EXTRA_SCOPES: tuple[ExtraScopes, ...] = ("flag", "refuse")


@dataclass(frozen=True)
class AuthSlotSpec:
    """One connector account the solution needs (see :class:`~authbridge.storage.models.AuthSlot`).

    ``version`` ``None`` means the connector's newest version when the spec is applied;
    ``variant`` ``None`` accepts any variant. A ``static`` slot is hidden and always holds
    ``static_auth_id``. ``on_extra_scopes`` (:data:`EXTRA_SCOPES`) is what an authentication
    granted more than ``scopes`` does: ``flag`` fills the slot and records them, ``refuse``
    does not fill it.
    """

    external_id: str
    title: str
    connector: str
    version: str | None = None
    variant: str | None = None
    scopes: tuple[str, ...] = ()
    hidden: bool = False
    static: bool = False
    static_auth_id: str | None = None
    force_unique: bool = False
    on_extra_scopes: ExtraScopes = "flag"


@dataclass(frozen=True)
class ConfigSlotSpec:
    """One configuration value: its JSON Schema and default (``None``: no default)."""

    external_id: str
    title: str
    schema: dict[str, Any]
    default: Any = None
    hidden: bool = False


@dataclass(frozen=True)
class WorkflowSpec:
    """A workflow the host runs for every instance; ``trigger_url`` is a URL template filled
    per instance with :data:`WORKFLOW_VALUES`."""

    key: str
    title: str
    trigger_url: str


@dataclass(frozen=True)
class SolutionSpec:
    key: str
    title: str
    description: str = ""
    auth_slots: tuple[AuthSlotSpec, ...] = ()
    config_slots: tuple[ConfigSlotSpec, ...] = ()
    workflows: tuple[WorkflowSpec, ...] = ()


# -- parsing -------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


def _text(value: str, what: str) -> str:
    cleaned = value.strip()
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cleaned):
        raise ValueError(f"the {what} contains control characters")
    if not cleaned:
        raise ValueError(f"the {what} must not be empty")
    return cleaned


def _external_id(value: str) -> str:
    if not EXTERNAL_ID_PATTERN.fullmatch(value):
        raise ValueError(
            "an external id is 1 to 128 letters, digits, '_', '.', ':' or '-' "
            "(case-sensitive), starting with a letter, digit or '_'"
        )
    return value


def _version(value: Any) -> Any:
    """YAML reads ``version: 2`` as a number; versions are text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class _AuthSlotIn(_Model):
    external_id: str
    title: str | None = Field(default=None, max_length=255)
    connector: str = Field(min_length=1, max_length=128)
    version: str | None = Field(default=None, min_length=1, max_length=32)
    variant: str | None = Field(default=None, min_length=1, max_length=64)
    scopes: list[str] = Field(default_factory=list, max_length=MAX_SCOPES)
    hidden: bool = False
    static: bool = False
    static_auth_id: str | None = Field(default=None, min_length=1, max_length=36)
    force_unique: bool = False
    on_extra_scopes: ExtraScopes = "flag"

    _check_external_id = field_validator("external_id")(_external_id)
    _check_version = field_validator("version", mode="before")(_version)

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, "title")

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not scope or len(scope) > 256 or any(c.isspace() for c in scope):
                raise ValueError("each scope is non-empty text without spaces")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_static(self) -> _AuthSlotIn:
        if self.static and self.static_auth_id is None:
            raise ValueError("a static slot needs staticAuthId: the authentication it shares")
        if self.static_auth_id is not None and not self.static:
            raise ValueError("staticAuthId is only for a static slot: add 'static: true'")
        if self.static and self.force_unique:
            raise ValueError("a static slot shares one authentication: it cannot be forceUnique")
        return self


class _ConfigSlotIn(_Model):
    external_id: str
    title: str | None = Field(default=None, max_length=255)
    json_schema: dict[str, Any] = Field(
        validation_alias=AliasChoices("schema", "jsonSchema", "json_schema")
    )
    default: Any = None
    hidden: bool = False

    _check_external_id = field_validator("external_id")(_external_id)

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, "title")


class _WorkflowIn(_Model):
    key: str
    title: str | None = Field(default=None, max_length=255)
    trigger_url: str = Field(min_length=1, max_length=2048)

    _check_key = field_validator("key")(_external_id)

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str | None) -> str | None:
        return None if value is None else _text(value, "title")

    @field_validator("trigger_url")
    @classmethod
    def _check_trigger_url(cls, value: str) -> str:
        unknown = sorted(template_names(value) - set(WORKFLOW_VALUES))
        if unknown:
            raise ValueError(
                f"unknown placeholder '{unknown[0]}'; a trigger URL may use "
                + ", ".join(WORKFLOW_VALUES)
            )
        return value.strip()


class _SolutionIn(_Model):
    key: str
    title: str = Field(max_length=255)
    description: str = Field(default="", max_length=10_000)
    auth_slots: list[_AuthSlotIn] = Field(default_factory=list, max_length=MAX_SLOTS)
    config_slots: list[_ConfigSlotIn] = Field(default_factory=list, max_length=MAX_SLOTS)
    workflows: list[_WorkflowIn] = Field(default_factory=list, max_length=MAX_WORKFLOWS)

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if not KEY_PATTERN.fullmatch(value):
            raise ValueError(
                "a solution key is 1 to 128 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str) -> str:
        return _text(value, "title")


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path += f".{part}" if path else part
    return path


def _pydantic_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        # Validators' messages arrive as "Value error, <ours>": keep only ours.
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append((_location(item["loc"]), message))
    return problems


def parse_solution_spec(data: Mapping[str, Any]) -> SolutionSpec:
    """Check a spec read from YAML or JSON; :class:`errors.InvalidInput` names each key path."""
    if not isinstance(data, Mapping):
        raise errors.InvalidInput("a solution spec is a mapping (key, title, authSlots …)")
    problem = json_problem(data)
    if problem is not None:
        raise errors.InvalidInput(problem)
    try:
        parsed = _SolutionIn.model_validate(dict(data))
    except ValidationError as error:
        raise _invalid(_pydantic_problems(error)) from None
    problems = list(_slot_problems(parsed))
    if problems:
        raise _invalid(problems)
    return SolutionSpec(
        key=parsed.key,
        title=parsed.title,
        description=parsed.description.strip(),
        auth_slots=tuple(
            AuthSlotSpec(
                external_id=slot.external_id,
                title=slot.title or slot.external_id,
                connector=slot.connector,
                version=slot.version,
                variant=slot.variant,
                scopes=tuple(slot.scopes),
                hidden=slot.hidden or slot.static,
                static=slot.static,
                static_auth_id=slot.static_auth_id,
                force_unique=slot.force_unique,
                on_extra_scopes=slot.on_extra_scopes,
            )
            for slot in parsed.auth_slots
        ),
        config_slots=tuple(
            ConfigSlotSpec(
                external_id=slot.external_id,
                title=slot.title or slot.external_id,
                schema=slot.json_schema,
                default=slot.default,
                hidden=slot.hidden,
            )
            for slot in parsed.config_slots
        ),
        workflows=tuple(
            WorkflowSpec(
                key=workflow.key,
                title=workflow.title or workflow.key,
                trigger_url=workflow.trigger_url,
            )
            for workflow in parsed.workflows
        ),
    )


def _invalid(problems: list[tuple[str, str]]) -> errors.InvalidInput:
    lines = [f"{path}: {reason}" if path else reason for path, reason in problems]
    return errors.InvalidInput("; ".join(lines), field=problems[0][0] or None)


def _slot_problems(parsed: _SolutionIn) -> Iterator[tuple[str, str]]:
    seen: dict[str, str] = {}
    paths = [(f"authSlots[{i}]", slot.external_id) for i, slot in enumerate(parsed.auth_slots)]
    paths += [(f"configSlots[{i}]", slot.external_id) for i, slot in enumerate(parsed.config_slots)]
    for path, external_id in paths:
        if external_id in seen:
            yield (
                f"{path}.externalId",
                f"'{external_id}' is already the external id of {seen[external_id]}",
            )
        seen.setdefault(external_id, path)
    for index, slot in enumerate(parsed.config_slots):
        path = f"configSlots[{index}]"
        problem = schema_problem(slot.json_schema)
        if problem is not None:
            yield f"{path}.schema", problem
        elif slot.default is not None:
            messages = value_problems(slot.json_schema, slot.default)
            if messages:
                yield f"{path}.default", "does not match the schema: " + "; ".join(messages)
    keys: set[str] = set()
    for index, workflow in enumerate(parsed.workflows):
        path = f"workflows[{index}]"
        if workflow.key in keys:
            yield f"{path}.key", f"'{workflow.key}' is the key of another workflow"
        keys.add(workflow.key)
        try:
            trigger_url(
                workflow.trigger_url, _SAMPLE_ID, _SAMPLE_ID, parsed.key, workflow.key, _SAMPLE_ID
            )
        except errors.TemplateError as error:
            yield f"{path}.triggerUrl", error.message


def trigger_url(
    template: str, instance_id: str, solution_id: str, solution_key: str, workflow: str, owner: str
) -> str:
    """A workflow's trigger URL for one instance (:class:`errors.TemplateError` if the values
    do not fit where the template puts them)."""
    values = {
        "instance_id": instance_id,
        "solution_id": solution_id,
        "solution_key": solution_key,
        "workflow": workflow,
        "owner": owner,
    }
    return render_url(template, values)


# -- JSON Schema -------------------------------------------------------------------------------


def _too_large(value: Any) -> bool:
    return len(json.dumps(value, separators=(",", ":"), default=str)) > MAX_JSON_BYTES


def _outside_refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for name, item in schema.items():
            if name in ("$ref", "$dynamicRef") and not str(item).startswith("#"):
                yield str(item)
            else:
                yield from _outside_refs(item)
    elif isinstance(schema, list):
        for item in schema:
            yield from _outside_refs(item)


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a usable JSON Schema (draft 2020-12), or ``None``."""
    if _too_large(schema):
        return f"the schema is larger than {MAX_JSON_BYTES // 1024} KiB"
    try:
        Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.path)
        return f"not a valid JSON Schema{f' at {where}' if where else ''}: {error.message}"
    outside = next(_outside_refs(schema), None)
    if outside is not None:
        return f"$ref '{outside}' points outside the schema; use '#/$defs/…'"
    return None


@dataclass(frozen=True)
class TextValue:
    """A config value given as text, as the reference's pages send it: JSON text
    (``"\"leads\""`` is the string ``leads``, ``3`` the number) or a bare string
    (``Zx86yu9P``). :func:`read_text` decides which, by the slot's schema."""

    text: str


def read_text(schema: Mapping[str, Any], value: TextValue, path: str = "") -> Any:
    """The value ``value`` stands for in a slot of ``schema``: its JSON value when the text
    is JSON and that fits, else the text itself as a string when that fits (``12345`` for a
    string slot), else the JSON value (whose problems are then reported). JSON ``null`` is
    ``None``, which clears the slot."""
    try:
        decoded = json.loads(value.text)
    except ValueError:
        return value.text
    if decoded is None or isinstance(decoded, str):
        return decoded
    if value_problems(schema, decoded, path) and not value_problems(schema, value.text, path):
        return value.text
    return decoded


def value_problems(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """The ways ``value`` breaks ``schema``, each naming where (``path.items[0]: …``)."""
    unstorable = json_problem(value, path)
    if unstorable is not None:
        return [unstorable]
    if _too_large(value):
        return [f"{path or 'the value'} is larger than {MAX_JSON_BYTES // 1024} KiB"]
    validator = Validator(schema, format_checker=Validator.FORMAT_CHECKER)
    try:
        found = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
    except referencing.exceptions.Unresolvable as unresolvable:
        return [f"{path or 'the schema'}: a $ref cannot be resolved ({unresolvable})"]
    messages = []
    for violation in found[:MAX_MESSAGES]:
        inner = violation.json_path.removeprefix("$")
        where = f"{path}{inner}" if path else inner.removeprefix(".")
        message = violation.message
        if len(message) > 200:
            message = message[:197] + "..."
        messages.append(f"{where}: {message}" if where else message)
    if len(found) > MAX_MESSAGES:
        messages.append(f"and {len(found) - MAX_MESSAGES} more")
    return messages
