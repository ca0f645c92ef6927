"""A loopback OAuth 1.0a provider (RFC 5849) that verifies every signature with Authlib.

    POST /initiate        request token (§2.1); needs ``oauth_callback``
    POST /token           access token (§2.3); needs the request token and its verifier
    GET  /me              a protected resource: the account's profile (JSON)
    GET  /validate        a protected resource: 200, or 401 once the token is revoked

Signatures are checked by Authlib's server side (``BaseServer.validate_oauth_signature`` over an
``OAuth1Request``), for HMAC-SHA1, RSA-SHA1 and PLAINTEXT. Failures answer 401 with a
form-encoded ``oauth_problem`` and ``oauth_problem_advice``, as OAuth 1 providers do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.oauth1.rfc5849.base_server import BaseServer
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.wrapper import OAuth1Request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROFILE = {"id": "u-4711", "name": "Jane Photographer", "email": "jane@photos.test"}


class Problem(Exception):
    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(advice)
        self.problem = problem
        self.advice = advice


@dataclass
class Consumer:
    secret: str = ""
    rsa_public_key: str | None = None

    def get_client_secret(self) -> str:
        return self.secret

    def get_rsa_public_key(self) -> str | None:
        return self.rsa_public_key


@dataclass
class Credential:
    secret: str
    consumer_key: str
    callback: str = ""
    verifier: str = ""

    def get_oauth_token_secret(self) -> str:
        return self.secret


@dataclass
class Received:
    method: str
    path: str
    oauth_params: dict[str, str]


class _Verifier(BaseServer):  # type: ignore[misc]
    SUPPORTED_SIGNATURE_METHODS = ["HMAC-SHA1", "RSA-SHA1", "PLAINTEXT"]

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        key = (nonce, request.timestamp or "", request.client_id or "")
        if key in self.seen:
            return True
        self.seen.add(key)
        return False


@dataclass
class OAuth1Provider:
    """The provider's state; ``app`` serves it. Register consumers before connecting."""

    consumers: dict[str, Consumer] = field(default_factory=dict)
    request_tokens: dict[str, Credential] = field(default_factory=dict)
    access_tokens: dict[str, Credential] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    extra_token_params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._verifier = _Verifier()
        self.app = Starlette(
            routes=[
                Route("/initiate", self._initiate, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/me", self._me, methods=["GET"]),
                Route("/validate", self._validate, methods=["GET"]),
            ]
        )

    def add_consumer(self, key: str, secret: str = "", rsa_public_key: str | None = None) -> None:
        self.consumers[key] = Consumer(secret, rsa_public_key)

    def authorize(self, request_token: str) -> str:
        """The end user approves: return the verifier the callback would carry."""
        credential = self.request_tokens[request_token]
        credential.verifier = secrets.token_urlsafe(12)
        return credential.verifier

    def revoke(self, access_token: str) -> None:
        del self.access_tokens[access_token]

    async def _verify(self, request: Request, tokens: dict[str, Credential] | None) -> Any:
        body = (await request.body()).decode()
        try:
            signed = OAuth1Request(request.method, str(request.url), body, request.headers)
        except OAuth1Error as exc:
            raise Problem("parameter_rejected", exc.description or exc.error) from exc
        self.received.append(Received(request.method, request.url.path, dict(signed.oauth_params)))
        consumer = self.consumers.get(signed.client_id or "")
        if consumer is None:
            raise Problem("consumer_key_unknown", "Unknown consumer key")
        signed.client = consumer
        if tokens is not None:
            credential = tokens.get(signed.token or "")
            if credential is None or credential.consumer_key != signed.client_id:
                raise Problem("token_rejected", "Unknown or revoked token")
            signed.credential = credential
        try:
            self._verifier.validate_timestamp_and_nonce(signed)
            self._verifier.validate_oauth_signature(signed)
        except OAuth1Error as exc:
            raise Problem(
                exc.error or "signature_invalid", exc.description or "Bad signature"
            ) from exc
        return signed

    async def _initiate(self, request: Request) -> Response:
        try:
            signed = await self._verify(request, None)
            if not signed.redirect_uri:
                raise Problem("parameter_absent", "oauth_callback is required")
        except Problem as problem:
            return _problem(problem)
        token, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(18)
        self.request_tokens[token] = Credential(secret, signed.client_id, signed.redirect_uri)
        return _form(oauth_token=token, oauth_token_secret=secret, oauth_callback_confirmed="true")

    async def _token(self, request: Request) -> Response:
        try:
            signed = await self._verify(request, self.request_tokens)
            credential = self.request_tokens[signed.token]
            verifier = signed.oauth_params.get("oauth_verifier", "")
            if not credential.verifier or not secrets.compare_digest(verifier, credential.verifier):
                raise Problem("verifier_invalid", "The verifier does not match the request token")
        except Problem as problem:
            return _problem(problem)
        del self.request_tokens[signed.token]
        token, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(18)
        self.access_tokens[token] = Credential(secret, signed.client_id)
        return _form(oauth_token=token, oauth_token_secret=secret, **self.extra_token_params)

    async def _me(self, request: Request) -> Response:
        try:
            await self._verify(request, self.access_tokens)
        except Problem as problem:
            return _problem(problem)
        return JSONResponse(PROFILE)

    async def _validate(self, request: Request) -> Response:
        try:
            await self._verify(request, self.access_tokens)
        except Problem as problem:
            return _problem(problem)
        return JSONResponse({"valid": True})


def _form(**values: str) -> Response:
    return Response(urlencode(values), media_type="application/x-www-form-urlencoded")


def _problem(problem: Problem) -> Response:
    return Response(
        urlencode({"oauth_problem": problem.problem, "oauth_problem_advice": problem.advice}),
        status_code=401,
        media_type="application/x-www-form-urlencoded",
    )
