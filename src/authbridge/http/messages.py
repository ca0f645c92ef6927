"""A provider's error answer turned into authbridge's error tree, with its own message.

Providers explain failures in many shapes (``{"message": …}``, OAuth's ``error_description``,
``{"errors": [{"message": …}]}``, FastAPI's ``detail``, SOAP-ish ``fault.faultstring`` …).
:func:`provider_message` finds that explanation, redacts secrets from it and keeps it short and
printable; :func:`error_for_status` picks the error class from the status code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

from authbridge.errors import CredentialsRejected, ProviderError, ProviderUnavailable
from authbridge.redaction import redact

MAX_MESSAGE_LENGTH = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_HTML = re.compile(r"<\s*[A-Za-z!/?]")


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def _from_errors(errors: object) -> str | None:
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, Mapping):
            return _text(first.get("message")) or _text(first.get("detail"))
        return _text(first)
    return None


def _from_detail(detail: object) -> str | None:
    if isinstance(detail, list):
        messages = [item.get("msg") for item in detail if isinstance(item, Mapping)]
        joined = "; ".join(message for message in messages if isinstance(message, str))
        return _text(joined)
    return _text(detail)


def _from_oauth_problem(body: Mapping[str, object]) -> str | None:
    """OAuth 1.0a's problem reporting: ``oauth_problem`` with optional ``oauth_problem_advice``."""
    problem = _text(body.get("oauth_problem"))
    if problem is None:
        return None
    advice = _text(body.get("oauth_problem_advice"))
    return f"{advice} ({problem})" if advice else problem


def _from_mapping(body: Mapping[str, object]) -> str | None:
    error = body.get("error")
    fault = body.get("fault")
    candidates = (
        _from_oauth_problem(body),
        _text(body.get("error_description")),
        _text(body.get("message")),
        _text(error),
        _text(error.get("message")) if isinstance(error, Mapping) else None,
        _text(error.get("error_description")) if isinstance(error, Mapping) else None,
        _from_errors(body.get("errors")),
        _from_detail(body.get("detail")),
        _text(fault.get("faultstring")) if isinstance(fault, Mapping) else None,
        _text(body.get("title")),
    )
    return next((candidate for candidate in candidates if candidate is not None), None)


def status_text(status_code: int, reason_phrase: str = "") -> str:
    """``401 Unauthorized``: the status with its reason phrase (the standard one if none)."""
    phrase = reason_phrase.strip()
    if not phrase:
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            phrase = "Error"
    return f"{status_code} {phrase}"


def _clean(message: str, secrets: Iterable[str]) -> str:
    cleaned = " ".join(_CONTROL.sub(" ", redact(message, secrets)).split())
    if len(cleaned) > MAX_MESSAGE_LENGTH:
        cleaned = cleaned[: MAX_MESSAGE_LENGTH - 1].rstrip() + "…"
    return cleaned


def provider_message(
    status_code: int, body: object, reason_phrase: str = "", secrets: Iterable[str] = ()
) -> str:
    """The provider's own explanation of a failed response, safe to show.

    Looks for OAuth 1.0a's ``oauth_problem`` (with ``oauth_problem_advice``),
    ``error_description`` (preferred over a bare ``error`` code), ``message``, ``error`` (a
    string, or an object with ``message``), ``errors[0].message`` or ``errors[0]``, ``detail``
    (a string or a list of ``{msg}``), ``fault.faultstring`` and ``title``; then a short
    plain-text body; else the status text. Secrets are redacted, control
    characters removed and the result cut to 300 characters.
    """
    found: str | None = None
    if isinstance(body, Mapping):
        found = _from_mapping(body)
    elif isinstance(body, list):
        found = _from_errors(body)
    elif isinstance(body, str):
        text = body.strip()
        if text and len(text) < MAX_MESSAGE_LENGTH and not _HTML.search(text):
            found = text
    message = _clean(found, secrets) if found is not None else ""
    return message or status_text(status_code, reason_phrase)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_status(
    status_code: int,
    body: object,
    *,
    reason_phrase: str = "",
    retry_after: str | None = None,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The error for a non-2xx answer: 401/403 reject the credentials; 429 and 5xx are
    transient; any other status is a plain provider error. Each keeps ``status_code`` and
    ``body``."""
    message = provider_message(status_code, body, reason_phrase, secrets)
    if status_code in (401, 403):
        return CredentialsRejected(message, status_code=status_code, body=body)
    if status_code == 429 or status_code >= 500:
        return ProviderUnavailable(
            message,
            status_code=status_code,
            retry_after=parse_retry_after(retry_after),
            body=body,
        )
    return ProviderError(message, status_code=status_code, body=body)
