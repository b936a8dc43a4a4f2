"""Reading the audit log (catalog.audit writes it): the HR bureau and admins, filtered and paged, newest
first. There is no API that changes or removes a row, and the database refuses UPDATE and DELETE on
`audit_log` (triggers of migration 0010)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select

from catalog.credit.approval import authority
from catalog.db import Database
from catalog.domain import Caller
from catalog.fields import Page
from catalog.models import AuditEntry, Person
from infra.errors import Forbidden


@dataclass(frozen=True)
class Filters:
    subject_type: str = ""
    subject_id: str = ""
    actor: int | None = None
    action: str = ""
    since: datetime | None = None  # at ≥ since
    before: datetime | None = None  # at < before


async def read(db: Database, caller: Caller, filters: Filters, page: Page) -> dict[str, Any]:
    """Rows newest first (`has_more` says whether another page follows). Admins and the HR bureau; an
    industry department's staff do not read it (their view is limited to their sector)."""
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not (a.admin or a.hrss_bureau is not None):
            raise Forbidden("only the HR bureau and admins read the audit log")
        where: list[ColumnElement[bool]] = []
        if filters.subject_type:
            where.append(AuditEntry.subject_type == filters.subject_type)
        if filters.subject_id:
            where.append(AuditEntry.subject_id == filters.subject_id)
        if filters.actor is not None:
            where.append(AuditEntry.actor_person_id == filters.actor)
        if filters.action:
            where.append(AuditEntry.action == filters.action)
        if filters.since is not None:
            where.append(AuditEntry.at >= filters.since)
        if filters.before is not None:
            where.append(AuditEntry.at < filters.before)
        rows = (
            await s.execute(
                select(AuditEntry, Person.name)
                .outerjoin(Person, Person.id == AuditEntry.actor_person_id)
                .where(*where)
                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                .offset(page.offset)
                .limit(page.page_size + 1)
            )
        ).all()
    items = [
        {
            "id": row.id,
            "at": row.at.isoformat(),
            "actor_person_id": row.actor_person_id,
            "actor_name": name,
            "action": row.action,
            "subject_type": row.subject_type,
            "subject_id": row.subject_id,
            "detail": row.detail,
        }
        for row, name in rows[: page.page_size]
    ]
    return {
        "items": items,
        "page": page.page,
        "page_size": page.page_size,
        "has_more": len(rows) > page.page_size,
    }
