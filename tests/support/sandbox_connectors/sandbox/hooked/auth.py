"""An API-key connector whose on_connected callback refuses keys ending in _closed, and writes
the id of the authentication it was given to the file SANDBOX_HOOKED_RECORD names (if set)."""

import os
from pathlib import Path

type = "api_key"


def on_connected(context):
    if context.api_key.endswith("_closed"):
        raise ValueError("this workspace is closed")
    record = os.environ.get("SANDBOX_HOOKED_RECORD")
    if record:
        Path(record).write_text(context.authId)


definition = {
    "auth": {"api_key": {"type": "password", "name": "API key"}},
    "validate": {
        "url": "http://127.0.0.1:$PORT/apikey/me",
        "headers": {"x-api-key": "{{api_key}}"},
    },
    "on_connected": on_connected,
}
