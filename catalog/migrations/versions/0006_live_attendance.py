"""Live attendance: the present intervals of learners' live viewers, from viewer.joined / viewer.left.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "live_intervals",
        sa.Column("id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("peer_id", sa.String(length=255), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_live_intervals_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_live_intervals_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_intervals")),
        sa.UniqueConstraint(
            "session_id", "peer_id", "joined_at", name="uq_live_intervals_session_peer_joined"
        ),
    )
    op.create_index("ix_live_intervals_session_person", "live_intervals", ["session_id", "person_id"])
    op.create_index(op.f("ix_live_intervals_person_id"), "live_intervals", ["person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_live_intervals_person_id"), table_name="live_intervals")
    op.drop_index("ix_live_intervals_session_person", table_name="live_intervals")
    op.drop_table("live_intervals")
