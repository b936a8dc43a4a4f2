"""SQLAlchemy models of the system of record (see ../shared/DOMAIN.md §5).

Every timestamp is stored and returned as a timezone-aware UTC datetime (`UTCDateTime`), also on SQLite,
which has no time zones. Relationships are `lazy="raise"`: queries say what they load.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from catalog import domain
from catalog.mentorship.rules import MentorshipStatus
from catalog.plans.figures import PlanStatus

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Accepts only aware datetimes, stores UTC, returns aware UTC (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CreditHours(TypeDecorator[Decimal]):
    """学时 as Numeric(6,1); read without the driver's float path SQLite warns about, then quantized."""

    impl = Numeric(6, 1, asdecimal=False)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return None if value is None else str(value.quantize(Decimal("0.1")))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.1"))


class Xueshi(TypeDecorator[Decimal]):
    """Credited 学时 of a ledger entry as Numeric(6,2) (negative for a reversal), read back as Decimal."""

    impl = Numeric(6, 2, asdecimal=False)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return None if value is None else str(value.quantize(Decimal("0.01")))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


class Base(DeclarativeBase):
    # Named constraints, so migrations (and SQLite's batch mode) can refer to them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def one_of(column: str, values: type[StrEnum], name: str) -> CheckConstraint:
    """A CHECK that `column` holds one of the enum's values (the database guards the vocabulary too)."""
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (one_of("type", domain.OrgType, "type"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(200))
    unified_social_credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    region_code: Mapped[str | None] = mapped_column(String(12))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The industry a provider is supervised in / an industry department supervises (migration 0010).
    sector: Mapped[str | None] = mapped_column(String(64), index=True)


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(11), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    employer_org_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    id_card_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RoleAssignment(Base):
    __tablename__ = "role_assignments"
    __table_args__ = (
        # One row per (person, role, org); org NULL (a global role) is kept unique by the service.
        UniqueConstraint("person_id", "role", "org_id", name="uq_role_assignments_person_role_org"),
        one_of("role", domain.Role, "role"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuthSession(Base):
    """A server-side login: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Throttle(Base):
    """Counted attempts per key (a phone, an address, a device) for login and registration throttling
    (rules in catalog/throttle.py); a row is locked while an attempt is counted, so none slips past."""

    __tablename__ = "throttles"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Course(Base):
    __tablename__ = "courses"
    __table_args__ = (
        one_of("category", domain.Category, "category"),
        one_of("delivery", domain.Delivery, "delivery"),
        one_of("status", domain.CourseStatus, "status"),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity"),
        CheckConstraint("credit_hours >= 0", name="credit_hours"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    provider_org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(16), index=True)
    industry: Mapped[str] = mapped_column(String(100), default="", index=True)
    specialty_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    credit_hours: Mapped[Decimal] = mapped_column(CreditHours())
    delivery: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    sessions: Mapped[list[Session]] = relationship(
        back_populates="course", lazy="raise", order_by="Session.scheduled_start"
    )


class Session(Base):
    """One scheduled occurrence of a course (a live lecture, an external meeting, a class)."""

    __tablename__ = "sessions"
    __table_args__ = (
        one_of("kind", domain.SessionKind, "kind"),
        one_of("external_platform", domain.ExternalPlatform, "external_platform"),
        CheckConstraint("scheduled_end > scheduled_start", name="schedule"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    scheduled_end: Mapped[datetime] = mapped_column(UTCDateTime())
    actual_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    actual_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    external_platform: Mapped[str] = mapped_column(String(16), default="none")
    external_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    location: Mapped[str | None] = mapped_column(String(200))  # where an offline session is held (0011)

    course: Mapped[Course] = relationship(back_populates="sessions", lazy="raise")
    experts: Mapped[list[SessionExpert]] = relationship(lazy="raise", order_by="SessionExpert.person_id")


class SessionExpert(Base):
    __tablename__ = "session_experts"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        # At most one *active* enrollment per person and course; withdrawn rows stay as history.
        Index(
            "uq_enrollments_active",
            "person_id",
            "course_id",
            unique=True,
            sqlite_where=text("status = 'enrolled'"),
            postgresql_where=text("status = 'enrolled'"),
        ),
        Index("ix_enrollments_course_status", "course_id", "status"),
        one_of("source", domain.EnrollmentSource, "source"),
        one_of("status", domain.EnrollmentStatus, "status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The annual training plan item an employer enrolled this person from (migration 0011_programme).
    plan_item_id: Mapped[int | None] = mapped_column(IdType, index=True)


class Recording(Base):
    """A session's recording, registered from `recording.finalized`; a replay of the session's course."""

    __tablename__ = "recordings"
    __table_args__ = (
        one_of("state", domain.RecordingState, "state"),
        CheckConstraint("duration_s >= 0", name="duration_s"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the recorder's recording_id
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # angle name -> {"playlist_key", "mp4_key", "start_s", "duration_s", "width", "height", "mp4_bytes"}
    angles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    master_key: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReplayProgress(Base):
    """Where a person last was in a replay: one row per person and recording, overwritten by each report."""

    __tablename__ = "replay_progress"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position_s: Mapped[float] = mapped_column(Float)
    rate: Mapped[float] = mapped_column(Float)
    visible: Mapped[bool] = mapped_column(Boolean)
    angle: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlaybackReport(Base):
    """Every accepted progress report, as sent (append-only): what attendance verification reads."""

    __tablename__ = "playback_reports"
    __table_args__ = (
        Index("ix_playback_reports_person_recording_at", "person_id", "recording_id", "reported_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Evidence outlives the recording and the person: plain ids, no foreign keys (migration 0008).
    person_id: Mapped[int] = mapped_column(IdType)
    recording_id: Mapped[str] = mapped_column(String(64), index=True)
    position_s: Mapped[float] = mapped_column(Float)
    rate: Mapped[float] = mapped_column(Float)
    visible: Mapped[bool] = mapped_column(Boolean)
    angle: Mapped[str] = mapped_column(String(32))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())  # server time


class LiveInterval(Base):
    """One present interval of a learner's live viewer (`viewer.joined` … `viewer.left`, paired by peer).

    Written idempotently by catalog.attendance: one row per (session, peer, joined_at). `joined_at` is null
    while only the `viewer.left` of the interval has arrived (events of one peer may come out of order
    after a retry); `left_at` is null while the viewer is present (or its `viewer.left` never came: the
    session's actual end closes it when attendance is counted)."""

    __tablename__ = "live_intervals"
    __table_args__ = (
        UniqueConstraint("session_id", "peer_id", "joined_at", name="uq_live_intervals_session_peer_joined"),
        Index("ix_live_intervals_session_person", "session_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Evidence outlives the session and the person: plain ids, no foreign keys (migration 0008).
    session_id: Mapped[int] = mapped_column(IdType)
    person_id: Mapped[int] = mapped_column(IdType, index=True)
    peer_id: Mapped[str] = mapped_column(String(255))
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(32))  # why it closed (viewer.left's reason)


# -- attendance evidence and credit (issue 11; rules in catalog/credit, docs/credit.md) ---------------
# Evidence and ledger tables carry plain ids, not foreign keys: what a credit rests on outlives the
# recording, the session and the person it names. Raw evidence is append-only; natural unique keys make
# every write idempotent (the consumer inserts with ON CONFLICT DO NOTHING).


class CreditPolicyVersion(Base):
    """One version of the credit policy (catalog.credit.policy.CreditPolicy as JSON). Never updated: an
    administrator's change is a new version; every ledger entry names the version it was computed under."""

    __tablename__ = "credit_policies"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")


class ClientSession(Base):
    """One learning client the server opened (a replay player, an overflow HLS player, a live page). A
    person has one active client (R18): opening another stamps `superseded_at` on the older ones."""

    __tablename__ = "client_sessions"
    __table_args__ = (Index("ix_client_sessions_person_opened", "person_id", "opened_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType)
    kind: Mapped[str] = mapped_column(String(16))  # replay, hls, live
    session_id: Mapped[int | None] = mapped_column(IdType, index=True)
    recording_id: Mapped[str | None] = mapped_column(String(64), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    superseded_by: Mapped[str | None] = mapped_column(String(64))
    first_viewing: Mapped[bool] = mapped_column(Boolean, default=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")


class Heartbeat(Base):
    """A client's heartbeat as the server received it (playback, hls and live.heartbeat): append-only."""

    __tablename__ = "heartbeats"
    __table_args__ = (
        UniqueConstraint("client_id", "seq", name="uq_heartbeats_client_seq"),
        Index("ix_heartbeats_person_at", "person_id", "at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(IdType)
    kind: Mapped[str] = mapped_column(String(16))  # replay, hls, live
    session_id: Mapped[int | None] = mapped_column(IdType)
    recording_id: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    position_s: Mapped[float] = mapped_column(Float)
    rate: Mapped[float] = mapped_column(Float)
    visible: Mapped[bool] = mapped_column(Boolean)
    angle: Mapped[str | None] = mapped_column(String(32))
    media_sequence: Mapped[int | None] = mapped_column(BigInteger)


class AttentionChange(Base):
    """attention.changed: a learner's live page (one room-channel connection) became visible or not."""

    __tablename__ = "attention_changes"
    __table_args__ = (
        UniqueConstraint("session_id", "conn_id", "at", "visible", name="uq_attention_changes_event"),
        Index("ix_attention_changes_session_person", "session_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(IdType)
    person_id: Mapped[int] = mapped_column(IdType)
    conn_id: Mapped[str] = mapped_column(String(64))
    visible: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(32))


class HlsFetch(Base):
    """hls.segment_fetched: a live segment handed to an overflow viewer (first fetch of each key counts)."""

    __tablename__ = "hls_fetches"
    __table_args__ = (
        UniqueConstraint("session_id", "person_id", "key", name="uq_hls_fetches_session_person_key"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(IdType)
    person_id: Mapped[int] = mapped_column(IdType)
    key: Mapped[str] = mapped_column(String(1024))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PresenceCheckRecord(Base):
    """A presence check as issued: live (to everyone in the room) or in one person's replay client."""

    __tablename__ = "presence_checks"
    __table_args__ = (Index("ix_presence_checks_session", "session_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # live, replay
    session_id: Mapped[int | None] = mapped_column(IdType)
    recording_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    person_id: Mapped[int | None] = mapped_column(IdType)  # replay checks belong to one person
    position_s: Mapped[float | None] = mapped_column(Float)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PresenceAnswer(Base):
    """A person's answer to a check (with the right nonce; latency measured by the server)."""

    __tablename__ = "presence_answers"

    check_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latency_ms: Mapped[int | None] = mapped_column(Integer)


class CreditEntry(Base):
    """The ledger: append-only. A correction is a reversal entry (negative 学时, `reversal_of_id`), never an
    update. `evidence` names what produced the entry (intervals, checks, client sessions, the figures)."""

    __tablename__ = "credit_entries"
    __table_args__ = (
        Index("ix_credit_entries_person_year", "person_id", "credit_year"),
        Index("ix_credit_entries_session", "session_id"),
        Index("ix_credit_entries_status_person", "status", "person_id"),
        Index("ix_credit_entries_course_year_session", "course_id", "credit_year", "session_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType)
    # None for credit that belongs to no course: a mentorship's fixed award (migration 0011_programme).
    course_id: Mapped[int | None] = mapped_column(IdType, index=True)
    session_id: Mapped[int | None] = mapped_column(IdType)
    credit_year: Mapped[int] = mapped_column(Integer)
    credit_day: Mapped[str] = mapped_column(String(10))  # Beijing date (YYYY-MM-DD) the 学时 count on
    category: Mapped[str] = mapped_column(String(16))  # public, professional
    kind: Mapped[str] = mapped_column(String(16))  # live, hls, replay, reversal
    minutes: Mapped[float] = mapped_column(Float)
    xueshi: Mapped[Decimal] = mapped_column(Xueshi())
    policy_version: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending -> registered | rejected; registered -> revoked (catalog.credit.ledger.STATUSES). The one
    # column that changes, and only through catalog.credit.approval, which writes a CreditDecision row.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reversal_of_id: Mapped[int | None] = mapped_column(IdType, unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decided_by: Mapped[int | None] = mapped_column(IdType)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FraudFlag(Base):
    """A finding on the review list (DOMAIN §4), with its evidence; providers and the bureau resolve it."""

    __tablename__ = "fraud_flags"
    __table_args__ = (
        UniqueConstraint("person_id", "code", "subject", name="uq_fraud_flags_person_code_subject"),
        Index("ix_fraud_flags_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType, index=True)
    session_id: Mapped[int | None] = mapped_column(IdType, index=True)
    course_id: Mapped[int | None] = mapped_column(IdType, index=True)
    code: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))  # what it is about, e.g. "session:12" (dedup key)
    severity: Mapped[str] = mapped_column(String(16))  # info, warning, high
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, dismissed, confirmed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_by: Mapped[int | None] = mapped_column(IdType)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """Who did what to credit-relevant data (policy versions, time corrections, flag decisions)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    actor_person_id: Mapped[int | None] = mapped_column(IdType)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SessionTimeCorrection(Base):
    """A provider's audited correction of a session's actual times (the server's own times stay as they
    were; credit uses the latest correction and names it)."""

    __tablename__ = "session_time_corrections"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(IdType, index=True)
    actual_start: Mapped[datetime] = mapped_column(UTCDateTime())
    actual_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    corrected_by: Mapped[int] = mapped_column(IdType)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- external meetings (Tencent Meeting, DingTalk): migration 0009 ---------------------------------------


class PlatformCredential(Base):
    """An organization's credentials for one vendor, encrypted (integrations.secrets); the newest row
    with no `replaced_at` is current. Never returned by the API: only `hint` and `created_at` are."""

    __tablename__ = "platform_credentials"
    __table_args__ = (
        CheckConstraint("vendor IN ('tencent', 'dingtalk')", name="vendor"),
        Index("ix_platform_credentials_org_vendor", "org_id", "vendor"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    vendor: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    hint: Mapped[str] = mapped_column(String(8))  # last 4 characters of the SecretId / AppKey
    created_by: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ExternalAccountLink(Base):
    """A learner's own Tencent userid / DingTalk unionId; verified links let imports credit (R20)."""

    __tablename__ = "external_account_links"
    __table_args__ = (
        UniqueConstraint("vendor", "external_user_id"),
        CheckConstraint("vendor IN ('tencent', 'dingtalk')", name="vendor"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType, index=True)
    vendor: Mapped[str] = mapped_column(String(16))
    external_user_id: Mapped[str] = mapped_column(String(128))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExternalImportBatch(Base):
    """One import of a session's external attendance: an API pull, the webhook events, or a file."""

    __tablename__ = "external_import_batches"
    __table_args__ = (CheckConstraint("source IN ('api', 'webhook', 'file')", name="source"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(IdType, index=True)
    platform: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(IdType)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload_hash: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed, open (webhooks), unchanged
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")


class ExternalRecordRow(Base):
    """One stored integrations.records.ExternalRecord; `row_key` makes re-imports add nothing."""

    __tablename__ = "external_records"
    __table_args__ = (
        UniqueConstraint("session_id", "platform", "row_key"),
        CheckConstraint(
            "match IN ('linked', 'phone', 'manual', 'unmatched', 'pstn', 'rejected')", name="match"
        ),
        CheckConstraint("trust IN ('high', 'low')", name="trust"),
        Index("ix_external_records_session_person", "session_id", "person_id"),
        Index("ix_external_records_session_match", "session_id", "match"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    batch_id: Mapped[int] = mapped_column(IdType, index=True)
    session_id: Mapped[int] = mapped_column(IdType)
    platform: Mapped[str] = mapped_column(String(16))
    row_key: Mapped[str] = mapped_column(String(64))
    external_meeting_ref: Mapped[str] = mapped_column(String(128))
    external_user_id: Mapped[str | None] = mapped_column(String(128))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    # "tencent": Tencent's SHA256(phone + "/" + SecretId); "sha256": SHA256(phone)
    phone_scheme: Mapped[str | None] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(200))
    join_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    leave_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    watched_s: Mapped[float | None] = mapped_column(Float)
    instance: Mapped[str | None] = mapped_column(String(32))
    connection_id: Mapped[str | None] = mapped_column(String(128))  # Tencent ms_open_id: closes a join
    is_pstn: Mapped[bool] = mapped_column(Boolean, default=False)
    trust: Mapped[str] = mapped_column(String(8))
    person_id: Mapped[int | None] = mapped_column(IdType)
    match: Mapped[str] = mapped_column(String(16), default="unmatched")
    matched_by: Mapped[int | None] = mapped_column(IdType)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    row_ref: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookNonce(Base):
    """A Tencent webhook (timestamp, nonce) already accepted; the same pair again is a replay (R30)."""

    __tablename__ = "webhook_nonces"

    org_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    timestamp: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# --- credit that counts (employer approval, certificates): migration 0010 -------------------------------


class CreditDecision(Base):
    """One change of a ledger entry's status: approve / reject (employer), revoke / override (employer or
    bureau). Append-only: the database refuses UPDATE and DELETE (triggers in migration 0010)."""

    __tablename__ = "credit_decisions"
    __table_args__ = (
        CheckConstraint("action IN ('approve', 'reject', 'revoke', 'override')", name="action"),
        Index("ix_credit_decisions_entry", "entry_id"),
        Index("ix_credit_decisions_person", "person_id"),
        Index("ix_credit_decisions_decided_at", "decided_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    entry_id: Mapped[int] = mapped_column(IdType)
    person_id: Mapped[int] = mapped_column(IdType)  # whose entry (the learner)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[int] = mapped_column(IdType)
    decided_as: Mapped[str] = mapped_column(String(32))  # the role acted in: employer_admin, bureau, admin
    org_id: Mapped[int | None] = mapped_column(IdType)  # the organization acted for
    batch_id: Mapped[str | None] = mapped_column(String(36))  # one bulk approval shares an id
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Certificate(Base):
    """A 学时 certificate for one course or one year, computed from registered ledger entries (never typed
    in). `entry_ids` names them; the verification page shows revoked when the certificate is revoked or
    any of its entries is no longer registered (reversed, revoked)."""

    __tablename__ = "certificates"
    __table_args__ = (
        CheckConstraint("scope IN ('course', 'annual')", name="scope"),
        Index("ix_certificates_person_year", "person_id", "year"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    verify_code: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int] = mapped_column(IdType)
    person_name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    course_id: Mapped[int | None] = mapped_column(IdType)
    course_title: Mapped[str | None] = mapped_column(String(200))
    total_xueshi: Mapped[Decimal] = mapped_column(Xueshi())
    public_xueshi: Mapped[Decimal] = mapped_column(Xueshi())
    professional_xueshi: Mapped[Decimal] = mapped_column(Xueshi())
    entry_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    issuer_org_id: Mapped[int | None] = mapped_column(IdType)
    issuer_name: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[int | None] = mapped_column(IdType)
    replaced_by_id: Mapped[int | None] = mapped_column(IdType)


# --- offline training (线下培训): migration 0011_offline -------------------------------------------------


class OfflineAttendance(Base):
    """One sign-in at an offline session's venue, closed by its sign-out (catalog.offline). The instants
    are the server's; a staff correction (missed sign-out, wrong time) overwrites them, says who, when
    and why, and leaves the times it replaced in the audit log. A person holds at most one open sign-in
    across all sessions (the partial unique index): nobody is at two venues at once."""

    __tablename__ = "offline_attendance"
    __table_args__ = (
        Index("ix_offline_attendance_session_person", "session_id", "person_id"),
        Index(
            "uq_offline_attendance_open_person",
            "person_id",
            unique=True,
            sqlite_where=text("signed_out_at IS NULL"),
            postgresql_where=text("signed_out_at IS NULL"),
        ),
        CheckConstraint("signed_out_at IS NULL OR signed_out_at > signed_in_at", name="order"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Evidence outlives the session and the person: plain ids, no foreign keys.
    session_id: Mapped[int] = mapped_column(IdType)
    person_id: Mapped[int] = mapped_column(IdType)
    signed_in_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signed_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    in_code_slot: Mapped[int] = mapped_column(BigInteger)  # the signed code's slot (its issue instant, s)
    out_code_slot: Mapped[int | None] = mapped_column(BigInteger)
    sign_in_ip: Mapped[str] = mapped_column(String(64), default="")
    sign_in_user_agent: Mapped[str] = mapped_column(String(512), default="")
    sign_out_ip: Mapped[str | None] = mapped_column(String(64))
    sign_out_user_agent: Mapped[str | None] = mapped_column(String(512))
    corrected_by: Mapped[int | None] = mapped_column(IdType)
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    corrected_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OfflineCodeUse(Base):
    """A venue code a person has used: one act (sign in or sign out) per code and person, so a replayed
    code is refused."""

    __tablename__ = "offline_code_uses"
    __table_args__ = (CheckConstraint("action IN ('sign_in', 'sign_out')", name="action"),)

    session_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(IdType, primary_key=True)
    code_slot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the programme (mentorship, employers' annual training plans): migration 0011_programme -------------


class Mentorship(Base):
    """A 师承带徒 agreement for one year (R26): proposed by one side, confirmed by the other (both times
    kept), completed by the mentor's summary and the mentee's confirmation, which posts the award."""

    __tablename__ = "mentorships"
    __table_args__ = (
        one_of("status", MentorshipStatus, "status"),
        CheckConstraint("mentor_person_id <> mentee_person_id", name="not_self"),
        CheckConstraint("start_date <= end_date", name="period"),
        # One agreement in force (not cancelled) per mentor, mentee and year.
        Index(
            "uq_mentorships_pair_year",
            "mentor_person_id",
            "mentee_person_id",
            "year",
            unique=True,
            sqlite_where=text("status <> 'cancelled'"),
            postgresql_where=text("status <> 'cancelled'"),
        ),
        Index("ix_mentorships_mentor_year", "mentor_person_id", "year"),
        Index("ix_mentorships_mentee_year", "mentee_person_id", "year"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    mentor_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    mentee_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    year: Mapped[int] = mapped_column(Integer)
    plan: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    proposed_by: Mapped[int] = mapped_column(IdType)
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    mentor_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mentee_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completion_summary: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mentee_completion_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    credit_entry_id: Mapped[int | None] = mapped_column(IdType)


class TrainingPlan(Base):
    """An employer's annual training plan: drafted, then published (items may still be added, nothing
    changed or removed); one per employer and year."""

    __tablename__ = "training_plans"
    __table_args__ = (
        one_of("status", PlanStatus, "status"),
        UniqueConstraint("employer_org_id", "year", name="uq_training_plans_employer_org_id_year"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    employer_org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"))
    year: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TrainingPlanItem(Base):
    """One line of a plan: a course or a category (公需/专业), a target in 学时 per targeted person."""

    __tablename__ = "training_plan_items"
    __table_args__ = (
        CheckConstraint("(course_id IS NULL) <> (category IS NULL)", name="course_or_category"),
        CheckConstraint("category IS NULL OR category IN ('public', 'professional')", name="category"),
        CheckConstraint("target_xueshi > 0", name="target"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("training_plans.id", ondelete="CASCADE"), index=True)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    category: Mapped[str | None] = mapped_column(String(16))
    target_xueshi: Mapped[Decimal] = mapped_column(CreditHours())
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrainingPlanTarget(Base):
    """A person (the employer's own staff) an item targets."""

    __tablename__ = "training_plan_targets"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("training_plan_items.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


# --- the bureau's supervision view: migration 0011_supervision -----------------------------------------
# A snapshot of each year's figures per provider and per session (catalog.supervision.snapshot), computed
# from the ledger, the evidence and the flags in one pass and replaced whole on each refresh: the bureau's
# overview reads a few hundred rows instead of aggregating millions of ledger entries per request.


class XueshiTotal(TypeDecorator[Decimal]):
    """A sum of 学时 (a provider's year can pass 9999.99, the ledger's per-entry Numeric(6,2))."""

    impl = Numeric(14, 2, asdecimal=False)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return None if value is None else str(value.quantize(Decimal("0.01")))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


class SupervisionSnapshot(Base):
    """When a year's supervision figures were last computed, how long it took and how much it read."""

    __tablename__ = "supervision_snapshots"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    took_s: Mapped[float] = mapped_column(Float)
    providers: Mapped[int] = mapped_column(Integer)
    sessions: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(BigInteger)


class SupervisionProviderStats(Base):
    """One provider's year in the snapshot (figures defined in catalog.supervision.walk)."""

    __tablename__ = "supervision_provider_stats"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    provider_org_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    courses: Mapped[int] = mapped_column(Integer)
    sessions: Mapped[int] = mapped_column(Integer)  # listed: held in the year or credited in it
    sessions_held: Mapped[int] = mapped_column(Integer)
    over_sessions: Mapped[int] = mapped_column(Integer)  # sessions marked 超额 (fraud 17)
    attendees: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)
    pending_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    registered_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    rejected_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    revoked_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    decided: Mapped[int] = mapped_column(Integer)
    latency_median_s: Mapped[float | None] = mapped_column(Float)
    latency_p90_s: Mapped[float | None] = mapped_column(Float)
    flags_open: Mapped[int] = mapped_column(Integer)
    flags_total: Mapped[int] = mapped_column(Integer)


class SupervisionSessionStats(Base):
    """One session's year in the snapshot, with its reconciliation (fraud 17)."""

    __tablename__ = "supervision_session_stats"
    __table_args__ = (Index("ix_supervision_session_stats_provider", "year", "provider_org_id", "starts_at"),)

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    session_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    provider_org_id: Mapped[int] = mapped_column(IdType)
    course_id: Mapped[int] = mapped_column(IdType)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    held: Mapped[bool] = mapped_column(Boolean)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_source: Mapped[str] = mapped_column(String(16))  # correction, actual, schedule, none
    allowed_xs: Mapped[Decimal | None] = mapped_column(XueshiTotal())
    max_person_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    credited: Mapped[int] = mapped_column(Integer)
    without_attendance: Mapped[int] = mapped_column(Integer)
    attending: Mapped[int] = mapped_column(Integer)
    attendees: Mapped[int] = mapped_column(Integer)
    enrolled: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)
    pending_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    registered_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    rejected_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    revoked_xs: Mapped[Decimal] = mapped_column(XueshiTotal())
    flags_open: Mapped[int] = mapped_column(Integer)
    flags_total: Mapped[int] = mapped_column(Integer)
    over: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)


# --- shared courseware (issue 15, R27): migration 0011_courseware ---------------------------------------


class Courseware(Base):
    """Courseware an expert shares (video or slides), reviewed by the CE association before learners see
    it; `course_id` is the recorded course it is published as once a version is approved."""

    __tablename__ = "courseware"
    __table_args__ = (CheckConstraint("category IN ('public', 'professional')", name="category"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), index=True)
    owner_org_id: Mapped[int | None] = mapped_column(IdType)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    course_id: Mapped[int | None] = mapped_column(IdType, index=True)
    # The draft course holding the sessions of versions not (or no longer) approved
    # (catalog.courseware.placement).
    staging_course_id: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CoursewareVersion(Base):
    """One uploaded file of a courseware: its check (`processing`), its HLS rendition (`recording_id`, a
    `recordings` row) and its review state. Each version is reviewed on its own."""

    __tablename__ = "courseware_versions"
    __table_args__ = (
        UniqueConstraint("courseware_id", "version"),
        CheckConstraint("media_kind IN ('video', 'pdf')", name="media_kind"),
        CheckConstraint("processing IN ('uploading', 'processing', 'ready', 'failed')", name="processing"),
        CheckConstraint(
            "review_state IN ('draft', 'submitted', 'approved', 'rejected', 'revoked', 'superseded')",
            name="review_state",
        ),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
        Index("ix_courseware_versions_review_state", "review_state"),
        Index("ix_courseware_versions_recording_id", "recording_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    courseware_id: Mapped[int] = mapped_column(ForeignKey("courseware.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    media_kind: Mapped[str] = mapped_column(String(8))
    object_key: Mapped[str] = mapped_column(String(1024))  # the uploaded original in the object store
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    page_count: Mapped[int | None] = mapped_column(Integer)  # PDFs
    processing: Mapped[str] = mapped_column(String(16))
    check_error: Mapped[str | None] = mapped_column(Text)  # "中文原因 / English reason" when failed
    # When a processor took it (catalog.courseware.processing): one process works on a version at a time.
    processing_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_state: Mapped[str] = mapped_column(String(16))
    recording_id: Mapped[str | None] = mapped_column(String(64))  # the HLS rendition (recordings.id)
    # The version's own session (catalog.courseware.placement): the rendition's recordings row hangs on it.
    session_id: Mapped[int | None] = mapped_column(IdType)
    slides_object_key: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CoursewareReview(Base):
    """One reviewer decision on a version. Append-only: the database refuses UPDATE and DELETE."""

    __tablename__ = "courseware_reviews"
    __table_args__ = (CheckConstraint("decision IN ('approved', 'rejected', 'revoked')", name="decision"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    version_id: Mapped[int] = mapped_column(IdType, index=True)
    reviewer_person_id: Mapped[int] = mapped_column(IdType)
    reviewer_org_id: Mapped[int | None] = mapped_column(IdType)
    decision: Mapped[str] = mapped_column(String(16))
    comments: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CoursewareUpload(Base):
    """A resumable upload straight to the object store (an S3 multipart upload, or the embedded store's
    equivalent): the browser PUTs parts to presigned URLs; the application never holds the bytes."""

    __tablename__ = "courseware_uploads"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'completed', 'aborted')", name="state"),
        CheckConstraint("size_bytes > 0", name="size_bytes"),
        CheckConstraint("part_size > 0", name="part_size"),
        Index("ix_courseware_uploads_state_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_person_id: Mapped[int] = mapped_column(IdType, index=True)
    version_id: Mapped[int | None] = mapped_column(IdType)
    object_key: Mapped[str] = mapped_column(String(1024))
    s3_upload_id: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(128))
    file_name: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
