"""The sandbox's OAuth 1.0a provider (RFC 5849), HMAC-SHA1 signatures checked by Authlib.

POST /oauth1/request_token   temporary credentials (§2.1); needs ``oauth_callback``
GET  /oauth1/authorize       a page with Approve and Deny buttons (§2.2)
POST /oauth1/authorize       redirects to the callback with ``oauth_token`` and
                             ``oauth_verifier`` (or shows the verifier for ``oob``); on Deny
                             (``decision=deny``) with ``denied=<request token>``, as Twitter does
POST /oauth1/access_token    token credentials (§2.3)
GET  /oauth1/me              the account's profile (JSON)
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth1.rfc5849.base_server import (  # type: ignore[import-untyped]
    BaseServer,
)
from authlib.oauth1.rfc5849.errors import OAuth1Error  # type: ignore[import-untyped]
from authlib.oauth1.rfc5849.wrapper import OAuth1Request  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from authbridge.sandbox.settings import SandboxSettings

__all__ = ["OAuth1Sandbox", "add_query"]

PROFILE = {
    "id": "sandbox-user-1",
    "login": "sandbox",
    "name": "Sandbox User",
    "email": "sandbox@example.test",
}
NONCE_MEMORY = 10_000
REQUEST_TOKEN_LIFETIME = 600.0

PageRenderer = Callable[[str, str], HTMLResponse]
LoopbackCheck = Callable[[str], bool]


class _Problem(Exception):
    def __init__(self, problem: str, advice: str, status: int = 401) -> None:
        super().__init__(advice)
        self.problem = problem
        self.advice = advice
        self.status = status


@dataclass
class _Consumer:
    secret: str

    def get_client_secret(self) -> str:
        return self.secret

    def get_rsa_public_key(self) -> None:
        return None


@dataclass
class _Credential:
    secret: str
    callback: str = ""
    verifier: str = ""
    expires: float = 0.0

    def get_oauth_token_secret(self) -> str:
        return self.secret


class _Verifier(BaseServer):  # type: ignore[misc]
    SUPPORTED_SIGNATURE_METHODS = ["HMAC-SHA1"]

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._order: deque[tuple[str, str, str]] = deque()

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        key = (nonce, request.timestamp or "", request.client_id or "")
        if key in self._seen:
            return True
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > NONCE_MEMORY:
            self._seen.discard(self._order.popleft())
        return False


class OAuth1Sandbox:
    """State and endpoints of the OAuth 1.0a provider."""

    def __init__(
        self,
        settings: SandboxSettings,
        page: PageRenderer,
        callback_allowed: LoopbackCheck,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._page = page
        self._callback_allowed = callback_allowed
        self._clock = clock
        self._lock = threading.Lock()
        self._verifier = _Verifier()
        self._consumers = {settings.consumer_key: _Consumer(settings.consumer_secret)}
        self._request_tokens: dict[str, _Credential] = {}
        self._access_tokens: dict[str, _Credential] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/oauth1/request_token", self._request_token, methods=["POST"]),
            Route("/oauth1/authorize", self._authorize_page, methods=["GET"]),
            Route("/oauth1/authorize", self._authorize, methods=["POST"]),
            Route("/oauth1/access_token", self._access_token, methods=["POST"]),
            Route("/oauth1/me", self._me, methods=["GET"]),
        ]

    async def _verify(self, request: Request, tokens: dict[str, _Credential] | None) -> Any:
        body = (await request.body()).decode("utf-8", "replace")
        try:
            signed = OAuth1Request(request.method, str(request.url), body, request.headers)
        except OAuth1Error as exc:
            raise _Problem("parameter_rejected", exc.description or exc.error) from exc
        consumer = self._consumers.get(signed.client_id or "")
        if consumer is None:
            raise _Problem("consumer_key_unknown", "Unknown consumer key")
        signed.client = consumer
        with self._lock:
            if tokens is not None:
                credential = tokens.get(signed.token or "")
                if credential is None:
                    raise _Problem("token_rejected", "Unknown or revoked token")
                signed.credential = credential
            try:
                self._verifier.validate_timestamp_and_nonce(signed)
                self._verifier.validate_oauth_signature(signed)
            except OAuth1Error as exc:
                raise _Problem(
                    exc.error or "signature_invalid", exc.description or "Bad signature"
                ) from exc
        return signed

    async def _request_token(self, request: Request) -> Response:
        try:
            signed = await self._verify(request, None)
            callback = signed.redirect_uri or ""
            if callback != "oob" and not self._callback_allowed(callback):
                raise _Problem(
                    "parameter_rejected",
                    "oauth_callback must be 'oob' or an http(s) URL on localhost or 127.0.0.1",
                    400,
                )
        except _Problem as problem:
            return _problem(problem)
        token, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        with self._lock:
            self._request_tokens[token] = _Credential(
                secret, callback, expires=self._clock() + REQUEST_TOKEN_LIFETIME
            )
        return _form(oauth_token=token, oauth_token_secret=secret, oauth_callback_confirmed="true")

    def _pending(self, token: str) -> _Credential | None:
        with self._lock:
            credential = self._request_tokens.get(token)
            if credential is None or credential.expires < self._clock():
                return None
            return credential

    async def _authorize_page(self, request: Request) -> Response:
        token = request.query_params.get("oauth_token", "")
        if self._pending(token) is None:
            return self._page("Unknown request token", "<p>This request token is unknown.</p>")
        body = (
            "<p>The consumer <strong>"
            + html.escape(self._settings.consumer_key)
            + "</strong> asks for access to your sandbox account.</p>"
            '<form method="post" action="/oauth1/authorize">'
            f'<input type="hidden" name="oauth_token" value="{html.escape(token)}">'
            '<button type="submit" name="decision" value="approve">Approve</button>'
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        return self._page("Authorize access", body)

    async def _authorize(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("oauth_token", ""))
        credential = self._pending(token)
        if credential is None:
            page = self._page("Unknown request token", "<p>This request token is unknown.</p>")
            page.status_code = 400
            return page
        if form.get("decision", "approve") != "approve":
            with self._lock:
                self._request_tokens.pop(token, None)
            if credential.callback == "oob":
                return self._page("Access denied", "<p>You denied the access.</p>")
            return RedirectResponse(add_query(credential.callback, denied=token), status_code=303)
        verifier = secrets.token_urlsafe(16)
        with self._lock:
            credential.verifier = verifier
        if credential.callback == "oob":
            return self._page(
                "Access approved",
                f"<p>Your verifier is <code>{html.escape(verifier)}</code>.</p>",
            )
        return RedirectResponse(
            add_query(credential.callback, oauth_token=token, oauth_verifier=verifier),
            status_code=303,
        )

    async def _access_token(self, request: Request) -> Response:
        try:
            signed = await self._verify(request, self._request_tokens)
            verifier = str(signed.oauth_params.get("oauth_verifier", ""))
            with self._lock:
                credential = self._request_tokens.get(signed.token)
                if (
                    credential is None
                    or credential.expires < self._clock()
                    or not credential.verifier
                    or not secrets.compare_digest(verifier, credential.verifier)
                ):
                    raise _Problem(
                        "verifier_invalid", "The verifier does not match the request token"
                    )
                del self._request_tokens[signed.token]
                token, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
                self._access_tokens[token] = _Credential(secret)
        except _Problem as problem:
            return _problem(problem)
        return _form(oauth_token=token, oauth_token_secret=secret, user_id=PROFILE["id"])

    async def _me(self, request: Request) -> Response:
        try:
            await self._verify(request, self._access_tokens)
        except _Problem as problem:
            return _problem(problem)
        return JSONResponse(PROFILE)


def add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _form(**values: str) -> Response:
    return Response(
        urlencode(values),
        media_type="application/x-www-form-urlencoded",
        headers={"Cache-Control": "no-store"},
    )


def _problem(problem: _Problem) -> Response:
    return Response(
        urlencode({"oauth_problem": problem.problem, "oauth_problem_advice": problem.advice}),
        status_code=problem.status,
        media_type="application/x-www-form-urlencoded",
    )
