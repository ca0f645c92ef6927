"""``none``: no per-user credentials; connecting records the connection only."""

from __future__ import annotations

from authbridge.connectors.models import AuthDefinition
from authbridge.mechanisms.base import ConnectResult, Mechanism
from authbridge.mechanisms.context import Context


class NoneMechanism(Mechanism):
    type = "none"

    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        return ConnectResult(account_name=None, credentials={})
