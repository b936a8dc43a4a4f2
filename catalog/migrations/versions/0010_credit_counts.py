"""Credit that counts: employers' decisions on ledger entries, certificates, the supervising sector of
organizations, and an audit log that nothing can rewrite.

- `organizations.sector`: the industry a provider is supervised in, and the industry an industry
  department (行业主管部门) supervises (it sees only providers of its own sector).
- `credit_decisions`: one immutable row per change of a ledger entry's status (approve, reject, revoke,
  override), with who, when, why, and the bulk batch it came in. `credit_entries.status` holds the latest.
- `certificates`: per course or per year, generated from registered ledger entries, with a unique
  serial and a verification code; revocation is a timestamp and reason, never a delete.
- On PostgreSQL, triggers refuse UPDATE and DELETE on `audit_log` and `credit_decisions` (append-only
  in the database itself, whatever the application does); SQLite gets the same triggers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)
XUESHI = sa.Numeric(6, 2)

APPEND_ONLY = ("audit_log", "credit_decisions")


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("sector", sa.String(length=64), nullable=True))
    op.create_index("ix_organizations_sector", "organizations", ["sector"])

    with op.batch_alter_table("credit_entries") as batch:
        batch.add_column(sa.Column("decided_by", ID, nullable=True))
        batch.add_column(sa.Column("decided_at", AT, nullable=True))
    op.create_index("ix_credit_entries_status_person", "credit_entries", ["status", "person_id"])

    op.create_table(
        "credit_decisions",
        _id(),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("decided_by", ID, nullable=False),
        sa.Column("decided_as", sa.String(length=32), nullable=False),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("decided_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_decisions")),
        sa.CheckConstraint(
            "action IN ('approve', 'reject', 'revoke', 'override')", name=op.f("ck_credit_decisions_action")
        ),
    )
    op.create_index("ix_credit_decisions_entry", "credit_decisions", ["entry_id"])
    op.create_index("ix_credit_decisions_person", "credit_decisions", ["person_id"])
    op.create_index("ix_credit_decisions_decided_at", "credit_decisions", ["decided_at"])

    op.create_table(
        "certificates",
        _id(),
        sa.Column("serial", sa.String(length=32), nullable=False),
        sa.Column("verify_code", sa.String(length=16), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("person_name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("course_id", ID, nullable=True),
        sa.Column("course_title", sa.String(length=200), nullable=True),
        sa.Column("total_xueshi", XUESHI, nullable=False),
        sa.Column("public_xueshi", XUESHI, nullable=False),
        sa.Column("professional_xueshi", XUESHI, nullable=False),
        sa.Column("entry_ids", sa.JSON(), nullable=False),
        sa.Column("issuer_org_id", ID, nullable=True),
        sa.Column("issuer_name", sa.String(length=200), nullable=False),
        sa.Column("issued_at", AT, nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", AT, nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("revoked_by", ID, nullable=True),
        sa.Column("replaced_by_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("serial", name=op.f("uq_certificates_serial")),
        sa.CheckConstraint("scope IN ('course', 'annual')", name=op.f("ck_certificates_scope")),
    )
    op.create_index("ix_certificates_person_year", "certificates", ["person_id", "year"])

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
    op.drop_index("ix_certificates_person_year", table_name="certificates")
    op.drop_table("certificates")
    op.drop_index("ix_credit_decisions_decided_at", table_name="credit_decisions")
    op.drop_index("ix_credit_decisions_person", table_name="credit_decisions")
    op.drop_index("ix_credit_decisions_entry", table_name="credit_decisions")
    op.drop_table("credit_decisions")
    op.drop_index("ix_credit_entries_status_person", table_name="credit_entries")
    with op.batch_alter_table("credit_entries") as batch:
        batch.drop_column("decided_at")
        batch.drop_column("decided_by")
    op.drop_index("ix_organizations_sector", table_name="organizations")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("sector")
