"""Throttles: one locked row per key replaces the log of login attempts (rules in catalog/throttle.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "throttles",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_throttles")),
    )
    op.create_index(op.f("ix_throttles_last_at"), "throttles", ["last_at"], unique=False)
    # The attempts were only ever read to throttle; the counts above do that now.
    op.drop_index("ix_login_attempts_phone_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_ip_at", table_name="login_attempts")
    op.drop_table("login_attempts")


def downgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index("ix_login_attempts_ip_at", "login_attempts", ["ip", "at"], unique=False)
    op.create_index("ix_login_attempts_phone_at", "login_attempts", ["phone", "at"], unique=False)
    op.drop_index(op.f("ix_throttles_last_at"), table_name="throttles")
    op.drop_table("throttles")
