"""The one outbound HTTP client, its egress policy and the mapping of provider errors."""

from authbridge.http.client import OutboundClient, ProviderResponse, parse_body
from authbridge.http.messages import error_for_status, parse_retry_after, provider_message
from authbridge.http.policy import (
    EgressPolicy,
    HostTarget,
    outbound_ssl_context,
    parse_host_map,
)

__all__ = [
    "EgressPolicy",
    "HostTarget",
    "OutboundClient",
    "ProviderResponse",
    "error_for_status",
    "outbound_ssl_context",
    "parse_body",
    "parse_host_map",
    "parse_retry_after",
    "provider_message",
]
