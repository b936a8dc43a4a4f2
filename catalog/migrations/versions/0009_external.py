"""External meetings (Tencent Meeting, DingTalk): per-organization platform credentials (encrypted),
learners' linked platform accounts, import batches and the raw external attendance records they hold,
and the Tencent webhook nonces seen (replays are refused, R30). A session's link to a meeting stays in
`sessions.external_platform` / `sessions.external_ids`. Records are evidence: no cascading foreign keys.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, nullable=False)


def upgrade() -> None:
    op.create_table(
        "platform_credentials",
        _id(),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("vendor", sa.String(length=16), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("replaced_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_credentials")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_platform_credentials_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("vendor IN ('tencent', 'dingtalk')", name=op.f("ck_platform_credentials_vendor")),
    )
    op.create_index("ix_platform_credentials_org_vendor", "platform_credentials", ["org_id", "vendor"])
    op.create_table(
        "external_account_links",
        _id(),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("vendor", sa.String(length=16), nullable=False),
        sa.Column("external_user_id", sa.String(length=128), nullable=False),
        sa.Column("verified_at", AT, nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_account_links")),
        sa.UniqueConstraint(
            "vendor", "external_user_id", name="uq_external_account_links_vendor_external_user_id"
        ),
        sa.CheckConstraint(
            "vendor IN ('tencent', 'dingtalk')", name=op.f("ck_external_account_links_vendor")
        ),
    )
    op.create_index(op.f("ix_external_account_links_person_id"), "external_account_links", ["person_id"])
    op.create_table(
        "external_import_batches",
        _id(),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("fetched_at", AT, nullable=False),
        sa.Column("finished_at", AT, nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_import_batches")),
        sa.CheckConstraint(
            "source IN ('api', 'webhook', 'file')", name=op.f("ck_external_import_batches_source")
        ),
    )
    op.create_index(op.f("ix_external_import_batches_session_id"), "external_import_batches", ["session_id"])
    op.create_table(
        "external_records",
        _id(),
        sa.Column("batch_id", ID, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("external_meeting_ref", sa.String(length=128), nullable=False),
        sa.Column("external_user_id", sa.String(length=128), nullable=True),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("phone_scheme", sa.String(length=16), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("join_at", AT, nullable=True),
        sa.Column("leave_at", AT, nullable=True),
        sa.Column("watched_s", sa.Float(), nullable=True),
        sa.Column("instance", sa.String(length=32), nullable=True),
        sa.Column("connection_id", sa.String(length=128), nullable=True),
        sa.Column("is_pstn", sa.Boolean(), nullable=False),
        sa.Column("trust", sa.String(length=8), nullable=False),
        sa.Column("person_id", ID, nullable=True),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.Column("matched_by", ID, nullable=True),
        sa.Column("matched_at", AT, nullable=True),
        sa.Column("row_ref", sa.String(length=200), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_records")),
        sa.UniqueConstraint(
            "session_id", "platform", "row_key", name="uq_external_records_session_id_platform_row_key"
        ),
        sa.CheckConstraint(
            "match IN ('linked', 'phone', 'manual', 'unmatched', 'pstn', 'rejected')",
            name=op.f("ck_external_records_match"),
        ),
        sa.CheckConstraint("trust IN ('high', 'low')", name=op.f("ck_external_records_trust")),
    )
    op.create_index(op.f("ix_external_records_batch_id"), "external_records", ["batch_id"])
    op.create_index("ix_external_records_session_person", "external_records", ["session_id", "person_id"])
    op.create_index("ix_external_records_session_match", "external_records", ["session_id", "match"])
    op.create_table(
        "webhook_nonces",
        sa.Column("org_id", ID, nullable=False),
        sa.Column("timestamp", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "timestamp", "nonce", name=op.f("pk_webhook_nonces")),
    )
    op.create_index(op.f("ix_webhook_nonces_seen_at"), "webhook_nonces", ["seen_at"])


def downgrade() -> None:
    for table in (
        "webhook_nonces",
        "external_records",
        "external_import_batches",
        "external_account_links",
        "platform_credentials",
    ):
        op.drop_table(table)
