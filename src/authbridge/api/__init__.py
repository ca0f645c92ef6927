"""The web application: REST API, connect pages and the static ``authbridge.js``."""

from authbridge.api.app import create_app

__all__ = ["create_app"]
