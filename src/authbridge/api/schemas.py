"""What every slice's request and response bodies share (snake_case JSON): the base of
request models, which forbid unknown keys (a typo is an error rather than silently ignored),
pages of a list, and ``/healthz``. Each slice's own bodies are in its ``schemas`` module; they
are built from storage rows with ``of``, and none holds a secret except the credentials, the
rendered request auth and the one-time values (master token, user token, connect URL).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from authbridge.jsonvalues import json_problem

ItemT = TypeVar("ItemT")

MAX_TEXT = 255
ExternalId = Field(min_length=1, max_length=MAX_TEXT, description="The host's id for its user")


class Request(BaseModel):
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
