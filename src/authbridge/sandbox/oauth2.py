"""The sandbox's OAuth 2 authorization server (RFC 6749, RFC 7636, RFC 9207, RFC 8414).

GET  /oauth2/authorize    consent page (client, scopes, Approve / Deny)
POST /oauth2/authorize    redirects with ``code``, ``state`` and ``iss`` or ``access_denied``
POST /oauth2/token        authorization_code (PKCE S256), refresh_token (rotation and
                          reuse detection), client_credentials
GET  /oauth2/me           the profile behind a Bearer access token
GET  /.well-known/oauth-authorization-server
GET  /sandbox/stats       token requests and tokens issued by grant type, refresh-token reuse

Grants, codes and tokens are kept in memory, guarded by one lock.
"""

from __future__ import annotations

import base64
import binascii
import html
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from authbridge.sandbox.oauth1 import PROFILE, LoopbackCheck, PageRenderer, add_query
from authbridge.sandbox.settings import SandboxSettings
from authbridge.spec.rfc7636 import code_challenge

__all__ = ["NO_STORE", "OAuth2Sandbox", "bearer_token"]

CODE_LIFETIME = 60.0
DEFAULT_SCOPE = "profile"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
#: The headers of an answer that holds tokens (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750), ``""`` without one."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() != "bearer ":
        return ""
    return header[7:].strip()


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class _Grant:
    subject: dict[str, Any]
    scope: str
    client_id: str
    revoked: bool = False


@dataclass
class _Code:
    grant_id: str
    redirect_uri: str
    challenge: str | None
    expires: float
    used: bool = False


@dataclass
class _AccessToken:
    grant_id: str
    expires: float


@dataclass
class _RefreshToken:
    grant_id: str
    used: bool = False


@dataclass
class _OAuth2State:
    grants: dict[str, _Grant] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    access_tokens: dict[str, _AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, _RefreshToken] = field(default_factory=dict)
    token_requests: Counter[str] = field(default_factory=Counter)
    tokens_issued: Counter[str] = field(default_factory=Counter)
    reuse_detected: int = 0


