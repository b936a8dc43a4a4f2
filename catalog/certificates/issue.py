"""Issuing certificates from the ledger (never typed in), and a person's own certificates.

A course certificate certifies the person's registered entries of that course in that credit year; an
annual transcript all their registered entries of the year. Registered means status `registered`, not a
reversal and not reversed (catalog.credit.ledger). The issuer of a course certificate is the course's
provider; of an annual transcript, the platform (LECTERN_PLATFORM_NAME).

Asking again when nothing changed (the same entries, name, course title and issuer) gives the current
certificate back; otherwise a new one is issued and the current one is marked replaced by it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from catalog import audit
from catalog import fields as f
from catalog.certificates import records, rules
from catalog.credit import ledger
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import Certificate, Course, CreditEntry, Organization, Person
from infra.errors import Conflict, Invalid, NotFound

log = logging.getLogger(__name__)

YEAR_MIN, YEAR_MAX = 2000, 2100


@dataclass(frozen=True)
class IssueRequest:
    scope: str
    year: int
    course_id: int | None


def parse(body: dict[str, Any]) -> IssueRequest:
    f.reject_unknown(body, {"scope", "year", "course_id"})
    scope = body.get("scope")
    if scope not in rules.SCOPES:
        raise Invalid("scope must be one of: course, annual", field="scope")
    year = f.integer(body, "year", minimum=YEAR_MIN, maximum=YEAR_MAX)
    assert year is not None
    course_id = f.integer(body, "course_id", minimum=1, required=False, nullable=True)
    if scope == rules.COURSE and course_id is None:
        raise Invalid("course_id is required for a course certificate", field="course_id")
    if scope == rules.ANNUAL and course_id is not None:
        raise Invalid("an annual certificate covers every course: leave course_id out", field="course_id")
    return IssueRequest(str(scope), year, course_id)


async def _lock_person(s: AsyncSession, person_id: int) -> None:
    """One issuance per person at a time (as catalog.credit.settle locks people): on PostgreSQL a row
    lock; on SQLite a no-op write first, which takes the database's write lock until commit."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(select(Person.id).where(Person.id == person_id).with_for_update())
    else:
        await s.execute(update(Person).where(Person.id == person_id).values(name=Person.name))


async def _registered(s: AsyncSession, person_id: int, req: IssueRequest) -> list[rules.Entry]:
    reversal = aliased(CreditEntry)
    stmt = (
        select(CreditEntry.id, CreditEntry.category, CreditEntry.xueshi)
        .where(
            CreditEntry.person_id == person_id,
            CreditEntry.credit_year == req.year,
            CreditEntry.status == ledger.REGISTERED,
            CreditEntry.kind != ledger.REVERSAL,
            CreditEntry.xueshi > Decimal(0),
            ~exists().where(reversal.reversal_of_id == CreditEntry.id),
        )
        .order_by(CreditEntry.id)
    )
    if req.course_id is not None:
        stmt = stmt.where(CreditEntry.course_id == req.course_id)
    return [rules.Entry(i, c, x) for i, c, x in await s.execute(stmt)]


async def _current(s: AsyncSession, person_id: int, req: IssueRequest) -> Certificate | None:
    stmt = (
        select(Certificate)
        .where(
            Certificate.person_id == person_id,
            Certificate.scope == req.scope,
            Certificate.year == req.year,
            Certificate.course_id.is_(None)
            if req.course_id is None
            else Certificate.course_id == req.course_id,
            Certificate.revoked_at.is_(None),
            Certificate.replaced_by_id.is_(None),
        )
        .order_by(Certificate.id.desc())
    )
    return (await s.scalars(stmt)).first()


async def _issuer(
    s: AsyncSession, req: IssueRequest, ctx: records.Context
) -> tuple[int | None, str, str | None]:
    """(issuer org id, issuer name, course title)."""
    if req.course_id is None:
        return None, ctx.platform_name, None
    course = await s.get(Course, req.course_id)
    if course is None:
        raise NotFound(f"course {req.course_id} not found", field="course_id")
    provider = await s.get(Organization, course.provider_org_id)
    return course.provider_org_id, provider.name if provider else "", course.title


async def _fresh_serial(s: AsyncSession, year: int) -> str:
    while True:  # 50 random bits: a clash is all but impossible, and then the next draw is taken
        serial = rules.new_serial(year)
        if await records.by_serial(s, serial) is None:
            return serial


async def issue(
    db: Database, ctx: records.Context, caller: Caller, req: IssueRequest, now: datetime
) -> tuple[dict[str, Any], bool]:
    """The caller's certificate for `req`: (its view, True) when newly issued, (the current one, False)
    when it already certifies exactly these entries. Conflict when nothing registered is there to certify."""
    async with db.sessions.begin() as s:
        await _lock_person(s, caller.person_id)
        person = await s.get(Person, caller.person_id)
        if person is None:
            raise NotFound("no such person", field="person_id")
        issuer_org_id, issuer_name, course_title = await _issuer(s, req, ctx)
        entries = await _registered(s, caller.person_id, req)
        if not entries:
            raise Conflict(
                "no registered 学时 to certify: credit counts once the employer has approved it",
                field="course_id" if req.course_id is not None else "year",
            )
        ids = [e.id for e in entries]
        current = await _current(s, caller.person_id, req)
        if current is not None and (
            sorted(current.entry_ids),
            current.person_name,
            current.course_title,
            current.issuer_name,
        ) == (ids, person.name, course_title, issuer_name):
            status = (await records.statuses(s, [current]))[current.id]
            return records.item_view(current, status, ctx), False
        sums = rules.totals(entries)
        cert = Certificate(
            serial=await _fresh_serial(s, req.year),
            verify_code=rules.new_code(),
            person_id=person.id,
            person_name=person.name,
            scope=req.scope,
            year=req.year,
            course_id=req.course_id,
            course_title=course_title,
            total_xueshi=sums.total,
            public_xueshi=sums.public,
            professional_xueshi=sums.professional,
            entry_ids=ids,
            issuer_org_id=issuer_org_id,
            issuer_name=issuer_name,
            issued_at=now,
        )
        # Rendered before anything is written: no font, no certificate (503, nothing half-issued).
        cert.pdf_sha256 = hashlib.sha256(await records.render(cert, ctx)).hexdigest()
        s.add(cert)
        await s.flush()
        if current is not None:
            current.replaced_by_id = cert.id
        audit.record(
            s,
            actor=caller.person_id,
            action="certificate.issued",
            subject_type="certificate",
            subject_id=cert.serial,
            detail={
                "person_id": person.id,
                "scope": req.scope,
                "year": req.year,
                "course_id": req.course_id,
                "entry_ids": ids,
                "total_xueshi": str(sums.total),
                "pdf_sha256": cert.pdf_sha256,
                "replaces": current.serial if current is not None else None,
            },
            at=now,
        )
        view = records.item_view(cert, rules.Status(rules.VALID, None), ctx)
    log.info("certificate issued person=%s serial=%s scope=%s", person.id, cert.serial, req.scope)
    return view, True


async def mine(db: Database, ctx: records.Context, caller: Caller) -> dict[str, Any]:
    """The caller's certificates, newest first, each with its status now."""
    async with db.sessions.begin() as s:
        certs = list(
            await s.scalars(
                select(Certificate)
                .where(Certificate.person_id == caller.person_id)
                .order_by(Certificate.issued_at.desc(), Certificate.id.desc())
            )
        )
        status = await records.statuses(s, certs)
    return {"items": [records.item_view(c, status[c.id], ctx) for c in certs]}
