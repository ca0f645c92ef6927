"""A trigger written with ``bridge.context(...)``, run against the sandbox provider.

With ``make run`` going (authbridge on 127.0.0.1:8000, the sandbox on 127.0.0.1:8400):

    export AB=http://127.0.0.1:8000 TOKEN=abk_...       # the master token make run printed
    .venv/bin/python examples/sdk/trigger.py             # user-42's sandbox API-key account
    .venv/bin/python examples/sdk/trigger.py <auth id>   # or any sandbox account connected

A trigger (or an action) is a plain function of a context: ``context.auth`` holds the fresh
credentials, and ``context.http`` is an ``httpx.Client`` already pointed at the connector's API
that authenticates every request by the connector's request rules. The sandbox connectors all
serve the signed-in account at ``GET /me``, whatever their auth type; if the provider answers
401, the context has authbridge refresh the credentials once and retries once.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from authbridge.sdk import Client, Context

USER = "user-42"
DEMO_KEY = "sk_sandbox_demo"


def account_profile(context: Context) -> dict[str, Any]:
    """The trigger: the connected account's profile, read from the provider's API."""
    response = context.http.get("/me")
    response.raise_for_status()
    profile: dict[str, Any] = response.json()
    return profile


def demo_authentication(bridge: Client) -> str:
    """user-42's sandbox API-key account; imported on first use, as if they had typed the key."""
    for auth in bridge.list_authentications(
        external_user_id=USER, connector="sandbox-apikey", status="active"
    ):
        return auth.id
    imported = bridge.import_authentication(
        "sandbox-apikey", external_user_id=USER, fields={"api_key": DEMO_KEY}
    )
    return imported.id


def main(argv: list[str]) -> None:
    token = os.environ.get("TOKEN")
    if not token:
        sys.exit("Set TOKEN to the master token `make run` printed (and AB to authbridge's URL).")
    with Client(os.environ.get("AB", "http://127.0.0.1:8000"), token) as bridge:
        auth_id = argv[1] if len(argv) > 1 else demo_authentication(bridge)
        with bridge.context(auth_id) as context:
            profile = account_profile(context)
    print(f"{context.connector} account {auth_id}:")
    print(json.dumps(profile, indent=2))


if __name__ == "__main__":
    main(sys.argv)
