"""What every slice's request and response bodies share (snake_case JSON): the base of
request models, which forbid unknown keys (a typo is an error rather than silently ignored),
pages of a list, and ``/healthz``. Each slice's own bodies are in its ``schemas`` module; they
are built from storage rows with ``of``, and none holds a secret except the credentials, the
rendered request auth and the one-time values (master token, user token, connect URL).
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from authbridge.jsonvalues import json_problem

ItemT = TypeVar("ItemT")

MAX_TEXT = 255
ExternalId = Field(min_length=1, max_length=MAX_TEXT, description="The host's id for its user")


def _is_bool(annotation: Any) -> bool:
    """Whether a field is declared ``bool`` or ``bool | None``."""
    return annotation is bool or (
        get_origin(annotation) in (Union, UnionType)
        and bool in get_args(annotation)
        and set(get_args(annotation)) <= {bool, type(None)}
    )


class StrictBools(BaseModel):
    """Booleans only as booleans: refuse ``0``, ``1``, ``"yes"`` and the like where a boolean is
    due (pydantic would take them, and a typo must not switch something on or off)."""

    @field_validator("*", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or value is None or info.field_name is None:
            return value
        if _is_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError("must be true or false")
        return value


class Request(StrictBools):
    """The base of every request body: no unknown field, no NUL, booleans only as booleans."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL text cannot hold NUL, and no name, id, URL or key needs one."""
        problem = json_problem(value)
        if problem is not None:
            raise ValueError(problem.removeprefix("the value: "))
        return value


class PageOut(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class Health(BaseModel):
    status: str
