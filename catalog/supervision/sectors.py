"""The sector (行业) of an organization: the industry a provider is supervised in, or the one an industry
department supervises. Set by administrators (audited); read by the supervision scope rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from catalog import audit, orgs
from catalog import fields as f
from catalog.db import Database
from catalog.domain import PROVIDER_TYPES, Caller, OrgType
from catalog.models import Organization
from infra.errors import Forbidden, Invalid, NotFound

HAS_SECTOR = frozenset({*PROVIDER_TYPES, OrgType.INDUSTRY_DEPT})


def parse(body: Mapping[str, Any]) -> str | None:
    """`{"sector": "卫生健康" | null}`: null (or blank) clears it."""
    f.reject_unknown(body, {"sector"})
    if "sector" not in body:
        raise Invalid("sector is required", field="sector")
    value = f.text(body, "sector", max_len=f.SECTOR_MAX, required=False, min_len=0)
    return value or None


async def set_sector(
    db: Database, caller: Caller, org_id: int, sector: str | None, now: datetime
) -> dict[str, Any]:
    if not caller.is_admin:
        raise Forbidden("only administrators set an organization's sector")
    async with db.sessions.begin() as s:
        org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id} not found", field="org_id")
        if OrgType(org.type) not in HAS_SECTOR:
            raise Invalid(
                "only providers (CE bases, training institutions) and industry departments have a sector",
                field="sector",
            )
        before = org.sector
        org.sector = sector
        audit.record(
            s,
            actor=caller.person_id,
            action="organization.sector_set",
            subject_type="organization",
            subject_id=org.id,
            detail={"from": before, "to": sector},
            at=now,
        )
        return orgs.org_view(org)
