"""The GraphQL API at ``/graphql`` (Strawberry): the reference's embedded queries and mutations.

Authenticate with ``Authorization: Bearer <master token | user token>``, as for REST. Errors
are answered with HTTP 200 and GraphQL ``errors``, each with ``extensions.code`` (see
:mod:`.errors`); a request without a usable token gets ``UNAUTHENTICATED`` from every field
that needs the caller. Introspection is answered only with ``AUTHBRIDGE_GRAPHQL_INTROSPECTION=1``
or ``AUTHBRIDGE_GRAPHIQL=1`` (then without a token). Operations are sent with POST; the
GraphiQL page is served at ``GET /graphql`` only when ``AUTHBRIDGE_GRAPHIQL=1``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials
from strawberry.fastapi import GraphQLRouter

from authbridge.api.deps import BridgeDep, bearer
from authbridge.api.graphql.context import GraphQLContext
from authbridge.api.graphql.schema import build_schema, schema
from authbridge.errors import InvalidInput

__all__ = ["GraphQLContext", "create_router", "schema"]


async def _context(
    bridge: BridgeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> GraphQLContext:
    return GraphQLContext(bridge, credentials.credentials if credentials is not None else None)


class Router(GraphQLRouter[GraphQLContext, None]):
    """Strawberry's router, refusing a body nested too deep for the JSON parser as invalid
    input (a problem document) instead of letting its ``RecursionError`` through (a 500)."""

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError:
            raise InvalidInput(
                "the request body nests JSON arrays or objects too deeply to be read",
                field="body",
            ) from None


def create_router(*, graphiql: bool = False, introspection: bool = False) -> Router:
    """The ``/graphql`` endpoint, with the GraphiQL page when ``graphiql`` and introspection
    when ``introspection`` (:class:`~authbridge.runtime.Settings`); GraphiQL needs it."""
    return Router(
        schema if introspection or graphiql else build_schema(introspection=False),
        path="/graphql",
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=False,
        context_getter=_context,
        include_in_schema=False,  # GraphQL describes itself (introspection), not OpenAPI
    )
