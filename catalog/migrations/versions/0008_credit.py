"""Attendance evidence and credit: policy versions, client sessions, heartbeats, attention, HLS fetches,
presence checks and answers, the credit ledger, fraud flags, the audit log, session time corrections.
Live intervals and playback reports lose their cascading foreign keys: evidence behind a credit outlives
the recording, the session and the person it names.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("live_intervals") as batch:
        batch.drop_constraint("fk_live_intervals_session_id_sessions", type_="foreignkey")
        batch.drop_constraint("fk_live_intervals_person_id_persons", type_="foreignkey")
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("playback_reports") as batch:
        batch.drop_constraint("fk_playback_reports_person_id_persons", type_="foreignkey")
        batch.drop_constraint("fk_playback_reports_recording_id_recordings", type_="foreignkey")

    op.create_table(
        "credit_policies",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_credit_policies")),
    )
    op.create_table(
        "client_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("opened_at", AT, nullable=False),
        sa.Column("superseded_at", AT, nullable=True),
        sa.Column("superseded_by", sa.String(length=64), nullable=True),
        sa.Column("first_viewing", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_sessions")),
    )
    op.create_index("ix_client_sessions_person_opened", "client_sessions", ["person_id", "opened_at"])
    op.create_index(op.f("ix_client_sessions_session_id"), "client_sessions", ["session_id"])
    op.create_index(op.f("ix_client_sessions_recording_id"), "client_sessions", ["recording_id"])
    op.create_table(
        "heartbeats",
        _id(),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("position_s", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("angle", sa.String(length=32), nullable=True),
        sa.Column("media_sequence", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeats")),
        sa.UniqueConstraint("client_id", "seq", name="uq_heartbeats_client_seq"),
    )
    op.create_index("ix_heartbeats_person_at", "heartbeats", ["person_id", "at"])
    op.create_table(
        "attention_changes",
        _id(),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("conn_id", sa.String(length=64), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attention_changes")),
        sa.UniqueConstraint("session_id", "conn_id", "at", "visible", name="uq_attention_changes_event"),
    )
    op.create_index("ix_attention_changes_session_person", "attention_changes", ["session_id", "person_id"])
    op.create_table(
        "hls_fetches",
        _id(),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hls_fetches")),
        sa.UniqueConstraint("session_id", "person_id", "key", name="uq_hls_fetches_session_person_key"),
    )
    op.create_table(
        "presence_checks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("person_id", ID, nullable=True),
        sa.Column("position_s", sa.Float(), nullable=True),
        sa.Column("issued_at", AT, nullable=False),
        sa.Column("deadline_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_checks")),
    )
    op.create_index("ix_presence_checks_session", "presence_checks", ["session_id"])
    op.create_index(op.f("ix_presence_checks_client_id"), "presence_checks", ["client_id"])
    op.create_table(
        "presence_answers",
        sa.Column("check_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("answered_at", AT, nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("check_id", "person_id", name=op.f("pk_presence_answers")),
    )
    op.create_table(
        "credit_entries",
        _id(),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("course_id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("credit_year", sa.Integer(), nullable=False),
        sa.Column("credit_day", sa.String(length=10), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=False),
        sa.Column("xueshi", sa.Numeric(6, 2), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("computed_at", AT, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reversal_of_id", ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
        sa.UniqueConstraint("reversal_of_id", name=op.f("uq_credit_entries_reversal_of_id")),
    )
    op.create_index("ix_credit_entries_person_year", "credit_entries", ["person_id", "credit_year"])
    op.create_index("ix_credit_entries_session", "credit_entries", ["session_id"])
    op.create_index(op.f("ix_credit_entries_course_id"), "credit_entries", ["course_id"])
    op.create_table(
        "fraud_flags",
        _id(),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("course_id", ID, nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("resolved_by", ID, nullable=True),
        sa.Column("resolved_at", AT, nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_flags")),
        sa.UniqueConstraint("person_id", "code", "subject", name="uq_fraud_flags_person_code_subject"),
    )
    op.create_index("ix_fraud_flags_status_created", "fraud_flags", ["status", "created_at"])
    op.create_index(op.f("ix_fraud_flags_person_id"), "fraud_flags", ["person_id"])
    op.create_index(op.f("ix_fraud_flags_session_id"), "fraud_flags", ["session_id"])
    op.create_index(op.f("ix_fraud_flags_course_id"), "fraud_flags", ["course_id"])
    op.create_table(
        "audit_log",
        _id(),
        sa.Column("actor_person_id", ID, nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"])
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_table(
        "session_time_corrections",
        _id(),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("actual_start", AT, nullable=False),
        sa.Column("actual_end", AT, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("corrected_by", ID, nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_time_corrections")),
    )
    op.create_index(
        op.f("ix_session_time_corrections_session_id"), "session_time_corrections", ["session_id"]
    )


def downgrade() -> None:
    for table in (
        "session_time_corrections",
        "audit_log",
        "fraud_flags",
        "credit_entries",
        "presence_answers",
        "presence_checks",
        "hls_fetches",
        "attention_changes",
        "heartbeats",
        "client_sessions",
        "credit_policies",
    ):
        op.drop_table(table)
    # Evidence whose recording, session or person is gone cannot get its foreign key back.
    op.execute("DELETE FROM playback_reports WHERE recording_id NOT IN (SELECT id FROM recordings)")
    op.execute("DELETE FROM playback_reports WHERE person_id NOT IN (SELECT id FROM persons)")
    op.execute("DELETE FROM live_intervals WHERE session_id NOT IN (SELECT id FROM sessions)")
    op.execute("DELETE FROM live_intervals WHERE person_id NOT IN (SELECT id FROM persons)")
    with op.batch_alter_table("playback_reports") as batch:
        batch.create_foreign_key(
            "fk_playback_reports_person_id_persons", "persons", ["person_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            "fk_playback_reports_recording_id_recordings",
            "recordings",
            ["recording_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("live_intervals") as batch:
        batch.drop_column("reason")
        batch.create_foreign_key(
            "fk_live_intervals_session_id_sessions", "sessions", ["session_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            "fk_live_intervals_person_id_persons", "persons", ["person_id"], ["id"], ondelete="CASCADE"
        )
