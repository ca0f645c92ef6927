"""``authbridge sandbox``: run the local sandbox provider (a testing tool).

uvicorn and the sandbox app are imported when the command runs, not for ``--help``; the module's
``uvicorn`` attribute imports it on first access (tests replace ``uvicorn.run`` through it).
"""

from __future__ import annotations

import importlib
import ipaddress
from types import ModuleType

import typer

__all__ = ["is_loopback_host", "sandbox_command"]


def __getattr__(name: str) -> ModuleType:
    if name == "uvicorn":
        return importlib.import_module("uvicorn")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_loopback_host(host: str) -> bool:
    """``host`` is ``localhost`` or a loopback IP address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _base_url(host: str, port: int) -> str:
    bare = host.strip("[]")
    try:
        shown = f"[{bare}]" if ipaddress.ip_address(bare).version == 6 else bare
    except ValueError:
        shown = bare
    return f"http://{shown}:{port}"


def sandbox_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback only)."),
    port: int = typer.Option(8400, "--port", min=1, max=65535, help="Port to listen on."),
    token_lifetime: int = typer.Option(
        3600, "--token-lifetime", min=1, help="Access-token lifetime in seconds."
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host. The sandbox accepts fixed, public credentials: "
        "never expose it on a network you do not control.",
    ),
) -> None:
    """Run a local sandbox provider: OAuth 2, OAuth 1.0a, API key and password services."""
    import uvicorn

    from authbridge.sandbox import SandboxSettings, create_app
    from authbridge.sandbox.app import API_KEY_PREFIX, PASSWORD

    if not is_loopback_host(host) and not allow_remote:
        typer.echo(
            f"Refusing to bind the sandbox to {host!r}: it is a testing tool with public "
            "credentials. Use a loopback address, or pass --allow-remote if you really mean it.",
            err=True,
        )
        raise typer.Exit(2)
    base = _base_url(host, port)
    settings = SandboxSettings(issuer=base, token_lifetime=token_lifetime)
    lines = [
        f"authbridge sandbox on {base}",
        "",
        "OAuth 2",
        f"  authorize:      {settings.url('/oauth2/authorize')}",
        f"  token:          {settings.url('/oauth2/token')}",
        f"  profile:        {settings.url('/oauth2/me')}",
        f"  metadata:       {settings.url('/.well-known/oauth-authorization-server')}",
        f"  client_id:      {settings.client_id}",
        f"  client_secret:  {settings.client_secret}",
        f"  token lifetime: {settings.token_lifetime} s",
        "OAuth 1.0a (HMAC-SHA1)",
        f"  request token:  {settings.url('/oauth1/request_token')}",
        f"  authorize:      {settings.url('/oauth1/authorize')}",
        f"  access token:   {settings.url('/oauth1/access_token')}",
        f"  profile:        {settings.url('/oauth1/me')}",
        f"  consumer key:   {settings.consumer_key}",
        f"  consumer secret: {settings.consumer_secret}",
        "API key",
        f"  profile:        {settings.url('/apikey/me')}  (X-API-Key: {API_KEY_PREFIX}anything)",
        "Password",
        f"  login:          {settings.url('/pwd/login')}  (any username, password {PASSWORD!r})",
        f"  profile:        {settings.url('/pwd/me')}",
        f"Stats:            {settings.url('/sandbox/stats')}",
    ]
    typer.echo("\n".join(lines))
    if not is_loopback_host(host):
        typer.echo("WARNING: the sandbox is reachable from other hosts.", err=True)
    uvicorn.run(create_app(settings), host=host.strip("[]"), port=port, log_level="info")
