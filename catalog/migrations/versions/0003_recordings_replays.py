"""Recordings as replays: recordings (from recording.finalized), each person's replay progress, and the raw
playback reports attendance verification will read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("angles", sa.JSON(), nullable=False),
        sa.Column("master_key", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('open', 'finalized')", name=op.f("ck_recordings_state")),
        sa.CheckConstraint("duration_s >= 0", name=op.f("ck_recordings_duration_s")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_recordings_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(op.f("ix_recordings_session_id"), "recordings", ["session_id"], unique=False)

    op.create_table(
        "replay_progress",
        sa.Column("person_id", ID, nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("position_s", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("angle", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_replay_progress_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_replay_progress_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("person_id", "recording_id", name=op.f("pk_replay_progress")),
    )
    op.create_index(
        op.f("ix_replay_progress_recording_id"), "replay_progress", ["recording_id"], unique=False
    )

    op.create_table(
        "playback_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("position_s", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("angle", sa.String(length=32), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_playback_reports_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_playback_reports_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playback_reports")),
    )
    op.create_index(
        "ix_playback_reports_person_recording_at",
        "playback_reports",
        ["person_id", "recording_id", "reported_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_playback_reports_recording_id"), "playback_reports", ["recording_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_playback_reports_recording_id"), table_name="playback_reports")
    op.drop_index("ix_playback_reports_person_recording_at", table_name="playback_reports")
    op.drop_table("playback_reports")
    op.drop_index(op.f("ix_replay_progress_recording_id"), table_name="replay_progress")
    op.drop_table("replay_progress")
    op.drop_index(op.f("ix_recordings_session_id"), table_name="recordings")
    op.drop_table("recordings")
