"""Scopes granted beyond an auth slot's: what the slot does with them, and what was recorded.

``solution_auth_slots.on_extra_scopes`` is ``flag`` (fill the slot and record the extra scopes)
or ``refuse``; ``solution_instance_auths.extra_scopes`` are the scopes the authentication held
beyond the slot's when it filled the slot.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("solution_auth_slots") as batch:
        batch.add_column(
            sa.Column("on_extra_scopes", sa.String(length=8), nullable=False, server_default="flag")
        )
    with op.batch_alter_table("solution_instance_auths") as batch:
        batch.add_column(
            sa.Column("extra_scopes", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("solution_instance_auths") as batch:
        batch.drop_column("extra_scopes")
    with op.batch_alter_table("solution_auth_slots") as batch:
        batch.drop_column("on_extra_scopes")
