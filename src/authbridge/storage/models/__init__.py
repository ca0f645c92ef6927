"""The ORM models, one module per table; importing this package registers every table."""

from authbridge.storage.models.audit_event import AuditEvent
from authbridge.storage.models.authentication import Authentication, AuthStatus
from authbridge.storage.models.authorization_code import AuthorizationCode
from authbridge.storage.models.base import Base, UtcDateTime, new_id, utcnow
from authbridge.storage.models.connect_session import ConnectSession
from authbridge.storage.models.connector_config import ConnectorConfig
from authbridge.storage.models.end_user import EndUser
from authbridge.storage.models.environment import Environment
from authbridge.storage.models.jwt_public_key import JwtPublicKey
from authbridge.storage.models.master_token import MasterToken
from authbridge.storage.models.oauth_state import OAuthState
from authbridge.storage.models.solution import (
    AuthSlot,
    ConfigSlot,
    Solution,
    SolutionInstance,
    SolutionInstanceAuth,
)
from authbridge.storage.models.theme import Theme
from authbridge.storage.models.webhook import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

metadata = Base.metadata

__all__ = [
    "AuditEvent",
    "AuthSlot",
    "AuthStatus",
    "Authentication",
    "AuthorizationCode",
    "Base",
    "ConfigSlot",
    "ConnectSession",
    "ConnectorConfig",
    "DeliveryStatus",
    "EndUser",
    "Environment",
    "JwtPublicKey",
    "MasterToken",
    "OAuthState",
    "Solution",
    "SolutionInstance",
    "SolutionInstanceAuth",
    "Theme",
    "UtcDateTime",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "metadata",
    "new_id",
    "utcnow",
]
