"""Credit from external meetings (Tencent Meeting, DingTalk) on SQLite and PostgreSQL: the records of a
person are one presence (several devices and rejoins: a union, fraud 13), clipped to the meeting's window
(R8, fraud 14) and credited like live (R9); dial-in and unmatched rows are never credited (R20) but listed;
DingTalk live totals count min(watch time, window) with low trust (R21); importing again changes nothing;
a later import that changes a person's records settles them again (reversal + new entry); a session
already credited through its replay is not credited again through an import (fraud 15, R24)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from catalog import external_imports
from catalog.credit import ledger, settle
from catalog.domain import Caller, Role
from catalog.models import AuditEntry, CreditEntry, ExternalRecordRow, Session
from infra.settings import Settings
from integrations.files import FileRow
from integrations.records import ExternalRecord, Platform, Source, Trust, make_row_key
from tests.integration.catalog.conftest import SECRET
from tests.integration.catalog.credit_support import T0, at, entries, flag_codes

if TYPE_CHECKING:
    from datetime import datetime

    from tests.integration.catalog.conftest import World

AFTER = T0 + timedelta(hours=6)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """These tests settle by hand, at times they choose."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


async def external_session(w: World, platform: str = "tencent", minutes: int = 120) -> int:
    async with w.db.sessions.begin() as s:
        ss = Session(
            course_id=w.course_id,
            title="腾讯会议讲座",
            kind="external",
            scheduled_start=T0,
            scheduled_end=T0 + timedelta(minutes=minutes),
            external_platform=platform,
            external_ids={"meeting_id": "1333"} if platform == "tencent" else {"live_id": "live-1"},
        )
        s.add(ss)
        await s.flush()
        return ss.id


def row(
    n: int,
    join: datetime | None,
    leave: datetime | None,
    *,
    phone: str | None = None,
    pstn: bool = False,
    name: str = "学员",
    platform: Platform = Platform.TENCENT,
    watched_s: float | None = None,
    trust: Trust = Trust.HIGH,
    device: str = "1",
) -> ExternalRecord:
    return ExternalRecord(
        platform=platform,
        external_meeting_ref="1333",
        row_key=make_row_key("test", n, join),
        external_user_id=None,
        display_name=name,
        join_at=join,
        leave_at=leave,
        instance="0" if pstn else device,
        is_pstn=pstn,
        phone=phone,
        watched_s=watched_s,
        trust=trust,
        raw_ref=f"row {n}",
    )


async def _chunks(records: list[ExternalRecord]) -> AsyncIterator[list[FileRow]]:
    yield [FileRow(r.raw_ref, r, name=r.display_name) for r in records]


async def import_records(
    w: World,
    session_id: int,
    records: list[ExternalRecord],
    digest: str,
    platform: Platform = Platform.TENCENT,
) -> external_imports.ImportReport:
    return await external_imports.import_rows(
        w.db,
        None,
        session_id=session_id,
        platform=platform,
        source=Source.FILE,
        payload_hash=digest,
        chunks=_chunks(records),
        now=AFTER,
    )


def learners(w: World) -> tuple[int, str, int, str]:
    a, b = w.actors["learner"], w.actors["staff"]
    return a.person_id, a.phone, b.person_id, b.phone


async def test_one_presence_from_three_joins_on_two_devices_clipped_to_the_window(world: World) -> None:
    await world.enroll(world.actors["staff"].person_id, world.course_id)
    sid = await external_session(world)
    learner, phone, _staff, _ = learners(world)
    records = [
        # Early join (before the schedule) on a PC, a second device overlapping, a rejoin staying late.
        row(1, at(-20), at(50), phone=phone, device="1"),
        row(2, at(40), at(70), phone=phone, device="3"),
        row(3, at(75), at(140), phone=phone, device="1"),
        row(4, at(0), at(120), pstn=True, name="138****8000"),
        row(5, at(5), at(115), name="改了名字的人"),
    ]
    report = await import_records(world, sid, records, "file-1")
    assert report.counts == {"rows": 5, "matched": 3, "needs_review": 2, "skipped": 0}

    assert (await settle.settle_external(world.db, sid, at(119))).entries == 0  # the schedule is not over
    result = await settle.settle_due(world.db, AFTER)
    assert (result.sessions, result.entries) == (1, 1)
    (entry,) = await entries(world.db, session_id=sid)
    # Window: the schedule (T0..T0+120), the records spanning it. Present: 0..70 ∪ 75..120 = 115 min of 120.
    assert (entry.person_id, entry.kind, entry.status) == (learner, "external", "pending")
    assert entry.evidence["figures"]["present_s"] == 115 * 60
    assert entry.evidence["figures"]["threshold_met"] is True
    assert (entry.minutes, entry.xueshi) == (120.0, Decimal("2.00"))  # the course holds 2 学时
    assert entry.evidence["course_cap_applied"] is True
    assert entry.evidence["window"] == [[at(0).isoformat(), at(120).isoformat()]]
    assert entry.evidence["window_source"] == "records"
    assert entry.evidence["batch_ids"] == [report.batch_id]
    async with world.db.sessions.begin() as s:
        ids = sorted(
            await s.scalars(
                select(ExternalRecordRow.id).where(
                    ExternalRecordRow.session_id == sid, ExternalRecordRow.person_id == learner
                )
            )
        )
        audit = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == settle.EXTERNAL_SETTLED))
        ).one()
    assert entry.evidence["record_ids"] == ids
    assert audit.detail["uncredited_records"] == {"pstn": 1, "unmatched": 1}  # listed, never credited (R20)

    # The same file again changes nothing, and settling again writes nothing.
    again = await import_records(world, sid, records, "file-1")
    assert again.already_imported
    assert (await settle.settle_due(world.db, AFTER + timedelta(minutes=5))).sessions == 0
    assert len(await entries(world.db, session_id=sid)) == 1


