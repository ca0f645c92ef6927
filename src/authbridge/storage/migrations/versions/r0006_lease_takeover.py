"""Remember whose refresh lease was taken over: ``authentications.lease_taken_from``.

A refresher that takes over a lease its holder did not release (the holder died, maybe after
the provider had rotated the refresh token) records the holder, so that a refusal of the old
token that follows is reported as an interrupted refresh.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("authentications") as batch:
        batch.add_column(sa.Column("lease_taken_from", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authentications") as batch:
        batch.drop_column("lease_taken_from")
