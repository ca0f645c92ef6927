"""The request and response bodies of the tenancy API: end users, user tokens, master tokens,
the keys of host JWTs and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from authbridge.api.schemas import MAX_TEXT, ExternalId, Request
from authbridge.storage.models import AuditEvent, EndUser, JwtPublicKey, MasterToken


class EndUserIn(Request):
    external_user_id: str = ExternalId
    name: str | None = Field(default=None, max_length=MAX_TEXT)
    email: str | None = Field(default=None, max_length=320)


class EndUserOut(BaseModel):
    id: str
    external_user_id: str
    name: str | None
    email: str | None
    created_at: datetime

    @classmethod
    def of(cls, end_user: EndUser) -> EndUserOut:
        return cls(
            id=end_user.id,
            external_user_id=end_user.external_user_id,
            name=end_user.name,
            email=end_user.email,
            created_at=end_user.created_at,
        )


class UserTokenIn(Request):
    external_user_id: str = ExternalId
    ttl_seconds: int = Field(default=900, ge=1, le=86400)


class UserTokenOut(BaseModel):
    token: str
    expires_at: datetime


class MasterTokenIn(Request):
    name: str = Field(min_length=1, max_length=MAX_TEXT)


class MasterTokenOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: MasterToken) -> MasterTokenOut:
        return cls(
            id=record.id,
            name=record.name,
            prefix=record.prefix,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


class IssuedMasterTokenOut(MasterTokenOut):
    token: str = Field(description="Shown once; only its hash is stored")


class JwtSecretOut(BaseModel):
    secret: str = Field(
        description="The environment's HMAC secret, base64url-encoded: decode it and sign "
        "HS256 JWTs (user tokens, jwt connectors' tokens) with the bytes"
    )
    encoding: Literal["base64url"] = "base64url"
    algorithm: Literal["HS256"] = "HS256"


class JwtKeyIn(Request):
    key: str | dict[str, Any] = Field(
        description="The public key: PEM text ('-----BEGIN PUBLIC KEY-----'), or a JWK (an "
        "object, or its JSON text); never the private key"
    )
    kid: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The key id JWTs name in their header; the JWK's kid when omitted",
    )
    algorithm: str | None = Field(
        default=None,
        max_length=16,
        description="RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA; inferred from the key "
        "(RS256 for RSA) when omitted",
    )


class JwtKeyOut(BaseModel):
    kid: str
    algorithm: str
    public_key: str = Field(description="The public key, as PEM")
    created_at: datetime

    @classmethod
    def of(cls, record: JwtPublicKey) -> JwtKeyOut:
        return cls(
            kid=record.kid,
            algorithm=record.algorithm,
            public_key=record.public_key_pem,
            created_at=record.created_at,
        )


class AuditEventOut(BaseModel):
    id: str
    actor: str
    action: str
    target_type: str
    target_id: str | None
    detail: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            actor=event.actor,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            detail=dict(event.detail or {}),
            created_at=event.created_at,
        )
