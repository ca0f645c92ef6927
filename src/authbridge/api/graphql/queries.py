"""``viewer``: what the caller may see, as the reference's mapping query reads it.

With a user token the viewer is that end user: its solution instances and authentications.
With a master token the viewer is the environment: every end user's, or one end user's when
a list is given ``externalUserId``; ``users`` lists the end users.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.orm import Session

from authbridge.api.graphql.types import (
    DEFAULT_PAGE_SIZE,
    After,
    AuthenticationNode,
    Connection,
    First,
    Info,
    SolutionInstanceNode,
    UserNode,
    field,
    page_cursor,
    page_size,
)
from authbridge.authentications import service as authentications
from authbridge.services.principals import Principal
from authbridge.solutions import service as solutions
from authbridge.tenancy import service as tenancy

ExternalUserId = Annotated[
    str | None,
    strawberry.argument(description="Only this end user's (the host's id of the end user)"),
]


def owner_filter(
    session: Session, principal: Principal, external_user_id: str | None
) -> str | None:
    """The end user a list is limited to: the user token's own, or the one a caller names."""
    if external_user_id is None:
        return principal.end_user_id
    end_user = tenancy.end_user(session, principal, external_user_id)
    return end_user.id


@strawberry.type(description="The caller: one end user (user token) or every end user (master)")
class Viewer:
    @field("Solution instances, oldest first")
    def solution_instances(
        self,
        info: Info,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
        external_user_id: ExternalUserId = None,
    ) -> Connection[SolutionInstanceNode]:
        session, principal = info.context.use()
        page = solutions.list_instances(
            info.context.bridge,
            session,
            principal,
            end_user_id=owner_filter(session, principal, external_user_id),
            limit=page_size(first),
            cursor=page_cursor(after),
        )
        return Connection.of(page, SolutionInstanceNode.of)

    @field("Authentications (connected accounts), oldest first")
    def authentications(
        self,
        info: Info,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
        external_user_id: ExternalUserId = None,
    ) -> Connection[AuthenticationNode]:
        session, principal = info.context.use()
        owner_filter(session, principal, external_user_id)
        page = authentications.list_page(
            info.context.bridge,
            session,
            principal,
            external_user_id=external_user_id,
            limit=page_size(first),
            cursor=page_cursor(after),
        )
        return Connection.of(page, AuthenticationNode.of)

    @field("End users, oldest first (master token only)")
    def users(
        self, info: Info, first: First = DEFAULT_PAGE_SIZE, after: After = None
    ) -> Connection[UserNode]:
        session, principal = info.context.use()
        principal.require_master()
        page = tenancy.end_users_page(
            session, principal.environment_id, limit=page_size(first), cursor=page_cursor(after)
        )
        return Connection.of(page, UserNode.of)


@strawberry.type
class Query:
    @field("What the bearer token may see")
    def viewer(self, info: Info) -> Viewer:
        info.context.use()  # authenticate now: without a token, viewer is an error
        return Viewer()