async def test_a_hand_match_after_settlement_credits_that_person_alone(world: World) -> None:
    await world.enroll(world.actors["staff"].person_id, world.course_id)
    sid = await external_session(world)
    learner, phone, staff, _ = learners(world)
    await import_records(
        world, sid, [row(1, at(0), at(120), phone=phone), row(2, at(2), at(118), name="改了名字的人")], "f"
    )
    await settle.settle_due(world.db, AFTER)
    assert [e.person_id for e in await entries(world.db, session_id=sid)] == [learner]
    queue = await external_imports.review_queue(world.db, _caller(world), sid)
    (item,) = queue["items"]
    await external_imports.match_record(world.db, _caller(world), item["record_id"], staff, AFTER)
    report = await settle.settle_due(world.db, AFTER + timedelta(minutes=1))
    assert report.entries == 1
    made = await entries(world.db, session_id=sid)
    assert [(e.person_id, e.kind, e.xueshi) for e in made] == [
        (learner, "external", Decimal("2.00")),
        (staff, "external", Decimal("2.00")),
    ]


async def test_a_later_import_closing_an_open_join_settles_that_person_again(world: World) -> None:
    sid = await external_session(world)
    learner, phone, _staff, _ = learners(world)
    # Still in the meeting at the first import: the open join closes at the window's end (§6.3); the
    # window's end comes from the others' records.
    await import_records(
        world, sid, [row(1, at(0), None, phone=phone), row(2, at(0), at(60), name="主持人")], "first"
    )
    await settle.settle_due(world.db, AFTER)
    (first,) = await entries(world.db, session_id=sid)
    assert first.evidence["window"] == [[at(0).isoformat(), at(60).isoformat()]]
    # The pull after the meeting brings the leave time, and the host's full stay.
    await import_records(
        world, sid, [row(1, at(0), at(30), phone=phone), row(3, at(0), at(120), name="主持人")], "second"
    )
    await settle.settle_due(world.db, AFTER + timedelta(minutes=1))
    made = await entries(world.db, session_id=sid)
    assert [(e.kind, e.reversal_of_id) for e in made] == [
        ("external", None),
        ("reversal", first.id),
        ("external", None),
    ]
    assert made[2].xueshi == Decimal("0.00")  # 30 of 120 minutes: below the threshold (R9)
    assert made[2].evidence["figures"]["present_s"] == 30 * 60
    assert ledger.net_xueshi(made) == Decimal("0.00")
    assert made[0].person_id == learner


async def test_dingtalk_live_totals_count_up_to_the_window_with_low_trust(world: World) -> None:
    sid = await external_session(world, "dingtalk_live", minutes=90)
    learner, phone, _staff, _ = learners(world)
    total = row(
        1, None, None, phone=phone, platform=Platform.DINGTALK_LIVE, watched_s=4 * 3600, trust=Trust.LOW
    )
    await import_records(world, sid, [total], "live", platform=Platform.DINGTALK_LIVE)
    await settle.settle_due(world.db, AFTER)
    (entry,) = await entries(world.db, session_id=sid)
    assert entry.evidence["totals_only"] is True
    assert entry.evidence["figures"]["present_s"] == 90 * 60  # min(4 h watched, the 90-minute session)
    assert (entry.minutes, entry.xueshi, entry.status) == (90.0, Decimal("2.00"), "pending")
    assert entry.evidence["trust"] == "low"
    assert entry.evidence["window_source"] == "schedule"
    assert "low_trust" in await flag_codes(world.db, learner)


async def test_a_session_credited_through_its_replay_is_not_credited_again_by_an_import(world: World) -> None:
    sid = await external_session(world)
    learner, phone, _staff, _ = learners(world)
    async with world.db.sessions.begin() as s:
        ledger.append(
            s,
            CreditEntry(
                person_id=learner,
                course_id=world.course_id,
                session_id=sid,
                credit_year=2026,
                credit_day="2026-03-02",
                category="professional",
                kind=ledger.REPLAY,
                minutes=120.0,
                xueshi=Decimal("2.5"),
                policy_version=0,
                computed_at=AFTER,
                status=ledger.PENDING,
                note="",
                evidence={"credited_spans": [[at(200).isoformat(), at(320).isoformat()]]},
            ),
        )
    await import_records(world, sid, [row(1, at(0), at(120), phone=phone)], "f")
    await settle.settle_due(world.db, AFTER)
    replay, external = await entries(world.db, session_id=sid)
    assert (external.kind, external.xueshi, external.note) == (
        "external",
        Decimal("0.00"),
        "already credited",
    )
    assert ledger.net_xueshi([replay, external]) == Decimal("2.50")


def _caller(w: World) -> Caller:
    admin = w.actors["provider_admin"]
    return Caller(admin.person_id, None, frozenset({(Role.PROVIDER_ADMIN, w.orgs["provider"])}))
