"""The credit ledger: append-only. Entries are inserted, never updated or deleted; a correction is a
reversal entry (negative 学时, `reversal_of_id`) with an audit-log row naming who reversed what and why.

What settlement reads back of it: a person's net 学时 per session and credit year (R24), per course
(the course cap), per Beijing day (R6: an entry's `evidence.credited_by_day`, else its `credit_day`), and
the wall-clock spans of their credited entries in other courses (R29).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.credit.evidence import Span
from catalog.db import Database
from catalog.models import AuditEntry, CreditEntry
from infra.errors import Conflict, Invalid, NotFound

LIVE = "live"
HLS = "hls"
REPLAY = "replay"
EXTERNAL = "external"  # a session held on Tencent Meeting / DingTalk, from imported records
OFFLINE = "offline"  # signed in and out at a venue with the rotating QR code (issue 15)
MENTORSHIP = "mentorship"  # a completed 师承带徒 agreement's fixed award (R22, R26; issue 15)
REVERSAL = "reversal"
CREDIT_KINDS = (LIVE, HLS, REPLAY, EXTERNAL, OFFLINE, MENTORSHIP)

# An entry's status (R23): posted `pending`; the employer approves (`registered`, counts toward R1/R2) or
# rejects it (`rejected`, with a reason); a registered entry can be `revoked` (employer or bureau). Only
# `status` (with decided_by/decided_at) ever changes on an entry, and only through catalog.credit.approval,
# which writes a CreditDecision row and an audit row in the same transaction.
PENDING = "pending"
REGISTERED = "registered"
REJECTED = "rejected"
REVOKED = "revoked"
STATUSES = (PENDING, REGISTERED, REJECTED, REVOKED)
COUNTING = (REGISTERED,)  # R23: what counts toward the annual requirement
# What holds a learner's course and day caps (R6): credit not rejected or revoked. A rejected or revoked
# entry frees its share of the caps (its reversal, carrying its status, is left out with it).
HOLDING = (PENDING, REGISTERED)


def append(s: AsyncSession, entry: CreditEntry) -> CreditEntry:
    """Add a new entry (the caller's transaction commits it). The only way entries are written."""
    if entry.kind not in (*CREDIT_KINDS, REVERSAL):
        raise ValueError(f"unknown ledger entry kind {entry.kind!r}")
    s.add(entry)
    return entry


async def reverse(db: Database, entry_id: int, actor: int | None, reason: str, now: datetime) -> CreditEntry:
    """Write the reversal of entry `entry_id`: the same person, course, session, year, day and category,
    negative minutes and 学时, `reversal_of_id` naming it; and an audit-log row. NotFound for no such
    entry, Invalid for a reversal or an empty reason, Conflict when the entry was already reversed."""
    reason = reason.strip()
    if not reason:
        raise Invalid("a reversal needs a reason", field="reason")
    try:
        async with db.sessions.begin() as s:
            # Locked: a concurrent decision (catalog.credit.approval locks it too) is ordered before or
            # after, so the reversal carries the status the entry ends with.
            original = await s.get(CreditEntry, entry_id, with_for_update=True)
            if original is None:
                raise NotFound(f"credit entry {entry_id} not found", field="entry_id")
            if original.kind == REVERSAL:
                raise Invalid("a reversal cannot be reversed", field="entry_id")
            if await s.scalar(select(CreditEntry.id).where(CreditEntry.reversal_of_id == entry_id)):
                raise Conflict(f"credit entry {entry_id} is already reversed", field="entry_id")
            by_day = _credited_by_day(original)
            reversal = append(
                s,
                CreditEntry(
                    person_id=original.person_id,
                    course_id=original.course_id,
                    session_id=original.session_id,
                    credit_year=original.credit_year,
                    credit_day=original.credit_day,
                    category=original.category,
                    kind=REVERSAL,
                    minutes=-original.minutes,
                    xueshi=-original.xueshi,
                    policy_version=original.policy_version,
                    computed_at=now,
                    status=original.status,
                    reversal_of_id=original.id,
                    note=reason,
                    evidence={
                        "reversal_of": original.id,
                        "reason": reason,
                        "credited_by_day": {d: str(-Decimal(x)) for d, x in by_day.items()},
                    },
                ),
            )
            await s.flush()
            s.add(
                AuditEntry(
                    actor_person_id=actor,
                    action="credit.reversed",
                    subject_type="credit_entry",
                    subject_id=str(original.id),
                    detail={"reversal_id": reversal.id, "reason": reason, "xueshi": str(original.xueshi)},
                    at=now,
                )
            )
    except IntegrityError:
        # Another reversal of the same entry committed between our check and our insert.
        raise Conflict(f"credit entry {entry_id} is already reversed", field="entry_id") from None
    return reversal


# -- what settlement reads ---------------------------------------------------------------------------


async def person_entries(s: AsyncSession, person_id: int, year: int) -> list[CreditEntry]:
    """A person's entries (reversals included) of one credit year, oldest first."""
    return list(
        await s.scalars(
            select(CreditEntry)
            .where(CreditEntry.person_id == person_id, CreditEntry.credit_year == year)
            .order_by(CreditEntry.id)
        )
    )


def reversed_ids(entries: Iterable[CreditEntry]) -> set[int]:
    return {e.reversal_of_id for e in entries if e.reversal_of_id is not None}


def standing(entries: Iterable[CreditEntry]) -> list[CreditEntry]:
    """Credit entries not reversed (reversals themselves left out)."""
    listed = list(entries)
    gone = reversed_ids(listed)
    return [e for e in listed if e.kind != REVERSAL and e.id not in gone]


def holding(entries: Iterable[CreditEntry]) -> list[CreditEntry]:
    """The entries that hold the course and day caps: pending or registered (reversals by the status they
    carry), so rejected and revoked credit no longer counts against the learner."""
    return [e for e in entries if e.status in HOLDING]


def net_xueshi(
    entries: Iterable[CreditEntry], *, session_id: int | None = None, course_id: int | None = None
) -> Decimal:
    """Σ 学时 (reversals negative) of the entries of a session or a course."""
    total = Decimal(0)
    for e in entries:
        if session_id is not None and e.session_id != session_id:
            continue
        if course_id is not None and e.course_id != course_id:
            continue
        total += e.xueshi
    return total


def _credited_by_day(e: CreditEntry) -> dict[str, Any]:
    """An entry's 学时 per Beijing day: its evidence's `credited_by_day`, else all on its `credit_day`. An
    empty `credited_by_day` is a credit holding no time on any day (a mentorship's fixed award)."""
    days = e.evidence.get("credited_by_day")
    return {e.credit_day: str(e.xueshi)} if days is None else dict(days)


def by_day(entries: Iterable[CreditEntry]) -> dict[date, Decimal]:
    """Credited 学时 per Beijing day across the entries (R6), reversals subtracting."""
    out: dict[date, Decimal] = defaultdict(Decimal)
    for e in entries:
        for day, amount in _credited_by_day(e).items():
            out[date.fromisoformat(day)] += Decimal(str(amount))
    return dict(out)


def credited_spans(entries: Iterable[CreditEntry], *, other_than_course: int) -> list[tuple[int, Span]]:
    """(entry id, wall-clock span) of the standing, positive entries of other courses (R29)."""
    out: list[tuple[int, Span]] = []
    for e in standing(entries):
        if e.course_id == other_than_course or e.xueshi <= 0:
            continue
        for start, end in e.evidence.get("credited_spans", []):
            out.append((e.id, (datetime.fromisoformat(start), datetime.fromisoformat(end))))
    return out
