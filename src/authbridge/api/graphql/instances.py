"""Mutations for solution instances, and the configuration wizard's authorization code.

The rules (case-sensitive external ids, ownership, connector and scopes, force-unique,
static slots, enabling) are the services'; errors name the slot, e.g. field
``authValues.external_slack_authentication``. Config values are JSON text on the way out, as
the reference shows them (``"\\"leads\\""`` is the string ``leads``); on the way in also a bare
string, as the reference's pages send some (``Zx86yu9P``), read by the slot's schema
(:func:`authbridge.solutions.specs.read_text`); ``null`` clears a value in an update.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry

from authbridge import errors
from authbridge.api.graphql.mutations import find_user
from authbridge.api.graphql.types import Info, SolutionInstanceNode, mutation
from authbridge.solutions import service as solutions
from authbridge.wizard import service as wizard


@strawberry.input
class AuthValueInput:
    external_id: str = strawberry.field(description="The auth slot's external id (case-sensitive)")
    auth_id: strawberry.ID | None = strawberry.field(
        description="The authentication filling it; null clears the slot (updates)"
    )


@strawberry.input
class ConfigValueInput:
    external_id: str = strawberry.field(
        description="The config slot's external id (case-sensitive)"
    )
    value: str | None = strawberry.field(
        description='The value as JSON text ("\\"leads\\"" is the string leads) or a bare string '
        "(leads); null clears it"
    )


def auth_values_of(values: Sequence[AuthValueInput] | None) -> dict[str, str | None] | None:
    if values is None:
        return None
    pairs = [(value.external_id, value.auth_id) for value in values]
    return _unique("authValues", pairs)


def config_values_of(values: Sequence[ConfigValueInput] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    pairs = [
        (value.external_id, None if value.value is None else solutions.TextValue(value.value))
        for value in values
    ]
    return _unique("configValues", pairs)


def _unique(field: str, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for external_id, value in pairs:
        if external_id in mapping:
            raise errors.InvalidInput(f"{field}: '{external_id}' is given twice", field=field)
        mapping[external_id] = value
    return mapping


@strawberry.input
class CreateSolutionInstanceInput:
    solution_id: strawberry.ID = strawberry.field(description="The solution's id or key")
    instance_name: str
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The end user's id: required with a master token"
    )
    auth_values: list[AuthValueInput] | None = None
    config_values: list[ConfigValueInput] | None = None
    enabled: bool = strawberry.field(
        default=False, description="Enable at once (every slot must be filled)"
    )


@strawberry.input
class UpdateSolutionInstanceInput:
    solution_instance_id: strawberry.ID
    instance_name: str | None = None
    enabled: bool | None = None
    auth_values: list[AuthValueInput] | None = strawberry.field(
        default=None, description="Merged into the current values"
    )
    config_values: list[ConfigValueInput] | None = strawberry.field(
        default=None, description="Merged into the current values"
    )


@strawberry.input
class RemoveSolutionInstanceInput:
    solution_instance_id: strawberry.ID


@strawberry.type
class SolutionInstancePayload:
    solution_instance: SolutionInstanceNode


@strawberry.type
class RemoveSolutionInstancePayload:
    solution_instance_id: strawberry.ID


@strawberry.input
class GenerateAuthorizationCodeInput:
    user_id: strawberry.ID
    origin: str | None = strawberry.field(
        default=None,
        description="The host page's origin: the finished wizard posts its result there",
    )


@strawberry.type
class GenerateAuthorizationCodePayload:
    authorization_code: str = strawberry.field(
        description="Opens the configuration wizard or an edit link once, within 10 minutes"
    )
    expires_at: datetime


@strawberry.type
class InstanceMutations:
    @mutation("Create an end user's instance of a solution")
    def create_solution_instance(
        self, info: Info, input: CreateSolutionInstanceInput
    ) -> SolutionInstancePayload:
        auth_values, config_values = (
            auth_values_of(input.auth_values),
            config_values_of(input.config_values),
        )
        with info.context.change() as (session, principal):
            if principal.is_master and input.user_id is None:
                raise errors.InvalidInput("userId is required with a master token", field="userId")
            end_user_id = (
                find_user(session, principal, input.user_id).id
                if input.user_id is not None
                else None
            )
            instance = solutions.create_instance(
                info.context.bridge,
                session,
                principal,
                solution_id=input.solution_id,
                end_user_id=end_user_id,
                name=input.instance_name,
                auth_values=auth_values,
                config_values=config_values,
                enabled=input.enabled,
            )
        return SolutionInstancePayload(solution_instance=SolutionInstanceNode.of(instance))

    @mutation("Rename, enable or disable an instance, or change values")
    def update_solution_instance(
        self, info: Info, input: UpdateSolutionInstanceInput
    ) -> SolutionInstancePayload:
        auth_values, config_values = (
            auth_values_of(input.auth_values),
            config_values_of(input.config_values),
        )
        with info.context.change() as (session, principal):
            instance = solutions.update_instance(
                info.context.bridge,
                session,
                principal,
                input.solution_instance_id,
                name=input.instance_name,
                auth_values=auth_values,
                config_values=config_values,
                enabled=input.enabled,
            )
        return SolutionInstancePayload(solution_instance=SolutionInstanceNode.of(instance))

    @mutation("Delete an instance")
    def remove_solution_instance(
        self, info: Info, input: RemoveSolutionInstanceInput
    ) -> RemoveSolutionInstancePayload:
        with info.context.change() as (session, principal):
            solutions.delete_instance(
                info.context.bridge, session, principal, input.solution_instance_id
            )
        return RemoveSolutionInstancePayload(solution_instance_id=input.solution_instance_id)

    @mutation("Mint a one-time code for the configuration wizard")
    def generate_authorization_code(
        self, info: Info, input: GenerateAuthorizationCodeInput
    ) -> GenerateAuthorizationCodePayload:
        with info.context.change() as (session, principal):
            end_user = find_user(session, principal, input.user_id)
            code, expires_at = wizard.create_authorization_code(
                info.context.bridge,
                session,
                principal,
                end_user_id=end_user.id,
                origin=input.origin,
            )
        return GenerateAuthorizationCodePayload(authorization_code=code, expires_at=expires_at)
