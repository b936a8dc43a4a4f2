"""Indexes for course search: bigrams for Chinese words, newest-first browsing, next-session sorting.

pg_trgm extracts no trigram from a two-character pattern, and most Chinese search words (港口, 焊接)
have two characters, so PostgreSQL gets a GIN index over the character bigrams of one search text
(title, industry, description). courses.search uses it as a filter and keeps ILIKE as the exact check.
Measured in docs/performance.md.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The same expression as catalog.courses.SEARCH_TEXT_SQL, or the planner cannot use the index.
SEARCH_TEXT = "(title || ' ' || industry || ' ' || description)"


def upgrade() -> None:
    # One per sort of the catalog page: a broad word matches thousands of courses, and walking the
    # sort's index with the filter stops after a page instead of sorting every match.
    op.create_index("ix_courses_status_created", "courses", ["status", "created_at", "id"])
    op.create_index("ix_courses_status_title", "courses", ["status", "title", "id"])
    op.create_index("ix_courses_status_credit_hours", "courses", ["status", "credit_hours", "id"])
    op.create_index("ix_sessions_course_start", "sessions", ["course_id", "scheduled_start"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION catalog_bigrams(t text) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
            SELECT coalesce(array_agg(DISTINCT lower(substr(t, i, 2))), '{}')
            FROM generate_series(1, greatest(length(t) - 1, 0)) AS i
        $$
        """
    )
    op.execute(
        f"CREATE INDEX ix_courses_search_bigrams ON courses USING gin (catalog_bigrams({SEARCH_TEXT}))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_courses_search_bigrams")
        op.execute("DROP FUNCTION IF EXISTS catalog_bigrams(text)")
    op.drop_index("ix_sessions_course_start", table_name="sessions")
    op.drop_index("ix_courses_status_credit_hours", table_name="courses")
    op.drop_index("ix_courses_status_title", table_name="courses")
    op.drop_index("ix_courses_status_created", table_name="courses")
