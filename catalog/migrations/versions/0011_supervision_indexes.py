"""The bureau's supervision view: a snapshot of each year's figures per provider and per session, and the
index its one pass over the ledger reads by.

- `supervision_snapshots`, `supervision_provider_stats`, `supervision_session_stats`: computed by
  catalog.supervision.snapshot from the ledger, the evidence and the flags, replaced whole on each refresh
  (aggregating a year of ledger entries per request was 1–7 s at 2,000,000 entries: docs/performance.md).
- `ix_credit_entries_course_year_session` (course_id, credit_year, session_id): which sessions of a
  provider's courses were credited in a year, and its entries without a session, from the index alone.

Revision ID: 0011_supervision
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_supervision"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)
TOTAL = sa.Numeric(14, 2)


def _sums() -> list[sa.Column[object]]:
    return [
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("pending_xs", TOTAL, nullable=False),
        sa.Column("registered_xs", TOTAL, nullable=False),
        sa.Column("rejected_xs", TOTAL, nullable=False),
        sa.Column("revoked_xs", TOTAL, nullable=False),
        sa.Column("flags_open", sa.Integer(), nullable=False),
        sa.Column("flags_total", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "supervision_snapshots",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("refreshed_at", AT, nullable=False),
        sa.Column("took_s", sa.Float(), nullable=False),
        sa.Column("providers", sa.Integer(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_supervision_snapshots")),
    )
    op.create_table(
        "supervision_provider_stats",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("provider_org_id", ID, autoincrement=False, nullable=False),
        sa.Column("courses", sa.Integer(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("sessions_held", sa.Integer(), nullable=False),
        sa.Column("over_sessions", sa.Integer(), nullable=False),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("decided", sa.Integer(), nullable=False),
        sa.Column("latency_median_s", sa.Float(), nullable=True),
        sa.Column("latency_p90_s", sa.Float(), nullable=True),
        *_sums(),
        sa.PrimaryKeyConstraint("year", "provider_org_id", name=op.f("pk_supervision_provider_stats")),
    )
    op.create_table(
        "supervision_session_stats",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("session_id", ID, autoincrement=False, nullable=False),
        sa.Column("provider_org_id", ID, nullable=False),
        sa.Column("course_id", ID, nullable=False),
        sa.Column("starts_at", AT, nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("window_start", AT, nullable=True),
        sa.Column("window_end", AT, nullable=True),
        sa.Column("window_source", sa.String(length=16), nullable=False),
        sa.Column("allowed_xs", TOTAL, nullable=True),
        sa.Column("max_person_xs", TOTAL, nullable=False),
        sa.Column("credited", sa.Integer(), nullable=False),
        sa.Column("without_attendance", sa.Integer(), nullable=False),
        sa.Column("attending", sa.Integer(), nullable=False),
        sa.Column("attendees", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("over", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("year", "session_id", name=op.f("pk_supervision_session_stats")),
    )
    op.create_index(
        "ix_supervision_session_stats_provider",
        "supervision_session_stats",
        ["year", "provider_org_id", "starts_at"],
    )
    op.create_index(
        "ix_credit_entries_course_year_session", "credit_entries", ["course_id", "credit_year", "session_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_credit_entries_course_year_session", table_name="credit_entries")
    op.drop_index("ix_supervision_session_stats_provider", table_name="supervision_session_stats")
    op.drop_table("supervision_session_stats")
    op.drop_table("supervision_provider_stats")
    op.drop_table("supervision_snapshots")
