"""The request models of connector definitions, as frozen pydantic models.

* :class:`RequestSpec`: an HTTP request described as data (method, url, headers, params, json,
  data, auth), whose strings may hold ``{{name}}`` templates; a definition property
  (``validate``, ``request_profile_info``, ``auth_url`` …) may be one.
* :class:`RequestRules`: how a connector's credentials go on every API request (a definition's
  ``request``).
* :class:`BasicAuth` and :class:`BearerAuth`: the ``auth`` of either.

:class:`Model` is the base of every connector model: these, the auth definitions
(:mod:`authbridge.connectors.models`) and the loader's manifests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from authbridge.errors import TemplateError
from authbridge.spec.templates import PLACEHOLDER, render_url

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


class Model(BaseModel):
    """Base of every connector model (requests, definitions, manifests): frozen, strict about
    keys, camelCase accepted."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class BasicAuth(Model):
    """HTTP Basic credentials of a request spec (``user`` is accepted for ``username``)."""

    username: str = Field(validation_alias=AliasChoices("username", "user"))
    password: str = Field(default="", validation_alias=AliasChoices("password", "pass"))


class BearerAuth(Model):
    """A bearer token of a request spec: ``Authorization: Bearer <bearer>``."""

    bearer: str


class RequestSpec(Model):
    """An HTTP request described as data; every string may hold ``{{name}}`` templates.

    ``uri`` is accepted for ``url``, ``qs`` for ``params`` and ``body`` for ``json``. A boolean
    ``json`` (the ``request`` library's "parse the response as JSON" switch) is accepted and
    ignored: responses are parsed by their content type.
    """

    method: HttpMethod | None = None
    url: str = Field(validation_alias=AliasChoices("url", "uri"))
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, validation_alias=AliasChoices("params", "qs")
    )
    json_body: Any = Field(default=None, validation_alias=AliasChoices("json", "body", "json_body"))
    data: dict[str, str | int | float | bool] | str | None = None
    auth: BasicAuth | BearerAuth | None = None
    timeout: float | None = Field(default=None, gt=0, le=300)

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("json_body", mode="after")
    @classmethod
    def _drop_json_switch(cls, value: Any) -> Any:
        return None if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        if self.json_body is not None and self.data is not None:
            raise ValueError("a request spec may have 'json' or 'data', not both")
        return self


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST_SUFFIX = re.compile(r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


class _AnyValue(Mapping[str, object]):
    """Template values that answer every name, so a template's shape is checked at load time."""

    def __getitem__(self, name: str) -> object:
        return "x"

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def origin_placeholder(template: str) -> str | None:
    """The name of the placeholder a base URL template starts with (``{{instance_url}}/v1``)."""
    match = PLACEHOLDER.match(template.strip())
    return match.group(1) if match is not None else None


class RequestRules(Model):
    """How a connector's credentials go on every API request (issue 7).

    Every string may hold ``{{name}}`` templates filled from the stored credentials (never the
    refresh token), the connector settings and the connector variant's values. ``base_url`` is
    rendered like any URL template (a host placeholder takes one DNS label). A ``base_url``
    that *starts* with a placeholder takes its whole origin from that value (Salesforce's
    ``instance_url``) and is allowed only with ``allowed_hosts``: suffixes such as
    ``.my.salesforce.com`` the value's https host must end with.
    """

    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("params", "qs")
    )
    auth: BasicAuth | BearerAuth | None = None
    allowed_hosts: tuple[str, ...] = ()

    @field_validator("headers", mode="after")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        return value

    @field_validator("allowed_hosts", mode="after")
    @classmethod
    def _host_suffixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for suffix in value:
            if not _HOST_SUFFIX.fullmatch(suffix) or suffix.count(".") < 2:
                raise ValueError(
                    f"allowed host {suffix!r} must be a lowercase domain suffix starting with a"
                    " dot and naming at least a registrable domain (e.g. '.my.salesforce.com')"
                )
        return value

    @model_validator(mode="after")
    def _base_url_shape(self) -> RequestRules:
        if self.base_url is None:
            if self.allowed_hosts:
                raise ValueError("'allowed_hosts' needs a 'base_url' starting with a placeholder")
            return self
        name = origin_placeholder(self.base_url)
        if name is None:
            if self.allowed_hosts:
                raise ValueError(
                    "'allowed_hosts' is only for a 'base_url' that starts with a placeholder"
                )
            template = self.base_url
        else:
            if not self.allowed_hosts:
                raise ValueError(
                    f"a 'base_url' taking its origin from '{name}' needs 'allowed_hosts'"
                )
            rest = PLACEHOLDER.sub("", self.base_url.strip(), count=1)
            if rest and not rest.startswith("/"):
                raise ValueError(f"in 'base_url', '{{{{{name}}}}}' must be followed by '/'")
            template = f"https://origin.invalid{rest}"
        try:
            render_url(template, _AnyValue())
        except TemplateError as exc:
            raise ValueError(f"'base_url' {exc.message}") from exc
        return self
