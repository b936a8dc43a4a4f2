"""The programme beyond courses (issue 15): 师承带徒 agreements and employers' annual training plans.

- `mentorships`: one agreement per mentor, mentee and year while not cancelled (partial unique index),
  with both confirmations, the completion and the ledger entry it posted.
- `credit_entries.course_id` becomes nullable: a mentorship's fixed award belongs to no course.
- `training_plans` (one per employer and year), `training_plan_items` (a course or a category, a target
  per person), `training_plan_targets` (the staff an item targets); `enrollments.plan_item_id` names the
  item an employer enrolled someone from (no foreign key: enrollments are history, and only items of
  published plans, which are never deleted, are named).

Revision ID: 0011_programme
Revises: 0011_supervision
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_programme"
down_revision = "0011_supervision"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mentorships",
        sa.Column("id", ID, nullable=False),
        sa.Column("mentor_person_id", ID, nullable=False),
        sa.Column("mentee_person_id", ID, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", ID, nullable=False),
        sa.Column("proposed_at", AT, nullable=False),
        sa.Column("mentor_confirmed_at", AT, nullable=True),
        sa.Column("mentee_confirmed_at", AT, nullable=True),
        sa.Column("cancelled_at", AT, nullable=True),
        sa.Column("completion_summary", sa.Text(), nullable=True),
        sa.Column("completed_at", AT, nullable=True),
        sa.Column("mentee_completion_confirmed_at", AT, nullable=True),
        sa.Column("credit_entry_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorships")),
        sa.ForeignKeyConstraint(
            ["mentor_person_id"],
            ["persons.id"],
            name=op.f("fk_mentorships_mentor_person_id_persons"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["mentee_person_id"],
            ["persons.id"],
            name=op.f("fk_mentorships_mentee_person_id_persons"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "status IN ('proposed', 'confirmed', 'completed', 'cancelled')",
            name=op.f("ck_mentorships_status"),
        ),
        sa.CheckConstraint("mentor_person_id <> mentee_person_id", name=op.f("ck_mentorships_not_self")),
        sa.CheckConstraint("start_date <= end_date", name=op.f("ck_mentorships_period")),
    )
    op.create_index(
        "uq_mentorships_pair_year",
        "mentorships",
        ["mentor_person_id", "mentee_person_id", "year"],
        unique=True,
        sqlite_where=sa.text("status <> 'cancelled'"),
        postgresql_where=sa.text("status <> 'cancelled'"),
    )
    op.create_index("ix_mentorships_mentor_year", "mentorships", ["mentor_person_id", "year"])
    op.create_index("ix_mentorships_mentee_year", "mentorships", ["mentee_person_id", "year"])

    with op.batch_alter_table("credit_entries") as batch:
        batch.alter_column("course_id", existing_type=ID, nullable=True)

    op.create_table(
        "training_plans",
        sa.Column("id", ID, nullable=False),
        sa.Column("employer_org_id", ID, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("published_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_plans")),
        sa.ForeignKeyConstraint(
            ["employer_org_id"],
            ["organizations.id"],
            name=op.f("fk_training_plans_employer_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("employer_org_id", "year", name="uq_training_plans_employer_org_id_year"),
        sa.CheckConstraint("status IN ('draft', 'published')", name=op.f("ck_training_plans_status")),
    )
    op.create_table(
        "training_plan_items",
        sa.Column("id", ID, nullable=False),
        sa.Column("plan_id", ID, nullable=False),
        sa.Column("course_id", ID, nullable=True),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("target_xueshi", sa.Numeric(6, 1), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_plan_items")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["training_plans.id"],
            name=op.f("fk_training_plan_items_plan_id_training_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_training_plan_items_course_id_courses"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "(course_id IS NULL) <> (category IS NULL)",
            name=op.f("ck_training_plan_items_course_or_category"),
        ),
        sa.CheckConstraint(
            "category IS NULL OR category IN ('public', 'professional')",
            name=op.f("ck_training_plan_items_category"),
        ),
        sa.CheckConstraint("target_xueshi > 0", name=op.f("ck_training_plan_items_target")),
    )
    op.create_index(op.f("ix_training_plan_items_plan_id"), "training_plan_items", ["plan_id"])
    op.create_table(
        "training_plan_targets",
        sa.Column("item_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "person_id", name=op.f("pk_training_plan_targets")),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["training_plan_items.id"],
            name=op.f("fk_training_plan_targets_item_id_training_plan_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_training_plan_targets_person_id_persons"),
            ondelete="RESTRICT",
        ),
    )
    op.create_index(op.f("ix_training_plan_targets_person_id"), "training_plan_targets", ["person_id"])

    op.add_column("enrollments", sa.Column("plan_item_id", ID, nullable=True))
    op.create_index(op.f("ix_enrollments_plan_item_id"), "enrollments", ["plan_item_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_enrollments_plan_item_id"), table_name="enrollments")
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("plan_item_id")
    op.drop_index(op.f("ix_training_plan_targets_person_id"), table_name="training_plan_targets")
    op.drop_table("training_plan_targets")
    op.drop_index(op.f("ix_training_plan_items_plan_id"), table_name="training_plan_items")
    op.drop_table("training_plan_items")
    op.drop_table("training_plans")
    # Fails while course-less entries (mentorship awards) exist: the ledger is append-only, and an entry
    # is never deleted to make a downgrade possible.
    with op.batch_alter_table("credit_entries") as batch:
        batch.alter_column("course_id", existing_type=ID, nullable=False)
    op.drop_index("ix_mentorships_mentee_year", table_name="mentorships")
    op.drop_index("ix_mentorships_mentor_year", table_name="mentorships")
    op.drop_index("uq_mentorships_pair_year", table_name="mentorships")
    op.drop_table("mentorships")
