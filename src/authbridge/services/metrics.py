"""Prometheus metrics of one process, served at ``/metrics``.

Labels are small closed sets (outcome, event type, auth type), never ids or anything secret.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REFRESHES = Counter(
    "authbridge_refreshes",
    "Refresh attempts by outcome (refreshed, shared, not_due, failed, invalid).",
    ["outcome"],
    registry=REGISTRY,
)
REFRESH_LAG = Histogram(
    "authbridge_refresh_lag_seconds",
    "How long after its due time an authentication was refreshed.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
    registry=REGISTRY,
)
REFRESH_STORE_WINDOW = Histogram(
    "authbridge_refresh_store_window_seconds",
    "From the provider's answer to a refresh to the commit of the new credentials: the time"
    " a killed process would lose a rotated refresh token in.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5),
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "authbridge_webhook_deliveries",
    "Webhook delivery attempts by outcome (succeeded, retrying, failed).",
    ["outcome"],
    registry=REGISTRY,
)
CREDENTIAL_READS = Counter(
    "authbridge_credential_reads",
    "Credential reads served, by auth type.",
    ["auth_type"],
    registry=REGISTRY,
)


@functools.cache
def credential_reads(auth_type: str) -> Counter:
    """:data:`CREDENTIAL_READS`' counter of ``auth_type``, looked up once (``labels`` takes a
    lock and validates its arguments on every call, on the hottest path)."""
    return CREDENTIAL_READS.labels(auth_type)


DUE_AUTHENTICATIONS = Gauge(
    "authbridge_due_authentications",
    "Authentications whose refresh is due, as the worker last saw them.",
    registry=REGISTRY,
)
LIFECYCLE = Counter(
    "authbridge_lifecycle_transitions",
    "What the worker did to authentications besides refreshing (warned, expired, deleted).",
    ["action"],
    registry=REGISTRY,
)
REVOCATIONS = Counter(
    "authbridge_revocations",
    "Token revocations (RFC 7009) before a scheduled deletion, by outcome (revoked, failed).",
    ["outcome"],
    registry=REGISTRY,
)
WORKER_TICKS = Histogram(
    "authbridge_worker_tick_seconds",
    "How long one worker tick took (refreshes, expiry and deletions; not webhook delivery).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
WORKER_ERRORS = Counter(
    "authbridge_worker_errors",
    "Worker ticks or webhook delivery rounds that failed with an unexpected error, by part.",
    ["part"],
    registry=REGISTRY,
)
