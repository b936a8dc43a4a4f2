"""The expert directory: people holding the expert role, for the provider console's expert picker.

Providers assign experts to their sessions; they need to find experts who have not yet taught for
them. The directory shows what a session page shows of an expert anyway (name, organization), never
a phone number, and only to those who assign experts or supervise."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from catalog.db import Database
from catalog.domain import Caller, Role
from catalog.fields import Page
from catalog.models import Organization, Person, RoleAssignment
from catalog.search import like_pattern
from infra.errors import Forbidden


def may_browse(caller: Caller) -> bool:
    return caller.is_supervisor or caller.holds(Role.PROVIDER_ADMIN, anywhere=True)


async def directory(db: Database, caller: Caller, q: str, page: Page) -> dict[str, Any]:
    """Experts whose name contains `q` (all if empty), by name; each with the organizations in which
    they hold the expert role."""
    if not may_browse(caller):
        raise Forbidden("only providers' administrators and supervisors may browse the expert directory")
    conds = [RoleAssignment.role == Role.EXPERT.value]
    if q:
        conds.append(Person.name.ilike(like_pattern(q), escape="\\"))
    experts = (
        select(Person.id, Person.name)
        .join(RoleAssignment, RoleAssignment.person_id == Person.id)
        .where(*conds)
        .distinct()
        .subquery()
    )
    async with db.reading() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(experts)) or 0)
        people = (
            await conn.execute(
                select(experts.c.id, experts.c.name)
                .order_by(experts.c.name, experts.c.id)
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
        orgs: dict[int, list[dict[str, Any]]] = {p.id: [] for p in people}
        if people:
            rows = await conn.execute(
                select(RoleAssignment.person_id, Organization.id, Organization.name)
                .join(Organization, Organization.id == RoleAssignment.org_id)
                .where(RoleAssignment.role == Role.EXPERT.value, RoleAssignment.person_id.in_(list(orgs)))
                .order_by(RoleAssignment.person_id, Organization.id)
            )
            for person_id, org_id, org_name in rows:
                orgs[person_id].append({"id": org_id, "name": org_name})
    return {
        "items": [{"id": p.id, "name": p.name, "organizations": orgs[p.id]} for p in people],
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
    }
