"""Initial schema: environments, end users, tokens, keys, configs, auths, sessions, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(length=36), nullable=False)


def _environment_id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("environment_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f(f"fk_{table}_environment_id_environments"),
            ondelete="CASCADE",
        ),
    ]


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "environments",
        _id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("jwt_secret_ct", sa.LargeBinary(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("name", name=op.f("uq_environments_name")),
    )
    op.create_table(
        "end_users",
        _id(),
        *_environment_id("end_users"),
        sa.Column("external_user_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_end_users")),
        sa.UniqueConstraint(
            "environment_id",
            "external_user_id",
            name=op.f("uq_end_users_environment_id_external_user_id"),
        ),
    )
    op.create_table(
        "master_tokens",
        _id(),
        *_environment_id("master_tokens"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_master_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_master_tokens_token_hash")),
    )
    op.create_index(op.f("ix_master_tokens_environment_id"), "master_tokens", ["environment_id"])
    op.create_table(
        "jwt_keys",
        _id(),
        *_environment_id("jwt_keys"),
        sa.Column("kid", sa.String(length=255), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jwt_keys")),
        sa.UniqueConstraint("environment_id", "kid", name=op.f("uq_jwt_keys_environment_id_kid")),
    )
    op.create_table(
        "connector_configs",
        _id(),
        *_environment_id("connector_configs"),
        sa.Column("connector_key", sa.String(length=128), nullable=False),
        sa.Column("client_id", sa.String(length=512), nullable=True),
        sa.Column("consumer_key", sa.String(length=512), nullable=True),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=True),
        sa.Column("secrets_ct", sa.LargeBinary(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_configs")),
        sa.UniqueConstraint(
            "environment_id",
            "connector_key",
            name=op.f("uq_connector_configs_environment_id_connector_key"),
        ),
    )
    op.create_table(
        "authentications",
        _id(),
        *_environment_id("authentications"),
        sa.Column("end_user_id", sa.String(length=36), nullable=True),
        sa.Column("connector_key", sa.String(length=128), nullable=False),
        sa.Column("connector_version", sa.String(length=32), nullable=False),
        sa.Column("auth_type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("credentials_ct", sa.LargeBinary(), nullable=False),
        sa.Column("profile_ct", sa.LargeBinary(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("expires_at", nullable=True),
        _timestamp("refresh_due_at", nullable=True),
        _timestamp("hard_expires_at", nullable=True),
        _timestamp("delete_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'expired', 'invalid', 'revoked')",
            name=op.f("ck_authentications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["end_user_id"],
            ["end_users.id"],
            name=op.f("fk_authentications_end_user_id_end_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authentications")),
    )
    op.create_index(
        "ix_authentications_owner",
        "authentications",
        ["environment_id", "end_user_id", "connector_key"],
    )
    op.create_index(
        "ix_authentications_listing", "authentications", ["environment_id", "created_at", "id"]
    )
    op.create_index("ix_authentications_refresh_due_at", "authentications", ["refresh_due_at"])
    op.create_index("ix_authentications_delete_at", "authentications", ["delete_at"])
    op.create_table(
        "connect_sessions",
        _id(),
        *_environment_id("connect_sessions"),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("end_user_id", sa.String(length=36), nullable=False),
        sa.Column("connector_key", sa.String(length=128), nullable=False),
        sa.Column("connector_version", sa.String(length=32), nullable=False),
        sa.Column("authentication_id", sa.String(length=36), nullable=True),
        sa.Column("origin", sa.String(length=512), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["authentication_id"],
            ["authentications.id"],
            name=op.f("fk_connect_sessions_authentication_id_authentications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["end_user_id"],
            ["end_users.id"],
            name=op.f("fk_connect_sessions_end_user_id_end_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connect_sessions")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_connect_sessions_code_hash")),
    )
    for column in ("environment_id", "end_user_id", "authentication_id", "expires_at"):
        op.create_index(op.f(f"ix_connect_sessions_{column}"), "connect_sessions", [column])
    op.create_table(
        "audit_events",
        _id(),
        *_environment_id("audit_events"),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        _timestamp("created_at"),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        "ix_audit_events_listing", "audit_events", ["environment_id", "created_at", "id"]
    )
    op.create_index(
        "ix_audit_events_target", "audit_events", ["environment_id", "target_type", "target_id"]
    )


def downgrade() -> None:
    for table in (
        "audit_events",
        "connect_sessions",
        "authentications",
        "connector_configs",
        "jwt_keys",
        "master_tokens",
        "end_users",
        "environments",
    ):
        op.drop_table(table)
