"""A local sandbox provider for trying authbridge without a real third party.

It plays an OAuth 2 authorization server (consent page, PKCE, refresh-token rotation with
reuse detection, client credentials), an OAuth 1.0a provider, an API-key service and a
username/password service, all in memory. It is a testing tool: serve it on loopback only.
"""

from __future__ import annotations

from authbridge.sandbox.app import create_app
from authbridge.sandbox.settings import SandboxSettings

__all__ = ["SandboxSettings", "create_app"]
