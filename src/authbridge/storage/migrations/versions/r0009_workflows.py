"""The workflows a solution declares: ``solutions.workflows``, a JSON list of key, title and
trigger URL template (filled per instance when read).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("solutions") as batch:
        batch.add_column(
            sa.Column("workflows", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("solutions") as batch:
        batch.drop_column("workflows")
