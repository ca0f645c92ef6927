"""Mutations for end users, user tokens and authentications, named as in the reference.

Each mutation runs in a savepoint of the request's transaction (see :mod:`.context`), so one
that fails changes nothing. ``createUserAuthentication`` calls the provider to check the
credentials: it commits what came before, then reads, calls and stores in separate steps, as
the REST import does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import anyio.from_thread
import strawberry
from sqlalchemy.orm import Session
from strawberry.scalars import JSON

from authbridge import errors
from authbridge.api.graphql.types import AuthenticationNode, Info, UserNode, mutation
from authbridge.authentications import imports
from authbridge.authentications import service as authentications
from authbridge.services.principals import (
    MAX_EXTERNAL_ID,
    Principal,
    is_external_id,
)
from authbridge.storage.models import EndUser
from authbridge.tenancy import service as tenancy


def find_user(session: Session, principal: Principal, user_id: str) -> EndUser:
    """The end user with id ``user_id`` (a user token finds only its own)."""
    return tenancy.end_user_by_id(session, principal, user_id)


def json_object(value: Any, field: str) -> dict[str, Any]:
    """An input object, given as a GraphQL object or as JSON text of one (as the reference
    shows ``data``: one line, quotes escaped)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise errors.InvalidInput(f"{field} is not valid JSON", field=field) from None
    if not isinstance(value, dict):
        raise errors.InvalidInput(f"{field} must be a JSON object", field=field)
    return value


@strawberry.input
class CreateExternalUserInput:
    external_user_id: str = strawberry.field(description="The host's own id of the end user")
    name: str | None = None


@strawberry.type
class CreateExternalUserPayload:
    user_id: strawberry.ID
    user: UserNode


@strawberry.input
class CreateUserTokenInput:
    user_id: strawberry.ID


@strawberry.type
class CreateUserTokenPayload:
    access_token: str = strawberry.field(description="A user token: send it as a bearer token")
    expires_at: datetime


def one_of(value: str | None, alias: str | None, name: str, alias_name: str) -> str | None:
    """``value`` or its reference alias ``alias``, refused when the two differ."""
    if value is not None and alias is not None and value != alias:
        raise errors.InvalidInput(
            f"{name} and {alias_name} name the same thing and differ; give one", field=alias_name
        )
    return value if value is not None else alias


@strawberry.input
class CreateUserAuthenticationInput:
    user_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The end user's id: required with a master token; a user token's own end "
        "user by default",
    )
    connector: str | None = strawberry.field(
        default=None, description="The connector's key (or serviceId)"
    )
    service_id: str | None = strawberry.field(
        default=None, description="The reference's name of connector"
    )
    version: str | None = strawberry.field(default=None, description="Default: the newest")
    variant: str | None = strawberry.field(
        default=None,
        description="The connector variant (or serviceEnvironmentId); default: the "
        "connector's default",
    )
    service_environment_id: str | None = strawberry.field(
        default=None, description="The reference's name of variant"
    )
    name: str | None = None
    data: JSON | None = strawberry.field(
        default=None,
        description="The auth data, as an object or as JSON text of one: a form connector's "
        "fields, or an OAuth connector's tokens (with a scopes list, if not given as scopes)",
    )
    tokens: JSON | None = strawberry.field(
        default=None,
        description="An OAuth connector's tokens (access_token, refresh_token …), as an object "
        "or as JSON text of one",
    )
    scopes: list[str] | None = None
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the access token expires"
    )


@strawberry.type
class CreateUserAuthenticationPayload:
    authentication_id: strawberry.ID
    authentication: AuthenticationNode


@strawberry.input
class RemoveAuthenticationInput:
    authentication_id: strawberry.ID


@strawberry.type
class RemoveAuthenticationPayload:
    authentication_id: strawberry.ID


@strawberry.type
class AccountMutations:
    @mutation("Add an end user (master token)")
    def create_external_user(
        self, info: Info, input: CreateExternalUserInput
    ) -> CreateExternalUserPayload:
        _, caller = info.context.use()
        caller.require_master()
        external = input.external_user_id
        if not is_external_id(external):
            raise errors.InvalidInput(
                f"externalUserId must be 1 to {MAX_EXTERNAL_ID} characters of text",
                field="externalUserId",
            )
        name = authentications.check_name(input.name) if input.name is not None else None
        try:
            with info.context.change() as (session, principal):
                end_user = tenancy.add_end_user(
                    session, principal.environment_id, external, name=name
                )
        except errors.Conflict:  # also when added by a concurrent request meanwhile
            raise errors.Conflict(f"an end user with externalUserId '{external}' exists") from None
        return CreateExternalUserPayload(
            user_id=strawberry.ID(end_user.id), user=UserNode.of(end_user)
        )

    @mutation("Mint a user token for an end user (master token)")
    def create_user_token(self, info: Info, input: CreateUserTokenInput) -> CreateUserTokenPayload:
        bridge = info.context.bridge
        with info.context.change() as (session, principal):
            principal.require_master()
            end_user = find_user(session, principal, input.user_id)
            token, expires_at = tenancy.issue_user_token(
                bridge, session, principal.environment_id, end_user
            )
        return CreateUserTokenPayload(access_token=token, expires_at=expires_at)

    @mutation("Import an authentication: credentials obtained elsewhere")
    def create_user_authentication(
        self, info: Info, input: CreateUserAuthenticationInput
    ) -> CreateUserAuthenticationPayload:
        context, bridge = info.context, info.context.bridge
        data, tokens = json_object(input.data, "data"), json_object(input.tokens, "tokens")
        if input.expires_at is not None and input.expires_at.utcoffset() is None:
            raise errors.InvalidInput("expiresAt must have a time zone", field="expiresAt")
        connector = one_of(input.connector, input.service_id, "connector", "serviceId")
        if connector is None:
            raise errors.InvalidInput("connector (or serviceId) is required", field="connector")
        variant = one_of(
            input.variant, input.service_environment_id, "variant", "serviceEnvironmentId"
        )
        context.end_transaction()  # no transaction spans the provider call
        with context.change() as (session, principal):
            if input.user_id is not None:
                external_user_id = find_user(session, principal, input.user_id).external_user_id
            elif principal.external_user_id is not None:  # a user token: its own end user
                external_user_id = principal.external_user_id
            else:
                raise errors.InvalidInput("userId is required with a master token", field="userId")
            request = imports.ImportRequest(
                connector=connector,
                external_user_id=external_user_id,
                version=input.version,
                variant=variant,
                name=input.name,
                data=data,
                tokens=tokens,
                scopes=tuple(input.scopes) if input.scopes is not None else None,
                expires_at=input.expires_at,
            )
            prepared = imports.prepare(bridge, session, principal, request)
        context.end_transaction()
        result = anyio.from_thread.run(imports.connect, bridge, prepared, request)
        with context.change() as (session, principal):
            auth = imports.commit(bridge, session, principal, prepared, request, result)
        return CreateUserAuthenticationPayload(
            authentication_id=strawberry.ID(auth.id), authentication=AuthenticationNode.of(auth)
        )

    @mutation("Delete an authentication")
    def remove_authentication(
        self, info: Info, input: RemoveAuthenticationInput
    ) -> RemoveAuthenticationPayload:
        with info.context.change() as (session, principal):
            authentications.delete(info.context.bridge, session, principal, input.authentication_id)
        return RemoveAuthenticationPayload(authentication_id=input.authentication_id)
