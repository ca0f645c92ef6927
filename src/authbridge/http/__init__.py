"""The one outbound HTTP client, its egress policy and the mapping of provider errors."""

from authbridge.http.client import OutboundClient, ProviderResponse, parse_body
from authbridge.http.messages import error_for_status, parse_retry_after, provider_message
from authbridge.http.policy import EgressPolicy

__all__ = [
    "EgressPolicy",
    "OutboundClient",
    "ProviderResponse",
    "error_for_status",
    "parse_body",
    "parse_retry_after",
    "provider_message",
]
