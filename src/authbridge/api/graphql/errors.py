"""GraphQL errors with a machine code, and never a stack trace or an internal message.

Every error in a response carries ``extensions.code``:

* an :class:`~authbridge.errors.AuthBridgeError` keeps its message (always safe to show) and
  its REST code in capitals (``INVALID_INPUT``, ``NOT_FOUND``, ``CONFLICT``, ``FORBIDDEN``,
  ``UNAUTHENTICATED``, ``CONNECTOR_NOT_FOUND``, ``CREDENTIALS_REJECTED`` …), plus ``field``
  for invalid input and ``retryAfter`` when a provider asked us to wait;
* a document or variables that do not fit the schema (syntax, unknown field, wrong type, the
  depth limit) keep graphql-core's message, with ``INVALID_QUERY``;
* anything else is logged with its traceback and answered ``INTERNAL`` with a generic message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from authbridge import errors

log = logging.getLogger("authbridge.api")

INTERNAL_MESSAGE = "An unexpected error occurred; it has been logged."


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, errors.AuthBridgeError | GraphQLError)


def log_error(error: GraphQLError) -> None:
    """Log what the answer hides: unexpected errors, and our own server-side failures."""
    original = error.original_error
    if is_unexpected(error):
        log.error("unexpected error in GraphQL field %s", error.path, exc_info=original)
    elif (
        isinstance(original, errors.AuthBridgeError)
        and original.status >= 500
        and not isinstance(original, errors.ProviderError | errors.DecryptionFailed)
    ):
        log.error("GraphQL field %s failed: %s (%s)", error.path, original.message, original.code)


def coded(error: GraphQLError) -> GraphQLError:
    """The error as the client sees it: a safe message and ``extensions.code``."""
    original = error.original_error
    extensions: dict[str, Any]
    if isinstance(original, errors.AuthBridgeError):
        message = original.message
        extensions = {"code": original.code.upper()}
        if isinstance(original, errors.InvalidInput) and original.field:
            extensions["field"] = original.field
        if isinstance(original, errors.ProviderUnavailable) and original.retry_after is not None:
            extensions["retryAfter"] = original.retry_after
    elif is_unexpected(error):
        message, extensions = INTERNAL_MESSAGE, {"code": "INTERNAL"}
    else:
        message, extensions = error.message, {"code": "INVALID_QUERY"}
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    """Replace every error of a result by its :func:`coded` form."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [coded(error) for error in result.errors]
