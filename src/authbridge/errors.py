"""The one error tree of authbridge.

Every error raised on purpose by authbridge derives from :class:`AuthBridgeError`. Each carries
a ``message`` that is safe to show to the person who caused it (it never contains a secret
value), a stable machine-readable ``code`` and the HTTP ``status`` the API answers with. Foreign
exceptions (httpx, pydantic, PyJWT, YAML) are translated into this tree at the boundary where
they occur.

    AuthBridgeError
    ├── DefinitionError            a connector definition is malformed (file, key path, reason)
    ├── ConnectorNotFound          no connector with that key (and version)
    ├── TemplateError              a ``{{name}}`` template cannot be rendered safely
    │   ├── MissingTemplateValue   a name used by a template has no value
    │   └── UnsafeTemplateValue    a value would change a request's shape (host, scheme, header)
    ├── InvalidInput               end-user or host input does not satisfy the definition
    │   ├── FormErrors             a form's problems, one message per field
    │   └── RequestTooLarge        a body, a form or a form field beyond its limit (413)
    │       └── HeadersTooLarge    a request line and headers beyond their limit (431)
    ├── NotFound                   no such object (or not visible to the caller)
    ├── Conflict                   the object changed meanwhile, or the request clashes with it
    │   ├── StaleAuthentication    an authentication changed or vanished since it was read
    │   └── ExpiredLink            a connect link (or its sign-in) expired or was used already
    ├── Unauthenticated            no usable API token
    ├── Forbidden                  the token may not do this
    ├── EgressDenied               an outbound request targets a forbidden address
    ├── NotConfigured              the host has not set a connector's OAuth client yet
    ├── ProviderError              a provider answered with an error or could not be reached
    │   ├── ProviderUnavailable    transient: timeout, connection failure, 5xx, 429
    │   │   └── UpstreamTimeout    a proxied request's upstream did not answer in time
    │   ├── UpstreamUnreachable    a proxied request's upstream could not be reached
    │   ├── CredentialsRejected    the provider refused the credentials the end user entered
    │   └── InvalidToken           a stored token is no longer accepted (auth becomes ``invalid``)
    ├── JwtError                   a host-signed JWT failed verification
    ├── RequestTimeout             a request's headers or body did not arrive in time (408)
    ├── TooManyConnections         the server holds as many connections as it may (503)
    ├── DatabaseUnavailable        transient database trouble: pool exhausted, unreachable, locked
    ├── CliError                   a command's failure, reported with its message and exit 1
    └── VaultError                 the vault cannot read its keys or a stored secret
        └── DecryptionFailed       a ciphertext is malformed, altered or bound to another row
            └── KeyNotFound        a ciphertext names a key id the keyring does not hold
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class AuthBridgeError(Exception):
    """Base of every authbridge error; ``message`` is safe to display."""

    code = "authbridge_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One problem found in a definition: where (file and key path) and why."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        location = f"{self.file}: {self.path}" if self.path else self.file
        return f"{location}: {self.reason}"


class DefinitionError(AuthBridgeError):
    """A connector definition (or a whole folder of them) has problems."""

    code = "invalid_definition"
    status = 422

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class ConnectorNotFound(AuthBridgeError):
    code = "connector_not_found"
    status = 404


class TemplateError(AuthBridgeError):
    code = "template_error"
    status = 422


class MissingTemplateValue(TemplateError):
    """A template names a value that neither the fields nor the context provide."""

    code = "missing_template_value"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the template needs a value for '{name}', and none was given")


class UnsafeTemplateValue(TemplateError):
    """A value would alter the request beyond the slot its template gave it."""

    code = "unsafe_template_value"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"the value of '{name}' {reason}")


class InvalidInput(AuthBridgeError):
    """Values entered by an end user or sent by the host do not satisfy the definition."""

    code = "invalid_input"
    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class FormErrors(InvalidInput):
    """A form's problems, one message per field (``problems``: name → message), such as the
    wizard's config form."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("please correct the highlighted fields", field=next(iter(problems)))
        self.problems = dict(problems)


class RequestTooLarge(InvalidInput):
    """A request body, a form or one of its fields is larger than the route accepts; the
    message names the limit."""

    code = "request_too_large"
    status = 413


class HeadersTooLarge(RequestTooLarge):
    """A request's line and headers are larger than the server reads."""

    code = "headers_too_large"
    status = 431


class NotFound(AuthBridgeError):
    """The object does not exist, or the caller may not see it (the answer is the same)."""

    code = "not_found"
    status = 404


class Conflict(AuthBridgeError):
    """The request clashes with the stored state: it changed meanwhile, or already exists."""

    code = "conflict"
    status = 409


class StaleAuthentication(Conflict):
    """The authentication changed or disappeared since it was read; read it again and retry."""


class ExpiredLink(Conflict):
    """A connect link, or the provider sign-in started from it, has expired or was used
    already: the page says so (and how to get a new link) instead of an error."""


class Unauthenticated(AuthBridgeError):
    """No usable API token: missing, malformed, unknown, revoked or expired."""

    code = "unauthenticated"
    status = 401


class Forbidden(AuthBridgeError):
    """The caller is known but may not do this (a user token asking for a master's work)."""

    code = "forbidden"
    status = 403


