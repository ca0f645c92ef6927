"""Fixtures of the outbound client tests: loopback servers and a client allowed to reach them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authbridge.http import EgressPolicy, OutboundClient
from tests.support.loopback import loopback as loopback

LOOPBACK_POLICY = EgressPolicy(allow_loopback=True, resolve={"*.freshdesk.test": "127.0.0.1"})


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    """An outbound client that may reach loopback; ``*.freshdesk.test`` resolves to 127.0.0.1."""
    async with OutboundClient(LOOPBACK_POLICY, timeout=5.0) as outbound:
        yield outbound