class OAuth2Sandbox:
    """State and endpoints of the OAuth 2 authorization server."""

    def __init__(
        self,
        settings: SandboxSettings,
        page: PageRenderer,
        redirect_allowed: LoopbackCheck,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._page = page
        self._redirect_allowed = redirect_allowed
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _OAuth2State()

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/authorize", self._authorize_page, methods=["GET"]),
            Route("/oauth2/authorize", self._authorize, methods=["POST"]),
            Route("/oauth2/token", self._token, methods=["POST"]),
            Route("/oauth2/me", self._me, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self._metadata, methods=["GET"]),
            Route("/sandbox/stats", self._stats, methods=["GET"]),
        ]

    # -- authorization endpoint ------------------------------------------------------------

    def _check_client(self, params: dict[str, str]) -> str | None:
        """Why the request cannot be redirected back (None if it can)."""
        if not secrets.compare_digest(params.get("client_id", ""), self._settings.client_id):
            return "The client_id is unknown."
        if not self._redirect_allowed(params.get("redirect_uri", "")):
            return "The redirect_uri must be an http(s) URL on localhost or 127.0.0.1."
        return None

    def _check_request(self, params: dict[str, str]) -> tuple[str, str] | None:
        if params.get("response_type") != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge is not None and method != "S256":
            return "invalid_request", "Only code_challenge_method=S256 is supported."
        if challenge is None and "code_challenge_method" in params:
            return "invalid_request", "code_challenge_method without code_challenge."
        return None

    def _redirect(self, params: dict[str, str], **values: str) -> Response:
        if "state" in params:
            values["state"] = params["state"]
        values["iss"] = self._settings.issuer
        return RedirectResponse(add_query(params["redirect_uri"], **values), status_code=303)

    def _bad_request(self, message: str) -> Response:
        response = self._page("Invalid request", f"<p>{html.escape(message)}</p>")
        response.status_code = 400
        return response

    def _refusal(self, params: dict[str, str]) -> Response | None:
        """The answer to an authorization request that cannot go ahead, else None."""
        problem = self._check_client(params)
        if problem:
            return self._bad_request(problem)
        error = self._check_request(params)
        if error:
            return self._redirect(params, error=error[0], error_description=error[1])
        return None

    async def _authorize_page(self, request: Request) -> Response:
        params = dict(request.query_params)
        refusal = self._refusal(params)
        if refusal is not None:
            return refusal
        scopes = (params.get("scope") or DEFAULT_SCOPE).split()
        items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in scopes)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k
            in (
                "client_id",
                "redirect_uri",
                "response_type",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
            )
        )
        body = (
            f"<p><strong>{html.escape(self._settings.client_id)}</strong> asks for access to "
            f"your sandbox account ({html.escape(PROFILE['login'])}) with these scopes:</p>"
            f"<ul>{items}</ul>"
            f'<form method="post" action="/oauth2/authorize">{hidden}'
            '<button type="submit" name="decision" value="approve">Approve</button>'
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        return self._page("Authorize access", body)

    async def _authorize(self, request: Request) -> Response:
        form = await request.form()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        refusal = self._refusal(params)
        if refusal is not None:
            return refusal
        if params.get("decision") != "approve":
            return self._redirect(
                params, error="access_denied", error_description="The user denied access"
            )
        code = secrets.token_urlsafe(24)
        grant_id = secrets.token_hex(8)
        with self._lock:
            self._state.grants[grant_id] = _Grant(
                dict(PROFILE), params.get("scope") or DEFAULT_SCOPE, params["client_id"]
            )
            self._state.codes[code] = _Code(
                grant_id,
                params["redirect_uri"],
                params.get("code_challenge"),
                self._clock() + CODE_LIFETIME,
            )
        return self._redirect(params, code=code)

    # -- token endpoint ----------------------------------------------------------------------

    def _authenticate(self, request: Request, form: dict[str, str]) -> str:
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
                raw_id, _, raw_secret = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise _OAuthError("invalid_client", "Malformed Basic credentials.", 401) from exc
            client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        else:
            client_id = form.get("client_id", "")
            client_secret = form.get("client_secret", "")
        good_id = secrets.compare_digest(client_id, self._settings.client_id)
        good_secret = secrets.compare_digest(client_secret, self._settings.client_secret)
        if not (good_id and good_secret):
            raise _OAuthError("invalid_client", "Client authentication failed.", 401)
        return client_id

    def _issue(self, grant_id: str, grant_type: str, refresh: bool) -> dict[str, Any]:
        """Mint tokens for ``grant_id``; the caller holds the lock."""
        access = secrets.token_urlsafe(32)
        lifetime = self._settings.token_lifetime
        self._state.access_tokens[access] = _AccessToken(grant_id, self._clock() + lifetime)
        self._state.tokens_issued[grant_type] += 1
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": self._state.grants[grant_id].scope,
        }
        if refresh:
            token = secrets.token_urlsafe(32)
            self._state.refresh_tokens[token] = _RefreshToken(grant_id)
            body["refresh_token"] = token
        return body

    def _revoke(self, grant_id: str) -> None:
        """Revoke a grant: every token issued under it stops working. Lock held."""
        grant = self._state.grants.get(grant_id)
        if grant is not None:
            grant.revoked = True

    def _authorization_code(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        code = self._state.codes.get(form.get("code", ""))
        if code is None:
            raise _OAuthError("invalid_grant", "The authorization code is unknown.")
        if code.used:
            self._revoke(code.grant_id)
            raise _OAuthError("invalid_grant", "The authorization code was already used.")
        code.used = True
        grant = self._state.grants[code.grant_id]
        if code.expires < self._clock():
            raise _OAuthError("invalid_grant", "The authorization code has expired.")
        if grant.client_id != client_id or form.get("redirect_uri") != code.redirect_uri:
            raise _OAuthError("invalid_grant", "The redirect_uri or client does not match.")
        verifier = form.get("code_verifier")
        if code.challenge is not None:
            try:
                expected = code_challenge(verifier or "", "S256")
            except ValueError as exc:
                raise _OAuthError("invalid_grant", "The code_verifier is malformed.") from exc
            if not secrets.compare_digest(expected, code.challenge):
                raise _OAuthError("invalid_grant", "The code_verifier does not match.")
        elif verifier is not None:
            raise _OAuthError("invalid_grant", "A code_verifier was sent but no challenge.")
        return self._issue(code.grant_id, "authorization_code", refresh=True)

    def _refresh(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        refresh = self._state.refresh_tokens.get(form.get("refresh_token", ""))
        if refresh is None:
            raise _OAuthError("invalid_grant", "The refresh token is unknown.")
        grant = self._state.grants[refresh.grant_id]
        if grant.client_id != client_id:
            raise _OAuthError("invalid_grant", "The refresh token belongs to another client.")
        if refresh.used:
            self._revoke(refresh.grant_id)
            self._state.reuse_detected += 1
            raise _OAuthError(
                "invalid_grant", "The refresh token was already used; the grant is revoked."
            )
        if grant.revoked:
            raise _OAuthError("invalid_grant", "The grant has been revoked.")
        requested = form.get("scope")
        if requested is not None and not set(requested.split()) <= set(grant.scope.split()):
            raise _OAuthError("invalid_scope", "The scope exceeds the original grant.")
        refresh.used = True
        return self._issue(refresh.grant_id, "refresh_token", refresh=True)

    def _client_credentials(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        grant_id = secrets.token_hex(8)
        subject = {"id": client_id, "login": client_id, "name": "Sandbox client", "email": None}
        self._state.grants[grant_id] = _Grant(subject, form.get("scope") or "", client_id)
        return self._issue(grant_id, "client_credentials", refresh=False)

    async def _token(self, request: Request) -> Response:
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        grant_type = form.get("grant_type", "")
        handlers = {
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh,
            "client_credentials": self._client_credentials,
        }
        try:
            with self._lock:
                self._state.token_requests[grant_type or "(none)"] += 1
            client_id = self._authenticate(request, form)
            handler = handlers.get(grant_type)
            if handler is None:
                raise _OAuthError(
                    "unsupported_grant_type", f"Unsupported grant_type {grant_type!r}."
                )
            with self._lock:
                body = handler(form, client_id)
        except _OAuthError as exc:
            headers = dict(NO_STORE)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="authbridge sandbox"'
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=exc.status,
                headers=headers,
            )
        return JSONResponse(body, headers=NO_STORE)

    # -- resources ---------------------------------------------------------------------------

    async def _me(self, request: Request) -> Response:
        token = bearer_token(request)
        with self._lock:
            access = self._state.access_tokens.get(token) if token else None
            grant = self._state.grants.get(access.grant_id) if access else None
            valid = (
                access is not None
                and grant is not None
                and not grant.revoked
                and access.expires > self._clock()
            )
            subject = dict(grant.subject) if valid and grant else None
        if subject is None:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "The access token is invalid."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse(subject)

    async def _metadata(self, request: Request) -> Response:
        url = self._settings.url
        return JSONResponse(
            {
                "issuer": self._settings.issuer,
                "authorization_endpoint": url("/oauth2/authorize"),
                "token_endpoint": url("/oauth2/token"),
                "userinfo_endpoint": url("/oauth2/me"),
                "response_types_supported": ["code"],
                "grant_types_supported": list(GRANT_TYPES),
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": [DEFAULT_SCOPE, "email"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def _stats(self, request: Request) -> Response:
        with self._lock:
            body = {
                "token_requests": {g: self._state.token_requests[g] for g in GRANT_TYPES},
                "tokens_issued": {g: self._state.tokens_issued[g] for g in GRANT_TYPES},
                "refresh_reuse_detected": self._state.reuse_detected,
            }
        return JSONResponse(body)
