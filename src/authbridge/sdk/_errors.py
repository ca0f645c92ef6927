"""The SDK's errors: authbridge's problem documents (RFC 9457) as typed exceptions.

    AuthbridgeAPIError         any error answer of the authbridge API
    ├── InvalidRequest         400, 422: the request names a wrong value (see ``field``)
    ├── Unauthorized           401: the API token is missing, wrong, expired or revoked
    ├── Forbidden              403: the token may not do this
    ├── NotFound               404: no such object, or not visible to this token
    ├── Conflict               409: the object changed meanwhile, or cannot do this now
    └── Unavailable            429, 503: try again later (``retry_after`` seconds)

They are the client's own tree, not :mod:`authbridge.errors` (the server's): they describe an
answer received, and server code catching ``errors.NotFound`` must not catch a remote 404.
Messages hold the problem's ``detail``, which the server guarantees never holds a secret; the
API token is never part of an error.
"""

from __future__ import annotations

from http import HTTPStatus

import httpx

__all__ = [
    "AuthbridgeAPIError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Unauthorized",
    "Unavailable",
    "error_from_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"


class AuthbridgeAPIError(Exception):
    """An error answer of the authbridge API.

    ``status`` is the HTTP status; ``title``, ``detail`` and ``code`` come from the problem
    document (or the status's reason phrase when the answer was not one); ``field`` names the
    request value at fault, when known.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.status} {self.title}: {self.detail}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r})"


class InvalidRequest(AuthbridgeAPIError):
    """400 or 422: a value sent is wrong; ``field`` names it when the server said which."""


class Unauthorized(AuthbridgeAPIError):
    """401: the API token is missing, malformed, expired or revoked."""


class Forbidden(AuthbridgeAPIError):
    """403: the token is valid but may not do this (a user token asking for master work)."""


class NotFound(AuthbridgeAPIError):
    """404: no such object, or it belongs to another end user than the token's."""


class Conflict(AuthbridgeAPIError):
    """409: the object changed meanwhile, or its state forbids this (an invalid auth)."""


class Unavailable(AuthbridgeAPIError):
    """429 or 503: the provider or server cannot answer now; retry after ``retry_after`` s."""


_BY_STATUS: dict[int, type[AuthbridgeAPIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: Unavailable,
    503: Unavailable,
}


def error_from_response(response: httpx.Response) -> AuthbridgeAPIError:
    """The exception for an error answer (``response`` must have been read)."""
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    problem: dict[str, object] = {}
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in (PROBLEM_MEDIA_TYPE, "application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            problem = body
    cls = _BY_STATUS.get(status, AuthbridgeAPIError)
    return cls(
        status,
        _text(problem.get("title")) or phrase,
        # Without a problem document, the reason phrase: a foreign body (a proxy's HTML page)
        # is not ours to vouch for.
        _text(problem.get("detail")) or phrase,
        code=_text(problem.get("code")),
        field=_text(problem.get("field")),
        retry_after=_retry_after(problem.get("retry_after"), response.headers.get("retry-after")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_after(member: object, header: str | None) -> float | None:
    if isinstance(member, int | float) and not isinstance(member, bool):
        return float(member)
    if header is not None:
        try:
            return float(header)
        except ValueError:
            return None
    return None
