"""Webhooks: redelivery, payload formats and expiry-warning windows per endpoint.

* ``webhook_deliveries.retry_until``: until when a pending delivery is retried (24 hours after
  it was first due: a redelivery of an old event, or a warning held back until its endpoint's
  window opens, gets a window of its own); ``NULL`` on older rows, whose window still runs
  from their event's creation.
* ``webhook_endpoints.payload_format``: ``standard`` (the ``{type, timestamp, data}``
  envelope) or ``tray`` (the flat expired-auth body of Tray Embedded's receivers).
* ``webhook_endpoints.expiry_warning_days``: how long before a hard expiry this endpoint is
  warned (``NULL``: the connector's window, else the worker's ``--warn-days``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("retry_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(
            sa.Column(
                "payload_format",
                sa.String(length=16),
                nullable=False,
                server_default="standard",
            )
        )
        batch.add_column(sa.Column("expiry_warning_days", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("expiry_warning_days")
        batch.drop_column("payload_format")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("retry_until")
