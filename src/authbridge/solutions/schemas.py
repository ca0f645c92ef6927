"""Bodies of ``/v1/solutions`` and ``/v1/solution-instances`` (camelCase, as the reference).

Request bodies also accept snake_case keys and forbid unknown ones. A solution spec's body is
checked by :func:`authbridge.solutions.service.parse_solution_spec`, so the API, the CLI's
YAML files and GraphQL report the same key paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from authbridge import errors
from authbridge.api.schemas import MAX_TEXT, StrictBools
from authbridge.jsonvalues import json_problem
from authbridge.solutions import service as solutions
from authbridge.storage.models import AuthSlot, ConfigSlot, Solution, SolutionInstance

MAX_VALUES = 100

SPEC_EXAMPLE: dict[str, Any] = {
    "title": "Typeform to Sheets",
    "description": "New Typeform responses become rows of a Google sheet",
    "authSlots": [
        {
            "externalId": "external_typeform_authentication",
            "title": "Typeform",
            "connector": "typeform",
            "scopes": ["forms:read", "responses:read"],
        },
        {
            "externalId": "external_google_sheets_authentication",
            "title": "Google Sheets",
            "connector": "google",
            "scopes": ["https://www.googleapis.com/auth/spreadsheets"],
            "forceUnique": True,
        },
    ],
    "configSlots": [
        {"externalId": "external_spreadsheet_id", "schema": {"type": "string", "minLength": 1}},
        {"externalId": "external_sheet_name", "schema": {"type": "string"}, "default": "leads"},
    ],
}


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _In(StrictBools):
    """A request body. Like :class:`~authbridge.api.schemas.Request`, it refuses NUL in text and
    booleans given as anything else, but walks JSON values without recursion: a config value
    may nest arbitrarily deep."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = json_problem(value)
        if problem is not None:
            raise ValueError(problem.removeprefix("the value: "))
        return value


class AuthSlotOut(_Out):
    external_id: str
    title: str
    connector: str
    version: str
    variant: str | None
    scopes: list[str] = Field(description="The scopes end users get; they cannot choose them")
    hidden: bool = Field(description="Not shown in the configuration wizard")
    static: bool = Field(description="Always holds the shared authentication staticAuthId")
    static_auth_id: str | None = Field(description="Shown to master tokens only")
    force_unique: bool = Field(description="Takes no authentication another instance uses")
    on_extra_scopes: str = Field(
        description="An authentication granted more than scopes: flag (fills the slot, the "
        "extra scopes recorded on the instance) or refuse"
    )

    @classmethod
    def of(cls, slot: AuthSlot, *, master: bool) -> AuthSlotOut:
        return cls(
            external_id=slot.external_id,
            title=slot.title,
            connector=slot.connector_key,
            version=slot.connector_version,
            variant=slot.connector_variant,
            scopes=list(slot.scopes or []),
            hidden=slot.hidden,
            static=slot.static,
            static_auth_id=slot.static_auth_id if master else None,
            force_unique=slot.force_unique,
            on_extra_scopes=slot.on_extra_scopes,
        )


class ConfigSlotOut(_Out):
    external_id: str
    title: str
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema (2020-12)")
    default: Any
    hidden: bool

    @classmethod
    def of(cls, slot: ConfigSlot) -> ConfigSlotOut:
        return cls(
            external_id=slot.external_id,
            title=slot.title,
            json_schema=dict(slot.json_schema or {}),
            default=slot.default,
            hidden=slot.hidden,
        )


class WorkflowOut(_Out):
    key: str
    title: str
    trigger_url: str = Field(description="A URL template filled per instance")


class SolutionOut(_Out):
    id: str
    key: str
    title: str
    description: str
    auth_slots: list[AuthSlotOut]
    config_slots: list[ConfigSlotOut]
    workflows: list[WorkflowOut] = Field(description="The host's workflows every instance has")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, solution: Solution, *, master: bool) -> SolutionOut:
        return cls(
            id=solution.id,
            key=solution.key,
            title=solution.title,
            description=solution.description,
            auth_slots=[AuthSlotOut.of(slot, master=master) for slot in solution.auth_slots],
            config_slots=[ConfigSlotOut.of(slot) for slot in solution.config_slots],
            workflows=[
                WorkflowOut(key=w.key, title=w.title, trigger_url=w.trigger_url)
                for w in solutions.spec_of(solution).workflows
            ],
            created_at=solution.created_at,
            updated_at=solution.updated_at,
        )


