"""Solutions and their instances: the embedded-integration model.

A *solution* is something the host offers its end users (say "Typeform to Sheets"). It declares
*auth slots* (one connector account each) and *config slots* (one JSON value each), every slot
known by an ``external_id`` the host chose, case-sensitive and unique within the solution.

A *solution instance* is one end user's copy of a solution: ``auth_values`` map auth slots to
authentications (rows of :class:`SolutionInstanceAuth`, so an authentication's uses can be
queried and a force-unique slot checked with an index), ``config_values`` map config slots to
JSON values. The rules (ownership, connector, scopes, force-unique, static, enabling) live in
``solutions/service.py``; the tables only keep the shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authbridge.storage.models.base import ID_LENGTH, Base, id_column, utcnow


class Solution(Base):
    """A solution; ``key`` is the host's handle for it (a YAML file is applied by key).

    ``workflows`` are the host's workflows every instance has: ``{key, title, trigger_url}``,
    the trigger URL a template filled per instance (``solutions/rules.workflows_of``).
    """

    __tablename__ = "solutions"
    __table_args__ = (UniqueConstraint("environment_id", "key"),)

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    workflows: Mapped[list[dict[str, str]]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    auth_slots: Mapped[list[AuthSlot]] = relationship(
        lazy="selectin", order_by="AuthSlot.position", cascade="all, delete-orphan"
    )
    config_slots: Mapped[list[ConfigSlot]] = relationship(
        lazy="selectin", order_by="ConfigSlot.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Solution(id={self.id!r}, key={self.key!r})"


class AuthSlot(Base):
    """One connector account a solution needs.

    ``scopes`` are the scopes end users get (they cannot choose them). ``hidden`` slots are not
    shown in the configuration wizard (the host fills them, e.g. by import); a ``static`` slot is
    hidden and always holds ``static_auth_id``, one authentication shared by every end user;
    ``force_unique`` makes the end user connect a new account for each instance.
    ``on_extra_scopes`` says what an authentication granted more scopes than ``scopes`` does:
    ``flag`` (it fills the slot, the extra scopes recorded on the instance) or ``refuse``.
    """

    __tablename__ = "solution_auth_slots"
    __table_args__ = (UniqueConstraint("solution_id", "external_id"),)

    id: Mapped[str] = id_column()
    solution_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("solutions.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    connector_key: Mapped[str] = mapped_column(String(128))
    connector_version: Mapped[str] = mapped_column(String(32))
    connector_variant: Mapped[str | None] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    static: Mapped[bool] = mapped_column(Boolean, default=False)
    static_auth_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("authentications.id", ondelete="SET NULL")
    )
    force_unique: Mapped[bool] = mapped_column(Boolean, default=False)
    on_extra_scopes: Mapped[str] = mapped_column(String(8), default="flag", server_default="flag")
    position: Mapped[int] = mapped_column(default=0)

    def __repr__(self) -> str:
        return f"AuthSlot(external_id={self.external_id!r}, connector_key={self.connector_key!r})"


class ConfigSlot(Base):
    """One configuration value a solution needs: a JSON Schema, a default, hidden or not."""

    __tablename__ = "solution_config_slots"
    __table_args__ = (UniqueConstraint("solution_id", "external_id"),)

    id: Mapped[str] = id_column()
    solution_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("solutions.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    json_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    default: Mapped[Any] = mapped_column(JSON, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(default=0)

    def __repr__(self) -> str:
        return f"ConfigSlot(external_id={self.external_id!r})"


class SolutionInstance(Base):
    """One end user's copy of a solution; ``version`` grows by one on every change."""

    __tablename__ = "solution_instances"
    __table_args__ = (
        Index("ix_solution_instances_owner", "environment_id", "end_user_id", "created_at"),
        Index("ix_solution_instances_listing", "environment_id", "created_at", "id"),
    )

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("environments.id", ondelete="CASCADE")
    )
    solution_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("solutions.id", ondelete="CASCADE"), index=True
    )
    end_user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("end_users.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    config_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    auth_values: Mapped[list[SolutionInstanceAuth]] = relationship(
        lazy="selectin", order_by="SolutionInstanceAuth.external_id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"SolutionInstance(id={self.id!r}, enabled={self.enabled!r})"


class SolutionInstanceAuth(Base):
    """One auth slot of one instance filled with one authentication; ``extra_scopes`` are the
    scopes it held beyond the slot's when it filled it (flagged, see ``AuthSlot``)."""

    __tablename__ = "solution_instance_auths"

    instance_id: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("solution_instances.id", ondelete="CASCADE"),
        primary_key=True,
    )
    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    auth_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("authentications.id", ondelete="CASCADE"), index=True
    )
    extra_scopes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))

    def __repr__(self) -> str:
        return f"SolutionInstanceAuth(external_id={self.external_id!r}, auth_id={self.auth_id!r})"
