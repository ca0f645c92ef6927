"""Settings of the sandbox provider."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxSettings"]


@dataclass(frozen=True)
class SandboxSettings:
    """How the sandbox presents itself and which credentials it accepts.

    ``issuer`` is the sandbox's base URL, without a trailing slash; every endpoint it
    advertises (and the ``iss`` it adds to authorization responses) starts with it.
    """

    issuer: str = "http://127.0.0.1:8400"
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_lifetime: int = 3600
    consumer_key: str = "sandbox-consumer"
    consumer_secret: str = "sandbox-consumer-secret"

    def __post_init__(self) -> None:
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be a positive number of seconds")
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on the sandbox."""
        return self.issuer + path
