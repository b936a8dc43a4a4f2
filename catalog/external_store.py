"""Storing external attendance: a batch and its ExternalRecords, idempotently (a row already stored for
the session, platform and row key is not stored again; an open join that has since closed gets its
leave time), each new row with its identity decision (integrations.identity: linked account → phone
hash → manual review; dial-in always to review). API pulls, webhook deliveries and files all end here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import (
    Enrollment,
    ExternalAccountLink,
    ExternalImportBatch,
    ExternalRecordRow,
    Person,
    Session,
)
from integrations.identity import Decision, Link, PhoneIndex, decide, stored_phone_hash
from integrations.records import ExternalRecord, Platform, Source, vendor_of

CHUNK = 500


@dataclass
class StoreResult:
    batch_id: int
    fetched: int = 0
    added: int = 0
    closed: int = 0  # stored open joins whose leave time this batch brought
    unchanged: int = 0
    by_match: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "added": self.added,
            "closed": self.closed,
            "unchanged": self.unchanged,
            "by_match": dict(self.by_match),
        }


def payload_hash(records: Iterable[ExternalRecord]) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r.row_key}|{r.leave_at}|{r.watched_s}\n".encode())
    return digest.hexdigest()


async def new_batch(
    s: AsyncSession,
    session_id: int,
    platform: Platform,
    source: Source,
    created_by: int | None,
    now: datetime,
    *,
    digest: str = "",
    file_name: str | None = None,
) -> ExternalImportBatch:
    batch = ExternalImportBatch(
        session_id=session_id,
        platform=platform.value,
        source=source.value,
        created_by=created_by,
        fetched_at=now,
        payload_hash=digest,
        file_name=file_name,
        status="running",
        counts={},
        report={},
        error="",
    )
    s.add(batch)
    await s.flush()
    return batch


async def _identity(
    s: AsyncSession, session: Session, platform: Platform, tencent_secret_id: str | None
) -> tuple[dict[str, Link], PhoneIndex]:
    vendor = vendor_of(platform).value
    links = {
        uid: Link(pid, verified is not None)
        for uid, pid, verified in await s.execute(
            select(
                ExternalAccountLink.external_user_id,
                ExternalAccountLink.person_id,
                ExternalAccountLink.verified_at,
            ).where(ExternalAccountLink.vendor == vendor)
        )
    }
    phones = dict(
        (
            await s.execute(
                select(Person.id, Person.phone)
                .join(Enrollment, Enrollment.person_id == Person.id)
                .where(Enrollment.course_id == session.course_id, Enrollment.status == "enrolled")
            )
        ).all()
    )
    return links, PhoneIndex(phones, tencent_secret_id)


async def _apply_link(
    s: AsyncSession, platform: Platform, record: ExternalRecord, decision: Decision, now: datetime
) -> None:
    if not record.external_user_id or decision.person_id is None:
        return
    vendor = vendor_of(platform).value
    link = (
        await s.scalars(
            select(ExternalAccountLink).where(
                ExternalAccountLink.vendor == vendor,
                ExternalAccountLink.external_user_id == record.external_user_id,
            )
        )
    ).first()
    if decision.new_link and link is None:
        s.add(
            ExternalAccountLink(
                person_id=decision.person_id,
                vendor=vendor,
                external_user_id=record.external_user_id,
                verified_at=now,
                created_at=now,
            )
        )
        await s.flush()
    elif decision.verify_link and link is not None and link.verified_at is None:
        link.verified_at = now


async def store_records(
    s: AsyncSession,
    session: Session,
    batch: ExternalImportBatch,
    records: Sequence[ExternalRecord],
    now: datetime,
    *,
    tencent_secret_id: str | None = None,
    result: StoreResult | None = None,
) -> StoreResult:
    """Store `records` under `batch` (inside the caller's transaction); call it once per chunk of a
    large import with the same `result` to accumulate the counts."""
    result = result or StoreResult(batch.id)
    if not records:
        return result
    platform = Platform(batch.platform)
    links, phones = await _identity(s, session, platform, tencent_secret_id)
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        result.fetched += len(chunk)
        existing = {
            row.row_key: row
            for row in await s.scalars(
                select(ExternalRecordRow).where(
                    ExternalRecordRow.session_id == session.id,
                    ExternalRecordRow.platform == platform.value,
                    ExternalRecordRow.row_key.in_({r.row_key for r in chunk}),
                )
            )
        }
        for record in chunk:
            row = existing.get(record.row_key)
            if row is not None:
                if row.leave_at is None and record.leave_at is not None:
                    row.leave_at = record.leave_at
                    row.updated_at = now
                    result.closed += 1
                else:
                    result.unchanged += 1
                continue
            decision = decide(record, links, phones)
            phone_hash, scheme = stored_phone_hash(record)
            row = _row(session.id, batch.id, record, decision, phone_hash, scheme, now)
            s.add(row)
            existing[record.row_key] = row
            await _apply_link(s, platform, record, decision, now)
            result.added += 1
            result.by_match[decision.match.value] = result.by_match.get(decision.match.value, 0) + 1
        await s.flush()
    return result


def _row(
    session_id: int,
    batch_id: int,
    r: ExternalRecord,
    decision: Decision,
    phone_hash: str | None,
    scheme: str | None,
    now: datetime,
) -> ExternalRecordRow:
    return ExternalRecordRow(
        batch_id=batch_id,
        session_id=session_id,
        platform=r.platform.value,
        row_key=r.row_key,
        external_meeting_ref=r.external_meeting_ref[:128],
        external_user_id=r.external_user_id,
        phone_hash=phone_hash,
        phone_scheme=scheme,
        display_name=r.display_name[:200],
        join_at=r.join_at,
        leave_at=r.leave_at,
        watched_s=r.watched_s,
        instance=r.instance,
        connection_id=r.connection_id,
        is_pstn=r.is_pstn,
        trust=r.trust.value,
        person_id=decision.person_id,
        match=decision.match.value,
        row_ref=r.raw_ref[:200],
        created_at=now,
        updated_at=now,
    )


def finish(batch: ExternalImportBatch, result: StoreResult, now: datetime, status: str = "done") -> None:
    batch.status = status
    batch.finished_at = now
    batch.counts = result.counts()
