"""The object types of the GraphQL schema, built from storage rows with ``of``.

Lists are Relay-style connections (``edges { node cursor } pageInfo { hasNextPage
endCursor }``) over the same keyset pagination as the REST API: a cursor is the opaque
position of one row, so ``after: endCursor`` continues where a page ended. Ids are the rows'
own UUIDs, as the reference shows them (not Relay global ids).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import strawberry

from authbridge import errors
from authbridge.api.graphql.context import GraphQLContext
from authbridge.solutions import service as solutions
from authbridge.storage.models import Authentication, EndUser, Solution, SolutionInstance
from authbridge.storage.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 50

Info = strawberry.Info[GraphQLContext, None]
RowT = TypeVar("RowT", Authentication, EndUser, SolutionInstance)
NodeT = TypeVar("NodeT")
ResolverT = TypeVar("ResolverT", bound=Callable[..., object])

First = Annotated[
    int, strawberry.argument(description=f"How many items (1 to {MAX_PAGE_SIZE}, default 50)")
]
After = Annotated[
    str | None,
    strawberry.argument(description="Continue after this cursor (a previous page's endCursor)"),
]


def field(description: str) -> Callable[[ResolverT], ResolverT]:
    """``@strawberry.field(description=…)``, typed: Strawberry's overload returns ``Any``."""
    decorator: Callable[[ResolverT], ResolverT] = strawberry.field(description=description)
    return decorator


def mutation(description: str) -> Callable[[ResolverT], ResolverT]:
    """``@strawberry.mutation(description=…)``, typed."""
    decorator: Callable[[ResolverT], ResolverT] = strawberry.mutation(description=description)
    return decorator


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise errors.InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}", field="first")
    return first


def page_cursor(after: str | None) -> str | None:
    """``after``, checked here so the error names the GraphQL argument."""
    if after is not None:
        try:
            decode_cursor(after)
        except errors.InvalidInput:
            raise errors.InvalidInput(
                "after is not a cursor of this list; pass a page's endCursor", field="after"
            ) from None
    return after


@strawberry.type(description="Where a page ended, and whether more follows")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    node: NodeT
    cursor: str


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[RowT], node: Callable[[RowT], NodeT]) -> Connection[NodeT]:
        edges = [
            Edge(node=node(row), cursor=encode_cursor(row.created_at, row.id)) for row in page.items
        ]
        end = edges[-1].cursor if edges else None
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.next_cursor is not None, end_cursor=end),
        )


@strawberry.type(name="User", description="An end user of the host")
class UserNode:
    id: strawberry.ID
    external_user_id: str = strawberry.field(description="The host's own id of the end user")
    name: str | None
    created: datetime

    @classmethod
    def of(cls, end_user: EndUser) -> UserNode:
        return cls(
            id=strawberry.ID(end_user.id),
            external_user_id=end_user.external_user_id,
            name=end_user.name,
            created=end_user.created_at,
        )


@strawberry.type(description="The connector an authentication was made with")
class Service:
    key: str = strawberry.field(description="The connector's key (the reference's serviceId)")
    version: str
    variant: str | None = strawberry.field(
        description="The connector variant (the reference's service environment); null: default"
    )


@strawberry.type(name="Authentication", description="A connected account")
class AuthenticationNode:
    id: strawberry.ID
    name: str
    service: Service
    created: datetime

    @classmethod
    def of(cls, auth: Authentication) -> AuthenticationNode:
        service = Service(
            key=auth.connector_key,
            version=auth.connector_version,
            variant=auth.connector_variant,
        )
        return cls(
            id=strawberry.ID(auth.id), name=auth.name, service=service, created=auth.created_at
        )


@strawberry.type(name="Solution")
class SolutionNode:
    id: strawberry.ID
    title: str
    description: str

    @classmethod
    def of(cls, solution: Solution) -> SolutionNode:
        return cls(
            id=strawberry.ID(solution.id), title=solution.title, description=solution.description
        )


@strawberry.type(description="An auth slot of an instance and the authentication filling it")
class AuthValue:
    external_id: str
    auth_id: strawberry.ID
    extra_scopes: list[str] = strawberry.field(
        description="The scopes the authentication held beyond the slot's when it filled it"
    )


@strawberry.type(description="A config slot of an instance and its value")
class ConfigValue:
    external_id: str
    value: str = strawberry.field(
        description='The value encoded as JSON text: the string leads is "\\"leads\\"", 3 is "3"'
    )


@strawberry.type(name="Workflow", description="One of the host's workflows, as an instance has it")
class WorkflowNode:
    id: strawberry.ID = strawberry.field(description="This instance's own id of the workflow")
    key: str
    title: str
    trigger_url: str = strawberry.field(description="Where this instance's workflow is triggered")


@strawberry.type(name="WorkflowEdge")
class WorkflowEdge:
    node: WorkflowNode


@strawberry.type(name="WorkflowConnection", description="An instance's workflows, all of them")
class WorkflowConnection:
    edges: list[WorkflowEdge]


@strawberry.type(name="SolutionInstance", description="One end user's copy of a solution")
class SolutionInstanceNode:
    id: strawberry.ID
    name: str
    enabled: bool
    owner: strawberry.ID = strawberry.field(description="The id of the end user it belongs to")
    created: datetime
    auth_values: list[AuthValue]
    instance: strawberry.Private[SolutionInstance]

    @field("The values set, and the defaults of the slots not set")
    def config_values(self, info: Info) -> list[ConfigValue]:
        config = solutions.effective_config(self._solution(info), self.instance)
        return [
            ConfigValue(external_id=external_id, value=json.dumps(value, ensure_ascii=False))
            for external_id, value in config.items()
        ]

    @strawberry.field
    def solution(self, info: Info) -> SolutionNode:
        return SolutionNode.of(self._solution(info))

    @field("The solution's workflows, with this instance's ids and trigger URLs")
    def workflows(self, info: Info) -> WorkflowConnection:
        found = solutions.workflows_of(self._solution(info), self.instance)
        return WorkflowConnection(
            edges=[
                WorkflowEdge(
                    node=WorkflowNode(
                        id=strawberry.ID(w.id), key=w.key, title=w.title, trigger_url=w.trigger_url
                    )
                )
                for w in found
            ]
        )

    def _solution(self, info: Info) -> Solution:
        found = info.context.solution(self.instance.solution_id)
        if found is None:  # deleted since the instance was read (its instances went with it)
            raise errors.NotFound(f"solution '{self.instance.solution_id}' not found")
        return found

    @classmethod
    def of(cls, instance: SolutionInstance) -> SolutionInstanceNode:
        return cls(
            id=strawberry.ID(instance.id),
            name=instance.name,
            enabled=instance.enabled,
            owner=strawberry.ID(instance.end_user_id),
            created=instance.created_at,
            auth_values=[
                AuthValue(
                    external_id=value.external_id,
                    auth_id=strawberry.ID(value.auth_id),
                    extra_scopes=list(value.extra_scopes or ()),
                )
                for value in instance.auth_values
            ],
            instance=instance,
        )
