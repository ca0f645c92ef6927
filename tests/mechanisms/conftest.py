"""What the mechanism tests share: an outbound client that may reach the loopback providers.

(``anyio_backend`` is the plugin's of ``tests/support/app.py``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authbridge.http import EgressPolicy, OutboundClient


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    async with OutboundClient(EgressPolicy(allow_loopback=True)) as outbound:
        yield outbound
