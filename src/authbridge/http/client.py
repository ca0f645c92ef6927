"""The one outbound HTTP client: egress policy, request-spec execution and error mapping.

Every request authbridge sends to a provider goes through :class:`OutboundClient`. Its network
backend resolves each host itself, checks every address with the :class:`EgressPolicy`, and
connects only to an address it checked, so there is no gap between the check and the connection
for DNS rebinding to use; every redirect hop connects through the same backend. TLS still
verifies the host name of the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from authbridge import __version__
from authbridge.connectors.request_models import BasicAuth, BearerAuth, RequestSpec
from authbridge.errors import ProviderError, ProviderUnavailable, TemplateError
from authbridge.http.messages import error_for_status
from authbridge.http.policy import (
    EgressPolicy,
    HostCheckingTransport,
    ShardedTransport,
    outbound_ssl_context,
)
from authbridge.redaction import redact
from authbridge.spec.templates import (
    body_media_type,
    render_body,
    render_header,
    render_structure,
    render_text,
    render_url,
)

DEFAULT_POLICY = EgressPolicy()
DEFAULT_USER_AGENT = f"authbridge/{__version__}"
MAX_REDIRECTS = 5
#: Connections kept open for reuse as many as may be open at all: httpcore 1.0 closes an idle
#: connection whenever the pool holds more connections *in all* than the keep-alive limit, so
#: with a lower limit a busy proxy opened a new connection for most requests.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
_FORM_TEXT = re.compile(r"[\w.\-\[\]%+]+=[^&\s]*(?:&[\w.\-\[\]%+]+=[^&\s]*)*")
_TARGET = re.compile(r"(?P<scheme>[^:/?#]+://)?(?:[^/?#@]*@)?(?P<host>[^/?#]*)(?P<path>[^?#]*)")


@dataclass(frozen=True)
class ProviderResponse:
    """A successful answer: status, headers and the body parsed by its content type."""

    status_code: int
    headers: httpx.Headers
    body: Any


def parse_body(response: httpx.Response) -> Any:
    """JSON for JSON (or text that parses as a JSON object or array), a dict for a form-encoded
    body (also when sent as plain text, as some OAuth token endpoints do), else the text; None
    when empty."""
    if not response.content:
        return None
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    text = response.text
    stripped = text.strip()
    if (
        media_type == "application/json"
        or media_type.endswith("+json")
        or stripped[:1] in ("{", "[")
    ):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if media_type == "application/x-www-form-urlencoded" or (
        media_type in ("text/plain", "text/html", "") and _FORM_TEXT.fullmatch(stripped)
    ):
        return dict(parse_qsl(stripped, keep_blank_values=True))
    return text


def render_fields(
    fields: Mapping[str, str | int | float | bool], values: Mapping[str, object]
) -> dict[str, str]:
    """Query or form fields with their templates filled; numbers and booleans as text."""
    rendered: dict[str, str] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            text = render_text(value, values)
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        rendered[render_text(key, values)] = text
    return rendered


def with_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query (httpx's ``params`` would replace it)."""
    if not params:
        return url
    base, hash_mark, fragment = url.partition("#")
    separator = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(params)}{hash_mark}{fragment}"


def describe(method: str, url_template: str) -> str:
    """``GET https://{{domain}}.example.com/api/me``: a request named without query or userinfo."""
    target = _TARGET.match(url_template.strip())
    assert target is not None  # every group is optional
    return f"{method} {target.group('scheme') or ''}{target.group('host')}{target.group('path')}"


