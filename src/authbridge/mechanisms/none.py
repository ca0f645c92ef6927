"""``none``: no per-user credentials. The connector's request rules use what the host
configures (``settings``, variant values), so integration code needs no authentication
(``GET /v1/connectors/{key}/request-auth``); connecting one records the connection only."""

from __future__ import annotations

from authbridge.connectors.models import AuthDefinition
from authbridge.mechanisms.base import ConnectResult, Mechanism
from authbridge.mechanisms.context import Context


class NoneMechanism(Mechanism):
    type = "none"
    per_user = False

    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        return ConnectResult(account_name=None, credentials={})