class SolutionApplied(_Out):
    solution: SolutionOut
    created: bool
    changes: list[str] = Field(description="What the spec changed, one line each")


class AuthValue(_In):
    external_id: str = Field(min_length=1, max_length=128, description="Case-sensitive")
    auth_id: str | None = Field(max_length=64, description="null clears the slot (updates)")


class ConfigValue(_In):
    external_id: str = Field(min_length=1, max_length=128, description="Case-sensitive")
    value: Any = Field(description="Any JSON value its slot's schema accepts; null clears it")


class AuthValueOut(_Out):
    external_id: str
    auth_id: str
    extra_scopes: list[str] = Field(
        description="The scopes the authentication held beyond the slot's when it filled it"
    )


class ConfigValueOut(_Out):
    external_id: str
    value: Any


class SolutionBrief(_Out):
    id: str
    key: str
    title: str
    description: str


class InstanceCreate(_In):
    solution_id: str = Field(min_length=1, max_length=128, description="The solution's id or key")
    external_user_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEXT, description="Required with a master token"
    )
    name: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        validation_alias=AliasChoices("name", "instanceName", "instance_name"),
    )
    auth_values: list[AuthValue] = Field(default_factory=list, max_length=MAX_VALUES)
    config_values: list[ConfigValue] = Field(default_factory=list, max_length=MAX_VALUES)
    enabled: bool = Field(
        default=False, description="Enable at once (the instance must be complete)"
    )


class InstanceUpdate(_In):
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXT,
        validation_alias=AliasChoices("name", "instanceName", "instance_name"),
    )
    auth_values: list[AuthValue] | None = Field(
        default=None, max_length=MAX_VALUES, description="Merged into the current values"
    )
    config_values: list[ConfigValue] | None = Field(
        default=None, max_length=MAX_VALUES, description="Merged into the current values"
    )
    enabled: bool | None = None


class InstanceWorkflowOut(_Out):
    id: str = Field(description="This instance's own id of the workflow")
    key: str
    title: str
    trigger_url: str = Field(description="Where this instance's workflow is triggered")


class InstanceOut(_Out):
    id: str
    name: str
    enabled: bool
    complete: bool = Field(description="Every auth slot filled and every config value valid")
    missing: list[str] = Field(description="Why the instance is not complete (empty if it is)")
    owner: str = Field(description="The end user's id")
    external_user_id: str | None
    solution: SolutionBrief
    auth_values: list[AuthValueOut]
    config_values: list[ConfigValueOut] = Field(description="Set values and slot defaults")
    workflows: list[InstanceWorkflowOut]
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(
        cls, instance: SolutionInstance, solution: Solution, external_user_id: str | None
    ) -> InstanceOut:
        missing = solutions.missing_for_enable(solution, instance)
        config = solutions.effective_config(solution, instance)
        return cls(
            id=instance.id,
            name=instance.name,
            enabled=instance.enabled,
            complete=not missing,
            missing=missing,
            owner=instance.end_user_id,
            external_user_id=external_user_id,
            solution=SolutionBrief(
                id=solution.id,
                key=solution.key,
                title=solution.title,
                description=solution.description,
            ),
            auth_values=[
                AuthValueOut(
                    external_id=row.external_id,
                    auth_id=row.auth_id,
                    extra_scopes=list(row.extra_scopes or ()),
                )
                for row in instance.auth_values
            ],
            config_values=[
                ConfigValueOut(external_id=key, value=value) for key, value in config.items()
            ],
            workflows=[
                InstanceWorkflowOut(id=w.id, key=w.key, title=w.title, trigger_url=w.trigger_url)
                for w in solutions.workflows_of(solution, instance)
            ],
            created_at=instance.created_at,
            updated_at=instance.updated_at,
            version=instance.version,
        )


def auth_values_of(values: Sequence[AuthValue]) -> dict[str, str | None]:
    """The list as a mapping; an external id given twice is refused."""
    return _unique("authValues", [(value.external_id, value.auth_id) for value in values])


def config_values_of(values: Sequence[ConfigValue]) -> dict[str, Any]:
    return _unique("configValues", [(value.external_id, value.value) for value in values])


def _unique(field: str, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for external_id, value in pairs:
        if external_id in mapping:
            raise errors.InvalidInput(
                f"{field}: '{external_id}' is given more than once", field=field
            )
        mapping[external_id] = value
    return mapping
