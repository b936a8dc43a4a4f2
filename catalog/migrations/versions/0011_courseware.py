"""Shared courseware reviewed by the CE association (issue 15, R27): experts' courseware, its versions
(each uploaded, checked, rendered to HLS and reviewed on its own), the association's review decisions
(append-only) and resumable direct-to-object-store uploads.

- `courseware`: what an expert shares (title, category, description); `course_id` is the recorded course
  learners see once a version is approved.
- `courseware_versions`: one uploaded file (video or PDF) with its check (`processing`), its HLS rendition
  (`recording_id`, a `recordings` row) and its review state. A new version is reviewed again; the old
  approved one stays until the new one is approved (then it is `superseded`).
- `courseware_reviews`: one immutable row per reviewer decision (approve, reject, revoke).
- `courseware_uploads`: an S3 multipart upload in progress (or the embedded store's equivalent), so a
  browser can resume after a cut connection; the bytes never pass through the application.

Revision ID: 0011_courseware
Revises: 0011_offline
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_courseware"
down_revision = "0011_offline"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)

APPEND_ONLY = ("courseware_reviews",)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, nullable=False)


def upgrade() -> None:
    op.create_table(
        "courseware",
        _id(),
        sa.Column("owner_person_id", ID, nullable=False),
        sa.Column("owner_org_id", ID, nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("course_id", ID, nullable=True),
        # The draft course holding the sessions of versions not (or no longer) approved (catalog.courseware
        # .placement): their media belong to no course a learner can enroll in.
        sa.Column("staging_course_id", ID, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courseware")),
        sa.ForeignKeyConstraint(
            ["owner_person_id"],
            ["persons.id"],
            name="fk_courseware_owner_person_id_persons",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("category IN ('public', 'professional')", name=op.f("ck_courseware_category")),
    )
    op.create_index(op.f("ix_courseware_owner_person_id"), "courseware", ["owner_person_id"])
    op.create_index(op.f("ix_courseware_course_id"), "courseware", ["course_id"])

    op.create_table(
        "courseware_versions",
        _id(),
        sa.Column("courseware_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("media_kind", sa.String(length=8), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("processing", sa.String(length=16), nullable=False),
        sa.Column("check_error", sa.Text(), nullable=True),
        # When a processor took the version (catalog.courseware.processing): one process works on it.
        sa.Column("processing_claimed_at", AT, nullable=True),
        sa.Column("review_state", sa.String(length=16), nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        # The version's own session: its rendition's keys (hls/{session_id}/...) and media cookie are
        # its alone.
        sa.Column("session_id", ID, nullable=True),
        sa.Column("slides_object_key", sa.String(length=1024), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("submitted_at", AT, nullable=True),
        sa.Column("decided_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courseware_versions")),
        sa.ForeignKeyConstraint(
            ["courseware_id"],
            ["courseware.id"],
            name="fk_courseware_versions_courseware_id_courseware",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("courseware_id", "version", name="uq_courseware_versions_courseware_id_version"),
        sa.CheckConstraint("media_kind IN ('video', 'pdf')", name=op.f("ck_courseware_versions_media_kind")),
        sa.CheckConstraint(
            "processing IN ('uploading', 'processing', 'ready', 'failed')",
            name=op.f("ck_courseware_versions_processing"),
        ),
        sa.CheckConstraint(
            "review_state IN ('draft', 'submitted', 'approved', 'rejected', 'revoked', 'superseded')",
            name=op.f("ck_courseware_versions_review_state"),
        ),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_courseware_versions_size_bytes")),
    )
    op.create_index("ix_courseware_versions_review_state", "courseware_versions", ["review_state"])
    op.create_index("ix_courseware_versions_recording_id", "courseware_versions", ["recording_id"])

    op.create_table(
        "courseware_reviews",
        _id(),
        sa.Column("version_id", ID, nullable=False),
        sa.Column("reviewer_person_id", ID, nullable=False),
        sa.Column("reviewer_org_id", ID, nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("comments", sa.Text(), nullable=False, server_default=""),
        sa.Column("decided_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courseware_reviews")),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected', 'revoked')", name=op.f("ck_courseware_reviews_decision")
        ),
    )
    op.create_index(op.f("ix_courseware_reviews_version_id"), "courseware_reviews", ["version_id"])

    op.create_table(
        "courseware_uploads",
        _id(),
        sa.Column("owner_person_id", ID, nullable=False),
        sa.Column("version_id", ID, nullable=True),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("s3_upload_id", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("expires_at", AT, nullable=False),
        sa.Column("completed_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courseware_uploads")),
        sa.CheckConstraint(
            "state IN ('open', 'completed', 'aborted')", name=op.f("ck_courseware_uploads_state")
        ),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_courseware_uploads_size_bytes")),
        sa.CheckConstraint("part_size > 0", name=op.f("ck_courseware_uploads_part_size")),
    )
    op.create_index(op.f("ix_courseware_uploads_owner_person_id"), "courseware_uploads", ["owner_person_id"])
    op.create_index("ix_courseware_uploads_state_expires", "courseware_uploads", ["state", "expires_at"])

    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(
                f"""
                CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
                BEGIN
                    RAISE EXCEPTION '{table} is append-only: % refused', TG_OP;
                END;
                $$ LANGUAGE plpgsql
                """
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )


def downgrade() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        else:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    op.drop_index("ix_courseware_uploads_state_expires", table_name="courseware_uploads")
    op.drop_index(op.f("ix_courseware_uploads_owner_person_id"), table_name="courseware_uploads")
    op.drop_table("courseware_uploads")
    op.drop_index(op.f("ix_courseware_reviews_version_id"), table_name="courseware_reviews")
    op.drop_table("courseware_reviews")
    op.drop_index("ix_courseware_versions_recording_id", table_name="courseware_versions")
    op.drop_index("ix_courseware_versions_review_state", table_name="courseware_versions")
    op.drop_table("courseware_versions")
    op.drop_index(op.f("ix_courseware_course_id"), table_name="courseware")
    op.drop_index(op.f("ix_courseware_owner_person_id"), table_name="courseware")
    op.drop_table("courseware")
