"""A small OAuth 2 authorization server for loopback tests.

There is no authorize page: a test calls :meth:`OAuth2Provider.issue_code` with what the
authorization URL carried (as the consent page would) and then drives the callback itself.

    POST /token   authorization_code (PKCE S256 verified, redirect_uri compared byte for
                  byte), refresh_token (optionally rotating), client_credentials; the client
                  authenticates by HTTP Basic or in the body, as ``client_auth`` says
    GET  /me      the profile, for ``Authorization: Bearer <access token>`` only
    GET  /.well-known/oauth-authorization-server, /.well-known/openid-configuration
                  the server's metadata (RFC 8414), its issuer the server's own base URL;
                  ``metadata`` overrides or adds values (``None`` removes one), and
                  ``metadata_requests`` counts the fetches

``fail_next`` makes the next token request answer with a given status and body; ``form_body``
answers like GitHub (``application/x-www-form-urlencoded``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.providers import decode_basic


@dataclass
class Grant:
    """What an authorization code was issued for."""

    redirect_uri: str
    code_challenge: str | None
    scope: str | None


@dataclass(frozen=True)
class TokenRequest:
    """One token request as the server saw it: raw body and the parsed form."""

    raw_body: bytes
    form: dict[str, str]
    authorization: str | None


@dataclass
class OAuth2Provider:
    client_id: str = "client-123"
    client_secret: str = "s3cret:with space"
    client_auth: Literal["basic", "body"] = "body"
    expires_in: int | None = 3600
    rotate_refresh_tokens: bool = False
    issue_refresh_tokens: bool = True
    form_body: bool = False
    extra_token_values: dict[str, Any] = field(default_factory=dict)
    """Provider-specific values every token answer carries (Salesforce's ``instance_url``)."""
    profile: dict[str, Any] = field(
        default_factory=lambda: {"id": 42, "login": "ada", "contact": {"email": "ada@x.test"}}
    )
    fail_next: tuple[int, dict[str, Any] | str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_requests: int = 0
    token_requests: list[TokenRequest] = field(default_factory=list)
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/me", self.me),
                Route("/.well-known/oauth-authorization-server", self.server_metadata),
                Route("/.well-known/openid-configuration", self.server_metadata),
            ]
        )

    async def server_metadata(self, request: Request) -> Response:
        self.metadata_requests += 1
        base = str(request.base_url).rstrip("/")
        document: dict[str, Any] = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "revocation_endpoint": f"{base}/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
        }
        document.update(self.metadata)
        return JSONResponse({k: v for k, v in document.items() if v is not None})

    def issue_code(
        self, redirect_uri: str, code_challenge: str | None = None, scope: str | None = None
    ) -> str:
        code = secrets.token_urlsafe(16)
        self.codes[code] = Grant(redirect_uri, code_challenge, scope)
        return code

    def issue_code_for(self, authorization_url: str) -> str:
        """Issue a code for the parameters an authorization URL carries (as sent, decoded)."""
        query = dict(parse_qsl(authorization_url.partition("?")[2]))
        return self.issue_code(
            query["redirect_uri"], query.get("code_challenge"), query.get("scope")
        )

    async def token(self, request: Request) -> Response:
        raw = await request.body()
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        authorization = request.headers.get("authorization")
        self.token_requests.append(TokenRequest(raw, form, authorization))
        if self.fail_next is not None:
            status, body = self.fail_next
            self.fail_next = None
            if isinstance(body, str):
                return Response(body, status_code=status, media_type="text/plain")
            return JSONResponse(body, status_code=status)
        if not self._client_ok(form, authorization):
            return _error(401, "invalid_client", "client authentication failed")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._code_grant(form)
        if grant_type == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return _error(400, "invalid_grant", "the refresh token is revoked")
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(form["refresh_token"])
                return self._tokens(refresh=True, scope=None)
            return self._tokens(refresh=False, scope=None)
        if grant_type == "client_credentials":
            return self._tokens(refresh=False, scope=form.get("scope"))
        return _error(400, "unsupported_grant_type", None)

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if self.client_auth == "basic":
            basic = decode_basic(authorization)
            if basic is None:
                return False
            user, password = (unquote_plus(part) for part in basic)
            return (user, password) == (self.client_id, self.client_secret)
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )

    def _code_grant(self, form: dict[str, str]) -> Response:
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return _error(400, "invalid_grant", "the authorization code is invalid or used")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri does not match")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != grant.code_challenge:
                return _error(400, "invalid_grant", "PKCE verification failed")
        return self._tokens(refresh=self.issue_refresh_tokens, scope=grant.scope)

    def _tokens(self, *, refresh: bool, scope: str | None) -> Response:
        access = "at-" + secrets.token_urlsafe(12)
        self.access_tokens.add(access)
        body: dict[str, Any] = {
            **self.extra_token_values,
            "access_token": access,
            "token_type": "bearer",
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if refresh:
            body["refresh_token"] = "rt-" + secrets.token_urlsafe(12)
            self.refresh_tokens.add(body["refresh_token"])
        if scope is not None:
            body["scope"] = scope
        if self.form_body:
            return Response(urlencode(body), media_type="application/x-www-form-urlencoded")
        return JSONResponse(body)

    async def me(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.access_tokens:
            return _error(401, "invalid_token", "the access token is not valid")
        return JSONResponse(self.profile)


def _error(status: int, error: str, description: str | None) -> Response:
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return JSONResponse(body, status_code=status)
