"""The schema, and how an operation runs: synchronously, in a worker thread, in one transaction.

Strawberry's HTTP view awaits :meth:`ThreadedSchema.execute`; it hands the whole operation to
one worker thread, where the resolvers call the sync services and the request's transaction
(:class:`~.context.GraphQLContext`) is opened, used and committed by that same thread (the
SQLite writer lock is a thread's lock). A mutation that must call a provider awaits it on the
event loop through ``anyio.from_thread``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.concurrency import run_in_threadpool
from strawberry.extensions import DisableIntrospection, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from authbridge.api.graphql.context import GraphQLContext
from authbridge.api.graphql.errors import ErrorCodes, coded, log_error
from authbridge.api.graphql.guards import PlainText
from authbridge.api.graphql.instances import InstanceMutations
from authbridge.api.graphql.mutations import AccountMutations
from authbridge.api.graphql.queries import Query

MAX_DEPTH = 10
MAX_ALIASES = 15


class ThreadedSchema(strawberry.Schema):
    """A schema whose operations run in a worker thread, inside the request's transaction."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        assert isinstance(context_value, GraphQLContext)
        context = context_value

        def run() -> ExecutionResult:
            try:
                result = self.execute_sync(
                    query,
                    variable_values=variable_values,
                    context_value=context,
                    root_value=root_value,
                    operation_name=operation_name,
                    allowed_operation_types=allowed_operation_types,
                    operation_extensions=operation_extensions,
                )
            except BaseException as error:
                context.end_transaction(error)
                raise
            try:
                context.end_transaction()
            except Exception as error:  # the commit failed: nothing of the request was kept
                failed = GraphQLError(str(error), original_error=error)
                log_error(failed)
                return ExecutionResult(data=None, errors=[coded(failed)])
            return result

        return await run_in_threadpool(run)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what the answer hides (Strawberry would log every error, expected ones
        included, with a traceback)."""
        for error in errors:
            log_error(error)


@strawberry.type
class Mutation(AccountMutations, InstanceMutations):
    """Every mutation: end users, tokens and authentications; instances and wizard codes."""


def build_schema(*, introspection: bool) -> ThreadedSchema:
    """The schema; introspection (``__schema``, ``__type``) answered only when asked for
    (``AUTHBRIDGE_GRAPHQL_INTROSPECTION=1`` or ``AUTHBRIDGE_GRAPHIQL=1``); ``__typename``
    always is."""
    extensions: list[Any] = [
        ErrorCodes,
        PlainText,
        partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return ThreadedSchema(query=Query, mutation=Mutation, extensions=extensions)


#: The whole schema, introspection included (for tools and tests that print it).
schema = build_schema(introspection=True)
