"""The request and response bodies of the tenancy API: end users, user tokens, master tokens
and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from authbridge.api.schemas import MAX_TEXT, ExternalId, Request
from authbridge.storage.models import AuditEvent, EndUser, MasterToken


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