class EgressDenied(AuthBridgeError):
    """The outbound client refused to contact an address the egress policy forbids."""

    code = "egress_denied"
    status = 502


class NotConfigured(AuthBridgeError):
    """The host has not set the connector's OAuth client (or consumer) yet."""

    code = "connector_not_configured"
    status = 503


class ProviderError(AuthBridgeError):
    """The third-party provider failed or refused a request.

    ``message`` is the provider's own explanation where one could be found (with any secret
    redacted), else a description of the failure. ``status_code`` is the provider's HTTP status
    and ``body`` its parsed response body (JSON value or text), for ``validate_err_callback``.
    """

    code = "provider_error"
    status = 502

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    """A transient failure worth retrying later: timeout, connection error, 5xx or 429."""

    code = "provider_unavailable"
    status = 503

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status_code=status_code, body=body)


class UpstreamTimeout(ProviderUnavailable):
    """A proxied request's upstream (the connector's API) did not answer in time."""

    code = "upstream_timeout"
    status = 504


class UpstreamUnreachable(ProviderError):
    """A proxied request's upstream could not be reached (refused, reset, not resolvable)."""

    code = "upstream_unreachable"
    status = 502


class CredentialsRejected(ProviderError):
    """The provider (or the definition's ``validate``) refused what the end user entered."""

    code = "credentials_rejected"
    status = 422


class InvalidToken(ProviderError):
    """A stored token is no longer accepted; the authentication is marked ``invalid``."""

    code = "invalid_token"
    status = 401


class JwtError(AuthBridgeError):
    """A host-signed JWT was refused; ``message`` says which check failed."""

    code = "invalid_jwt"
    status = 401


class VaultError(AuthBridgeError):
    """The vault cannot load its keyring or read a secret; ``message`` never holds key material."""

    code = "vault_error"
    status = 500


class DecryptionFailed(VaultError):
    """A stored ciphertext is malformed, was altered, or belongs to another table, column or row.

    Its ``message`` names nothing of the storage (no table, column, row or key id): it is what
    an API caller or a page is shown, with status 500, since the request is fine but the stored
    value is not, and only the operator can mend it (by restoring the key or the row; waiting
    does not help, so it is no 503). What failed and where are kept for the operator:
    ``reason``, ``table``, ``column``, ``row_id`` and ``key_id`` (``None`` where unknown), told
    together by :attr:`diagnosis`, which the vault logs once per location
    (:mod:`authbridge.vault.alerts`) and the CLI prints.
    """

    code = "decryption_failed"
    public_message = (
        "a stored secret cannot be decrypted; the server's log names it for its operator"
    )

    def __init__(
        self,
        reason: str,
        *,
        table: str | None = None,
        column: str | None = None,
        row_id: str | None = None,
        key_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.table = table
        self.column = column
        self.row_id = row_id
        self.key_id = key_id
        super().__init__(self.public_message)

    @property
    def diagnosis(self) -> str:
        """What failed and where, for the operator: ``cannot decrypt table.column of row 'id'
        (key 'k'): reason``."""
        where = "the value"
        if self.table is not None and self.column is not None and self.row_id is not None:
            where = f"{self.table}.{self.column} of row '{self.row_id}'"
        key = f" (key '{self.key_id}')" if self.key_id is not None else ""
        return f"cannot decrypt {where}{key}: {self.reason}"


class KeyNotFound(DecryptionFailed):
    """A ciphertext was written with a key id that the keyring does not hold."""

    code = "key_not_found"

    def __init__(
        self,
        key_id: str,
        *,
        table: str | None = None,
        column: str | None = None,
        row_id: str | None = None,
    ) -> None:
        super().__init__(
            f"no key with id '{key_id}' is in the keyring; restore it to the key file "
            "or to AUTHBRIDGE_KEYS",
            table=table,
            column=column,
            row_id=row_id,
            key_id=key_id,
        )
        self.key_id: str = key_id


class RequestTimeout(AuthBridgeError):
    """A client took longer than allowed to send a request's headers or its body
    (:mod:`authbridge.serving`); the connection is closed after the answer."""

    code = "request_timeout"
    status = 408


class TooManyConnections(AuthBridgeError):
    """The server process holds ``AUTHBRIDGE_MAX_CONNECTIONS`` connections already; a new one
    is answered with this and closed. Trying again in ``retry_after`` seconds may work."""

    code = "too_many_connections"
    status = 503
    retry_after = 1


class DatabaseUnavailable(AuthBridgeError):
    """The database cannot serve the request just now; trying again shortly should work.

    ``kind`` names the trouble (``pool_exhausted``, ``unreachable``, ``locked``, …; see
    :mod:`authbridge.storage.faults`), ``retry_after`` is the whole number of seconds worth
    waiting, and ``cause`` names the driver's error (class and SQLSTATE) for the log, never its
    text, which may quote the statement's values.
    """

    code = "database_unavailable"
    status = 503

    def __init__(self, message: str, *, kind: str, retry_after: int, cause: str = "") -> None:
        self.kind = kind
        self.retry_after = retry_after
        self.cause = cause
        super().__init__(message)


class CliError(AuthBridgeError):
    """A failure a command reports with its message and exit status 1."""
