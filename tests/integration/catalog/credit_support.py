"""Helpers for the credit tests: scripted evidence stored through the catalog's own write paths (the
consumer's functions), sessions that ended at given times, a stored policy version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from catalog import attendance
from catalog import evidence as store
from catalog.credit.policy import CreditPolicy
from catalog.models import CreditEntry, CreditPolicyVersion, FraudFlag, Session
from infra import events

if TYPE_CHECKING:
    from catalog.db import Database
    from tests.integration.catalog.conftest import World

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def at(minutes: float, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes)


async def ended_session(w: World, course_id: int, start: datetime, minutes: float) -> int:
    session_id = await w.session(course_id, start=start)
    async with w.db.sessions.begin() as s:
        await s.execute(
            update(Session)
            .where(Session.id == session_id)
            .values(actual_start=start, actual_end=start + timedelta(minutes=minutes))
        )
    return session_id


async def live(
    db: Database,
    session_id: int,
    person_id: int,
    start: datetime,
    end: datetime,
    *,
    peer: str = "p",
    conn: str = "c",
    hidden: tuple[datetime, datetime] | None = None,
) -> None:
    """Delivery start..end on one peer, attention on one connection (hidden during `hidden`)."""
    peer = f"{peer}-{person_id}"
    conn = f"{conn}-{person_id}"
    await attendance.record_joined(
        db, events.ViewerJoined(session_id=session_id, person_id=person_id, peer_id=peer, at=start)
    )
    await attendance.record_left(
        db,
        events.ViewerLeft(session_id=session_id, person_id=person_id, peer_id=peer, at=end, reason="ended"),
    )
    changes = [(start, True, "shown")]
    if hidden is not None:
        changes += [(hidden[0], False, "hidden"), (hidden[1], True, "shown")]
    changes.append((end, False, "closed"))
    for t, visible, reason in changes:
        await store.record_attention(
            db,
            events.AttentionChanged(
                session_id=session_id, person_id=person_id, conn_id=conn, visible=visible, at=t, reason=reason
            ),
        )


async def live_checks(
    db: Database, session_id: int, times: list[datetime], answers: dict[int, int | None]
) -> list[str]:
    """Checks issued at `times` (60 s window); each person in `answers` answers each with that latency
    (None: does not answer)."""
    ids = []
    for n, t in enumerate(times):
        check_id = f"chk-{session_id}-{n}"
        ids.append(check_id)
        await store.record_live_check(
            db,
            events.PresenceCheckIssued(
                session_id=session_id, check_id=check_id, issued_at=t, deadline_at=t + timedelta(seconds=60)
            ),
        )
        for person_id, latency_ms in answers.items():
            if latency_ms is None:
                continue
            await store.record_live_answer(
                db,
                events.PresenceCheckAnswered(
                    session_id=session_id,
                    check_id=check_id,
                    person_id=person_id,
                    answered_at=t + timedelta(milliseconds=latency_ms),
                    latency_ms=latency_ms,
                ),
            )
    return ids


def beats(
    person_id: int,
    recording_id: str,
    client_id: str,
    start: datetime,
    positions: list[float],
    *,
    every_s: float = 10.0,
    rate: float = 1.0,
    first_seq: int = 0,
) -> list[events.Event]:
    return [
        events.PlaybackHeartbeat(
            client_id=client_id,
            person_id=person_id,
            recording_id=recording_id,
            seq=first_seq + n,
            at=start + timedelta(seconds=every_s * n),
            position_s=pos,
            rate=rate,
            visible=True,
            angle="camera",
        )
        for n, pos in enumerate(positions)
    ]


async def store_policy(db: Database, policy: CreditPolicy, version: int = 1) -> CreditPolicy:
    params = policy.to_dict()
    params.pop("version")
    async with db.sessions.begin() as s:
        s.add(
            CreditPolicyVersion(version=version, params=params, created_by=None, created_at=T0, note="test")
        )
    return CreditPolicy.from_dict(params, version)


async def entries(db: Database, **where: Any) -> list[CreditEntry]:
    async with db.sessions.begin() as s:
        stmt = select(CreditEntry).order_by(CreditEntry.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(CreditEntry, name) == value)
        return list(await s.scalars(stmt))


async def flag_codes(db: Database, person_id: int) -> set[str]:
    async with db.sessions.begin() as s:
        return set(await s.scalars(select(FraudFlag.code).where(FraudFlag.person_id == person_id)))


async def count(db: Database, model: Any) -> int:
    async with db.sessions.begin() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def xs(value: str) -> Decimal:
    return Decimal(value)
