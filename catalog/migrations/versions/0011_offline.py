"""Offline training (线下培训): where an offline session is held, and who signed in and out of it with the
venue's rotating QR code (R8, R29, fraud 16).

- `sessions.location`: the place of an offline session (the service requires one for kind `offline`).
- `offline_attendance`: one row per sign-in (a sign-out closes it): the instants the server recorded,
  the code slot each act used, the client address and user agent of each act, and an audited staff
  correction (who, when, why) when a sign-out was missed or a time was wrong. A person has at most one
  open sign-in across all sessions (a partial unique index): nobody is at two venues at once.
- `offline_code_uses`: each code a person has used (session, person, slot): a code signs in or out once
  per person, so a replayed code (a photo, a forwarded link, the same scan sent twice) is refused.

Attendance is evidence: plain ids, no cascading foreign keys (as `live_intervals`).

Revision ID: 0011_offline
Revises: 0011_programme
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_offline"
down_revision = "0011_programme"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)
OPEN = "signed_out_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("location", sa.String(length=200), nullable=True))

    op.create_table(
        "offline_attendance",
        sa.Column("id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("signed_in_at", AT, nullable=False),
        sa.Column("signed_out_at", AT, nullable=True),
        sa.Column("in_code_slot", sa.BigInteger(), nullable=False),
        sa.Column("out_code_slot", sa.BigInteger(), nullable=True),
        sa.Column("sign_in_ip", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("sign_in_user_agent", sa.String(length=512), nullable=False, server_default=""),
        sa.Column("sign_out_ip", sa.String(length=64), nullable=True),
        sa.Column("sign_out_user_agent", sa.String(length=512), nullable=True),
        sa.Column("corrected_by", ID, nullable=True),
        sa.Column("corrected_at", AT, nullable=True),
        sa.Column("corrected_reason", sa.Text(), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offline_attendance")),
        sa.CheckConstraint(
            "signed_out_at IS NULL OR signed_out_at > signed_in_at", name=op.f("ck_offline_attendance_order")
        ),
    )
    op.create_index("ix_offline_attendance_session_person", "offline_attendance", ["session_id", "person_id"])
    op.create_index(
        "uq_offline_attendance_open_person",
        "offline_attendance",
        ["person_id"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    op.create_table(
        "offline_code_uses",
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("code_slot", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("used_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "person_id", "code_slot", name=op.f("pk_offline_code_uses")),
        sa.CheckConstraint("action IN ('sign_in', 'sign_out')", name=op.f("ck_offline_code_uses_action")),
    )


def downgrade() -> None:
    op.drop_table("offline_code_uses")
    op.drop_index("uq_offline_attendance_open_person", table_name="offline_attendance")
    op.drop_index("ix_offline_attendance_session_person", table_name="offline_attendance")
    op.drop_table("offline_attendance")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("location")
