"""Catalog core: organizations, people, roles, login sessions and throttling, courses, sessions, enrollments.

Written against SQLite and PostgreSQL alike; on PostgreSQL a pg_trgm GIN index speeds up the course
search (ILIKE '%…%'), when the extension can be installed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
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

    op.create_table(
        "organizations",
        sa.Column("id", ID, nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unified_social_credit_code", sa.String(length=18), nullable=True),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('hrss_bureau', 'industry_dept', 'ce_association', 'ce_base', "
            "'training_institution', 'employer')",
            name=op.f("ck_organizations_type"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organizations.id"],
            name=op.f("fk_organizations_parent_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint(
            "unified_social_credit_code", name=op.f("uq_organizations_unified_social_credit_code")
        ),
    )
    op.create_index(op.f("ix_organizations_type"), "organizations", ["type"], unique=False)

    op.create_table(
        "courses",
        sa.Column("id", ID, nullable=False),
        sa.Column("provider_org_id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("industry", sa.String(length=100), nullable=False),
        sa.Column("specialty_tags", sa.JSON(), nullable=False),
        sa.Column("credit_hours", sa.Numeric(6, 1), nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("category IN ('public', 'professional')", name=op.f("ck_courses_category")),
        sa.CheckConstraint(
            "delivery IN ('live', 'recorded', 'external', 'offline')", name=op.f("ck_courses_delivery")
        ),
        sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name=op.f("ck_courses_status")),
        sa.CheckConstraint("capacity IS NULL OR capacity > 0", name=op.f("ck_courses_capacity")),
        sa.CheckConstraint("credit_hours >= 0", name=op.f("ck_courses_credit_hours")),
        sa.ForeignKeyConstraint(
            ["provider_org_id"],
            ["organizations.id"],
            name=op.f("fk_courses_provider_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    op.create_index(op.f("ix_courses_category"), "courses", ["category"], unique=False)
    op.create_index(op.f("ix_courses_industry"), "courses", ["industry"], unique=False)
    op.create_index(op.f("ix_courses_provider_org_id"), "courses", ["provider_org_id"], unique=False)
    op.create_index(op.f("ix_courses_status"), "courses", ["status"], unique=False)

    op.create_table(
        "persons",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("employer_org_id", ID, nullable=True),
        sa.Column("id_card_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["employer_org_id"],
            ["organizations.id"],
            name=op.f("fk_persons_employer_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
        sa.UniqueConstraint("id_card_hash", name=op.f("uq_persons_id_card_hash")),
        sa.UniqueConstraint("phone", name=op.f("uq_persons_phone")),
    )
    op.create_index(op.f("ix_persons_employer_org_id"), "persons", ["employer_org_id"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_auth_sessions_person_id_persons"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    op.create_index(op.f("ix_auth_sessions_expires_at"), "auth_sessions", ["expires_at"], unique=False)
    op.create_index(op.f("ix_auth_sessions_person_id"), "auth_sessions", ["person_id"], unique=False)

    op.create_table(
        "enrollments",
        sa.Column("id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("course_id", ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("source IN ('self', 'employer')", name=op.f("ck_enrollments_source")),
        sa.CheckConstraint("status IN ('enrolled', 'withdrawn')", name=op.f("ck_enrollments_status")),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_enrollments_course_id_courses"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_enrollments_person_id_persons"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index("ix_enrollments_course_status", "enrollments", ["course_id", "status"], unique=False)
    op.create_index(op.f("ix_enrollments_person_id"), "enrollments", ["person_id"], unique=False)
    op.create_index(
        "uq_enrollments_active",
        "enrollments",
        ["person_id", "course_id"],
        unique=True,
        sqlite_where=sa.text("status = 'enrolled'"),
        postgresql_where=sa.text("status = 'enrolled'"),
    )

    op.create_table(
        "role_assignments",
        sa.Column("id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('learner', 'expert', 'provider_admin', 'employer_admin', 'reviewer', "
            "'bureau', 'admin')",
            name=op.f("ck_role_assignments_role"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_role_assignments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_role_assignments_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
        sa.UniqueConstraint("person_id", "role", "org_id", name="uq_role_assignments_person_role_org"),
    )
    op.create_index(op.f("ix_role_assignments_org_id"), "role_assignments", ["org_id"], unique=False)
    op.create_index(op.f("ix_role_assignments_person_id"), "role_assignments", ["person_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("course_id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scheduled_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actual_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_platform", sa.String(length=16), nullable=False),
        sa.Column("external_ids", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "external_platform IN ('none', 'tencent', 'dingtalk_conf', 'dingtalk_live')",
            name=op.f("ck_sessions_external_platform"),
        ),
        sa.CheckConstraint("kind IN ('live', 'external', 'offline')", name=op.f("ck_sessions_kind")),
        sa.CheckConstraint("scheduled_end > scheduled_start", name=op.f("ck_sessions_schedule")),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_sessions_course_id_courses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_course_id"), "sessions", ["course_id"], unique=False)
    op.create_index(op.f("ix_sessions_scheduled_start"), "sessions", ["scheduled_start"], unique=False)

    op.create_table(
        "session_experts",
        sa.Column("session_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_session_experts_person_id_persons"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_experts_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "person_id", name=op.f("pk_session_experts")),
    )
    op.create_index(op.f("ix_session_experts_person_id"), "session_experts", ["person_id"], unique=False)

    _trigram_index_on_postgres()


def _trigram_index_on_postgres() -> None:
    """A GIN trigram index for ILIKE search, only where pg_trgm exists and we may install it."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        return
    # A savepoint, so that lacking the privilege to create the extension does not abort the migration.
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return
    op.execute("CREATE INDEX ix_courses_title_trgm ON courses USING gin (title gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_courses_title_trgm")
    op.drop_index(op.f("ix_session_experts_person_id"), table_name="session_experts")

    op.drop_table("session_experts")
    op.drop_index(op.f("ix_sessions_scheduled_start"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_course_id"), table_name="sessions")

    op.drop_table("sessions")
    op.drop_index(op.f("ix_role_assignments_person_id"), table_name="role_assignments")
    op.drop_index(op.f("ix_role_assignments_org_id"), table_name="role_assignments")

    op.drop_table("role_assignments")
    op.drop_index("uq_enrollments_active", table_name="enrollments")
    op.drop_index(op.f("ix_enrollments_person_id"), table_name="enrollments")
    op.drop_index("ix_enrollments_course_status", table_name="enrollments")

    op.drop_table("enrollments")
    op.drop_index(op.f("ix_auth_sessions_person_id"), table_name="auth_sessions")
    op.drop_index(op.f("ix_auth_sessions_expires_at"), table_name="auth_sessions")

    op.drop_table("auth_sessions")
    op.drop_index(op.f("ix_persons_employer_org_id"), table_name="persons")

    op.drop_table("persons")
    op.drop_index(op.f("ix_courses_status"), table_name="courses")
    op.drop_index(op.f("ix_courses_provider_org_id"), table_name="courses")
    op.drop_index(op.f("ix_courses_industry"), table_name="courses")
    op.drop_index(op.f("ix_courses_category"), table_name="courses")

    op.drop_table("courses")
    op.drop_index(op.f("ix_organizations_type"), table_name="organizations")

    op.drop_table("organizations")
    op.drop_index("ix_login_attempts_phone_at", table_name="login_attempts")
    op.drop_index("ix_login_attempts_ip_at", table_name="login_attempts")

    op.drop_table("login_attempts")
