"""OAuth 2 server metadata (RFC 8414, OpenID Connect Discovery) filling a definition.

A definition that declares ``discovery_url``, or ``issuer`` without ``auth_url`` or
``request_access_token``, gets those, the revocation endpoint and ``issuer`` from the server's
metadata where it leaves them out (what it declares wins). The document is fetched through the
outbound client (its egress policy applies) and kept for :data:`CACHE_SECONDS` per URL, so a connect
does not fetch it each time; a failed fetch is not kept.

    definition, metadata = await discovered(definition, context)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from authbridge import errors
from authbridge.connectors.models import OAuth2Definition
from authbridge.http import OutboundClient, parse_body
from authbridge.mechanisms.context import Context
from authbridge.spec import rfc8414
from authbridge.spec.rfc8414 import ServerMetadata
from authbridge.spec.templates import render_url

__all__ = ["CACHE_SECONDS", "MetadataCache", "discovered", "metadata_cache", "needs_discovery"]

CACHE_SECONDS = 3600.0


@dataclass(frozen=True)
class _Entry:
    metadata: ServerMetadata
    until: float


class MetadataCache:
    """Metadata documents by URL, each kept ``ttl`` seconds after it was fetched."""

    def __init__(
        self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str | None], _Entry] = {}

    def get(self, url: str, issuer: str | None) -> ServerMetadata | None:
        entry = self._entries.get((url, issuer))
        if entry is None or entry.until <= self._clock():
            return None
        return entry.metadata

    def put(self, url: str, issuer: str | None, metadata: ServerMetadata) -> None:
        self._entries[(url, issuer)] = _Entry(metadata, self._clock() + self.ttl)

    def clear(self) -> None:
        self._entries.clear()


metadata_cache = MetadataCache()
"""The process's cache, shared by every connect, callback and refresh."""


def needs_discovery(definition: OAuth2Definition) -> bool:
    """``discovery_url`` is declared, or ``issuer`` with an endpoint left out."""
    if definition.discovery_url is not None:
        return True
    if definition.issuer is None:
        return False
    missing_auth = definition.grant_type == "authorization_code" and definition.auth_url is None
    return missing_auth or definition.request_access_token is None


def _render(url: str, context: Context) -> str:
    return render_url(url, context.values()) if "{{" in url else url


def metadata_location(definition: OAuth2Definition, context: Context) -> tuple[str, str | None]:
    """The metadata URL and the issuer its document must name (``None``: whichever it names,
    for a ``discovery_url`` that is not a standard well-known URL)."""
    issuer = _render(definition.issuer, context) if definition.issuer is not None else None
    if definition.discovery_url is not None:
        url = _render(definition.discovery_url, context)
        return url, issuer if issuer is not None else rfc8414.issuer_of_well_known_url(url)
    assert issuer is not None
    return rfc8414.well_known_url(issuer), issuer


async def fetch_metadata(http: OutboundClient, url: str, issuer: str | None) -> ServerMetadata:
    """Fetch and validate the document at ``url``; errors name the URL and the reason."""
    where = f"cannot use the OAuth server metadata at {url}"
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except errors.ProviderUnavailable as exc:
        raise errors.ProviderUnavailable(f"{where}: {exc.message}") from exc
    except errors.ProviderError as exc:
        raise errors.ProviderError(f"{where}: {exc.message}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise errors.ProviderUnavailable(
            f"{where}: the server answered HTTP {response.status_code}",
            status_code=response.status_code,
        )
    if not response.is_success:
        raise errors.ProviderError(
            f"{where}: the server answered HTTP {response.status_code}",
            status_code=response.status_code,
        )
    try:
        return rfc8414.parse_metadata(parse_body(response), expected_issuer=issuer)
    except rfc8414.InvalidMetadata as exc:
        raise errors.ProviderError(f"{where}: {exc}") from exc


async def discovered(
    definition: OAuth2Definition, context: Context, *, cache: MetadataCache | None = None
) -> tuple[OAuth2Definition, ServerMetadata | None]:
    """The definition with what its metadata fills in, and the metadata (``None`` when the
    definition asks for none)."""
    if not needs_discovery(definition):
        return definition, None
    cache = cache if cache is not None else metadata_cache
    url, issuer = metadata_location(definition, context)
    metadata = cache.get(url, issuer)
    if metadata is None:
        metadata = await fetch_metadata(context.http, url, issuer)
        cache.put(url, issuer, metadata)
    return fill(definition, metadata, context), metadata


def cached(definition: OAuth2Definition, context: Context) -> OAuth2Definition:
    """The definition filled from metadata already in the cache, without fetching (for the
    synchronous revocation); as declared when nothing is cached."""
    if not needs_discovery(definition):
        return definition
    try:
        url, issuer = metadata_location(definition, context)
    except errors.AuthBridgeError:
        return definition
    metadata = metadata_cache.get(url, issuer)
    return definition if metadata is None else fill(definition, metadata, context)


def fill(
    definition: OAuth2Definition, metadata: ServerMetadata, context: Context
) -> OAuth2Definition:
    """Fill ``auth_url``, ``request_access_token``, ``revocation`` and ``issuer`` where the
    definition leaves them out; what it declares stays."""
    changes: dict[str, object] = {}
    if definition.auth_url is None and metadata.authorization_endpoint is not None:
        changes["auth_url"] = metadata.authorization_endpoint
    if definition.request_access_token is None and metadata.token_endpoint is not None:
        changes["request_access_token"] = metadata.token_endpoint
    if definition.revocation is None and metadata.revocation_endpoint is not None:
        changes["revocation"] = metadata.revocation_endpoint
    if definition.issuer is None:
        changes["issuer"] = metadata.issuer
    elif "{{" in definition.issuer:
        changes["issuer"] = _render(definition.issuer, context)
    if metadata.iss_parameter_supported:
        changes["issuer_required"] = True
    filled = definition.model_copy(update=changes)
    if filled.request_access_token is None:
        raise errors.ProviderError(
            f"the OAuth server metadata of {metadata.issuer} names no token_endpoint"
        )
    if filled.grant_type == "authorization_code" and filled.auth_url is None:
        raise errors.ProviderError(
            f"the OAuth server metadata of {metadata.issuer} names no authorization_endpoint"
        )
    return filled
