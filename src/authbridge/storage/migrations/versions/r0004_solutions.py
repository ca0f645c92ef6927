"""Solutions, auth and config slots, solution instances, themes; connector variants.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _timestamps() -> list[SchemaItem]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("authentications", sa.Column("connector_variant", sa.String(length=64)))
    with op.batch_alter_table("connector_configs") as batch:
        batch.add_column(
            sa.Column("variant", sa.String(length=64), nullable=False, server_default="")
        )
        batch.drop_constraint("uq_connector_configs_environment_id_connector_key", type_="unique")
        batch.create_unique_constraint(
            "uq_connector_configs_environment_id_connector_key_variant",
            ["environment_id", "connector_key", "variant"],
        )

    op.create_table(
        "solutions",
        *_id("solutions"),
        sa.Column("environment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_timestamps(),
        _foreign("solutions", "environment_id", "environments", "CASCADE"),
        sa.UniqueConstraint("environment_id", "key", name=op.f("uq_solutions_environment_id_key")),
    )
    op.create_table(
        "solution_auth_slots",
        *_id("solution_auth_slots"),
        sa.Column("solution_id", sa.String(length=36), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("connector_key", sa.String(length=128), nullable=False),
        sa.Column("connector_version", sa.String(length=32), nullable=False),
        sa.Column("connector_variant", sa.String(length=64), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("static", sa.Boolean(), nullable=False),
        sa.Column("static_auth_id", sa.String(length=36), nullable=True),
        sa.Column("force_unique", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _foreign("solution_auth_slots", "solution_id", "solutions", "CASCADE"),
        _foreign("solution_auth_slots", "static_auth_id", "authentications", "SET NULL"),
        sa.UniqueConstraint(
            "solution_id",
            "external_id",
            name=op.f("uq_solution_auth_slots_solution_id_external_id"),
        ),
    )
    op.create_table(
        "solution_config_slots",
        *_id("solution_config_slots"),
        sa.Column("solution_id", sa.String(length=36), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=False),
        sa.Column("default", sa.JSON(), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _foreign("solution_config_slots", "solution_id", "solutions", "CASCADE"),
        sa.UniqueConstraint(
            "solution_id",
            "external_id",
            name=op.f("uq_solution_config_slots_solution_id_external_id"),
        ),
    )
    op.create_table(
        "solution_instances",
        *_id("solution_instances"),
        sa.Column("environment_id", sa.String(length=36), nullable=False),
        sa.Column("solution_id", sa.String(length=36), nullable=False),
        sa.Column("end_user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config_values", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.Column("version", sa.Integer(), nullable=False),
        _foreign("solution_instances", "environment_id", "environments", "CASCADE"),
        _foreign("solution_instances", "solution_id", "solutions", "CASCADE"),
        _foreign("solution_instances", "end_user_id", "end_users", "CASCADE"),
    )
    op.create_index(
        "ix_solution_instances_owner",
        "solution_instances",
        ["environment_id", "end_user_id", "created_at"],
    )
    op.create_index(
        "ix_solution_instances_listing",
        "solution_instances",
        ["environment_id", "created_at", "id"],
    )
    op.create_index(
        op.f("ix_solution_instances_solution_id"), "solution_instances", ["solution_id"]
    )
    op.create_table(
        "solution_instance_auths",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("auth_id", sa.String(length=36), nullable=False),
        _foreign("solution_instance_auths", "instance_id", "solution_instances", "CASCADE"),
        _foreign("solution_instance_auths", "auth_id", "authentications", "CASCADE"),
        sa.PrimaryKeyConstraint(
            "instance_id", "external_id", name=op.f("pk_solution_instance_auths")
        ),
    )
    op.create_index(
        op.f("ix_solution_instance_auths_auth_id"), "solution_instance_auths", ["auth_id"]
    )
    op.create_table(
        "themes",
        *_id("themes"),
        sa.Column("environment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.String(length=2048), nullable=True),
        sa.Column("css", sa.Text(), nullable=False),
        *_timestamps(),
        _foreign("themes", "environment_id", "environments", "CASCADE"),
        sa.UniqueConstraint("environment_id", "key", name=op.f("uq_themes_environment_id_key")),
    )


def downgrade() -> None:
    for table in (
        "themes",
        "solution_instance_auths",
        "solution_instances",
        "solution_config_slots",
        "solution_auth_slots",
        "solutions",
    ):
        op.drop_table(table)
    with op.batch_alter_table("connector_configs") as batch:
        batch.drop_constraint(
            "uq_connector_configs_environment_id_connector_key_variant", type_="unique"
        )
        batch.create_unique_constraint(
            "uq_connector_configs_environment_id_connector_key",
            ["environment_id", "connector_key"],
        )
        batch.drop_column("variant")
    op.drop_column("authentications", "connector_variant")
