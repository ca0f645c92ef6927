"""Refuse values the database cannot hold before a resolver sees it.

GraphQL strings may hold NUL (``"\\u0000"``), which PostgreSQL text cannot store or compare
(an internal error else); the REST API refuses it in parameters the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

from authbridge import errors
from authbridge.jsonvalues import json_problem


def _plain(value: Any) -> Any:
    """An input object (a dataclass) as a mapping, so the JSON check can walk it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class PlainText(SchemaExtension):
    """Refuse arguments holding NUL characters or nesting absurdly deep, naming the
    argument."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        for name, value in kwargs.items():
            problem = json_problem(_plain(value), name)
            if problem is not None:
                raise errors.InvalidInput(problem, field=name)
        return _next(root, info, *args, **kwargs)
