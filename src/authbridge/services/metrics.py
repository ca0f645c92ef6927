"""Prometheus metrics of one process, served at ``/metrics``.

Labels are small closed sets (outcome, event type, auth type), never ids or anything secret.
"""

from __future__ import annotations

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
DUE_AUTHENTICATIONS = Gauge(
    "authbridge_due_authentications",
    "Authentications whose refresh is due, as the worker last saw them.",
    registry=REGISTRY,
)