@contextmanager
def translate_errors(description: str) -> Iterator[None]:
    """Turn httpx's transport failures into provider errors naming ``description`` only."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"{description}: the provider did not answer in time") from exc
    except httpx.TooManyRedirects as exc:
        raise ProviderError(f"{description}: more than {MAX_REDIRECTS} redirects") from exc
    except httpx.UnsupportedProtocol as exc:
        raise ProviderError(f"{description}: redirected to an unsupported URL scheme") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{description}: could not reach the provider") from exc
    except (httpx.DecodingError, httpx.InvalidURL) as exc:
        raise ProviderError(f"{description}: the provider's answer could not be read") from exc


async def _refuse_downgrade(response: httpx.Response) -> None:
    location = response.headers.get("location")
    if (
        response.is_redirect
        and location
        and response.request.url.scheme == "https"
        and response.request.url.join(location).scheme != "https"
    ):
        raise ProviderError("the provider redirected from https to an insecure URL")


def _no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing. The client is shared by every end user, provider and
    proxied request: a cookie one answer sets must never go out with another request (through
    the proxy, one end user's upstream session would reach the next end user's requests)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class OutboundClient:
    """The one outbound HTTP client (an ``httpx.AsyncClient`` behind an egress policy).

    Follows at most five redirects, each through the same egress check. With an injected
    ``transport`` (tests), each request's host is still resolved and checked before it is sent.
    ``ca_bundle`` (``AUTHBRIDGE_CA_BUNDLE``) is a PEM file of CAs trusted on top of certifi's.
    """

    def __init__(
        self,
        policy: EgressPolicy = DEFAULT_POLICY,
        *,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        ca_bundle: Path | None = None,
    ) -> None:
        self.policy = policy
        guarded: httpx.AsyncBaseTransport = (
            ShardedTransport(
                policy, limits=POOL_LIMITS, ssl_context=outbound_ssl_context(ca_bundle)
            )
            if transport is None
            else HostCheckingTransport(transport, policy)
        )
        self._transport = guarded
        self._client = httpx.AsyncClient(
            transport=guarded,
            timeout=timeout,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,
            headers={"User-Agent": user_agent},
            event_hooks={"response": [_refuse_downgrade]},
            cookies=_no_cookies(),
        )

    async def request(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """Send a request (httpx keyword arguments); any status is returned, not raised.

        Transport failures raise :class:`ProviderUnavailable`, naming only scheme and host.
        """
        parsed = httpx.URL(url)
        with translate_errors(f"{method.upper()} {parsed.scheme}://{parsed.host}"):
            return await self._client.request(method, parsed, **kwargs)

    async def open_stream(
        self,
        method: str,
        url: str | httpx.URL,
        headers: Iterable[tuple[str, str]],
        content: AsyncIterator[bytes] | None,
        *,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """Send a request whose body streams from ``content``; return the response with its
        body unread (read it with ``aiter_raw``, then ``aclose`` it). Redirects are returned,
        not followed: the proxy passes them to its caller.

        httpx's transport exceptions are raised as they are, for the caller to map.
        """
        request = self._client.build_request(method, url, headers=list(headers), content=content)
        if auth is not None:
            return await self._client.send(request, auth=auth, stream=True, follow_redirects=False)
        # Straight to the transport: with no auth flow, redirect or cookie to handle (the jar
        # keeps none), the client's own layers only cost time on every proxied request.
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await _refuse_downgrade(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def get(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def execute(
        self,
        spec: RequestSpec,
        values: Mapping[str, object],
        *,
        default_method: str = "GET",
        secrets: Iterable[str] = (),
        auth: httpx.Auth | None = None,
    ) -> ProviderResponse:
        """Render ``spec`` with ``values``, send it and return the parsed answer.

        ``auth`` signs the request (OAuth 1.0a); a spec that declares its own ``auth`` cannot
        be signed as well. A raw ``data`` string is filled in the syntax of the body's
        ``Content-Type`` (:func:`render_body`); without one it is a form (JSON when it starts
        with ``{`` or ``[``) and is sent with that ``Content-Type``.

        Raises a :class:`TemplateError` before sending when a value does not fit its slot, and
        for a non-2xx answer :class:`CredentialsRejected` (401, 403),
        :class:`ProviderUnavailable` (429, 5xx, timeouts, connection failures) or
        :class:`ProviderError`, each with the provider's own message with ``secrets`` redacted.
        """
        hidden = [secret for secret in secrets if secret]
        method = (spec.method or default_method).upper()
        url = render_url(spec.url, values)
        headers: dict[str, str] = {}
        for name, template in spec.headers.items():
            if "{{" in name:
                raise TemplateError(f"the header name {name!r} may not hold a placeholder")
            headers[name] = render_header(template, values)
        if auth is not None and spec.auth is not None:
            raise TemplateError("a signed request may not also declare 'auth'")
        if isinstance(spec.auth, BasicAuth):
            password = render_text(spec.auth.password, values)
            auth = httpx.BasicAuth(render_text(spec.auth.username, values), password)
            hidden.append(password)
        elif isinstance(spec.auth, BearerAuth):
            token = render_header(spec.auth.bearer, values)
            headers["Authorization"] = f"Bearer {token}"
            hidden.append(token)
        url = with_params(url, render_fields(spec.params, values))
        body: dict[str, Any] = {}
        if spec.json_body is not None:
            body["json"] = render_structure(spec.json_body, values)
        elif isinstance(spec.data, str):
            declared = next(
                (value for name, value in headers.items() if name.lower() == "content-type"), None
            )
            media_type = body_media_type(declared, spec.data)
            body["content"] = render_body(spec.data, values, media_type).encode()
            if declared is None:
                headers["Content-Type"] = media_type
        elif spec.data is not None:
            body["data"] = render_fields(spec.data, values)
        description = redact(describe(method, spec.url), hidden)
        with translate_errors(description):
            response = await self._client.request(
                method,
                url,
                headers=headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=spec.timeout if spec.timeout is not None else httpx.USE_CLIENT_DEFAULT,
                **body,
            )
            parsed = parse_body(response)
        if not response.is_success:
            raise error_for_status(
                response.status_code,
                parsed,
                reason_phrase=response.reason_phrase,
                retry_after=response.headers.get("retry-after"),
                secrets=hidden,
            )
        return ProviderResponse(response.status_code, response.headers, parsed)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
