"""Organizations (bureau, association, providers, employers) and the roles people hold in them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from catalog import forms
from catalog.db import Database
from catalog.domain import Caller, OrgType, Role, role_allowed_in
from catalog.fields import Page
from catalog.models import Organization, Person, RoleAssignment
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


def org_view(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "type": org.type,
        "name": org.name,
        "unified_social_credit_code": org.unified_social_credit_code,
        "region_code": org.region_code,
        "parent_id": org.parent_id,
        "sector": org.sector,
    }


async def list_orgs(db: Database, kind: OrgType | None, page: Page) -> dict[str, Any]:
    conds = [Organization.type == kind.value] if kind else []
    async with db.sessions.begin() as s:
        total = int(await s.scalar(select(func.count()).select_from(Organization).where(*conds)) or 0)
        orgs = (
            await s.scalars(
                select(Organization)
                .where(*conds)
                .order_by(Organization.id)
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
    return {
        "items": [org_view(o) for o in orgs],
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
    }


async def get(db: Database, org_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id} not found", field="org_id")
        return org_view(org)


async def create(db: Database, caller: Caller, draft: forms.OrgDraft, now: datetime) -> dict[str, Any]:
    if not caller.is_supervisor:
        raise Forbidden("only administrators and the HR&SS bureau may register organizations")
    try:
        async with db.sessions.begin() as s:
            if draft.parent_id is not None and await s.get(Organization, draft.parent_id) is None:
                raise Invalid(f"organization {draft.parent_id} not found", field="parent_id")
            if draft.unified_social_credit_code and await s.scalar(
                select(Organization.id).where(
                    Organization.unified_social_credit_code == draft.unified_social_credit_code
                )
            ):
                raise Conflict("an organization with this code exists", field="unified_social_credit_code")
            org = Organization(
                type=draft.type.value,
                name=draft.name,
                unified_social_credit_code=draft.unified_social_credit_code,
                region_code=draft.region_code,
                parent_id=draft.parent_id,
                sector=draft.sector,
                created_at=now,
            )
            s.add(org)
            await s.flush()
    except IntegrityError:
        raise Conflict("an organization with this code exists", field="unified_social_credit_code") from None
    log.info("organization created org=%s person=%s", org.id, caller.person_id)
    return org_view(org)


async def assign_role(
    db: Database, caller: Caller, org_id: int, person_id: int, role: Role, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Grant `role` in the organization (admins only); (assignment, created) — granting twice is a no-op."""
    if not caller.is_admin:
        raise Forbidden("only administrators may assign roles")
    async with db.sessions.begin() as s:
        org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id} not found", field="org_id")
        if await s.get(Person, person_id) is None:
            raise Invalid(f"person {person_id} not found", field="person_id")
        if not role_allowed_in(role, OrgType(org.type)):
            raise Invalid(f"the role {role.value} cannot be held in a {org.type}", field="role")
        existing = (
            await s.scalars(
                select(RoleAssignment).where(
                    RoleAssignment.person_id == person_id,
                    RoleAssignment.role == role.value,
                    RoleAssignment.org_id == org_id,
                )
            )
        ).first()
        created = existing is None
        if existing is None:
            existing = RoleAssignment(person_id=person_id, role=role.value, org_id=org_id, created_at=now)
            s.add(existing)
            await s.flush()
    if created:
        log.info(
            "role granted role=%s org=%s person=%s by=%s", role.value, org_id, person_id, caller.person_id
        )
    return {"id": existing.id, "person_id": person_id, "role": role.value, "org_id": org_id}, created
