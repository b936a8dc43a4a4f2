"""Who may read a certificate's PDF and who may revoke it.

Read: its holder, the administrators of the holder's employer, and those who supervise its issuer.
Revoke: those who supervise its issuer, and the administrators of the provider that issued it (course
certificates) — never the holder. Supervise: admins and the HR bureau (人社局) every certificate; an
industry department (行业主管部门) the course certificates of providers in its own sector.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain import Caller, OrgType, Role
from catalog.models import Certificate, Organization, Person


async def supervises(s: AsyncSession, caller: Caller, issuer_org_id: int | None) -> bool:
    if caller.is_admin:
        return True
    bureau_orgs = [org for role, org in caller.roles if role == Role.BUREAU and org is not None]
    if not bureau_orgs:
        return False
    orgs = list(await s.scalars(select(Organization).where(Organization.id.in_(bureau_orgs))))
    if any(o.type == OrgType.HRSS_BUREAU for o in orgs):
        return True
    if issuer_org_id is None:  # an annual transcript spans sectors: the HR bureau's
        return False
    issuer = await s.get(Organization, issuer_org_id)
    if issuer is None or issuer.sector is None:
        return False
    return any(o.type == OrgType.INDUSTRY_DEPT and o.sector == issuer.sector for o in orgs)


async def may_read(s: AsyncSession, caller: Caller, cert: Certificate) -> bool:
    if cert.person_id == caller.person_id:
        return True
    holder = await s.get(Person, cert.person_id)
    employer = holder.employer_org_id if holder is not None else None
    if employer is not None and caller.holds(Role.EMPLOYER_ADMIN, employer):
        return True
    return await supervises(s, caller, cert.issuer_org_id)


async def revoking_role(s: AsyncSession, caller: Caller, cert: Certificate) -> str | None:
    """The role in which the caller may revoke the certificate (recorded in the audit log), or None."""
    if cert.person_id == caller.person_id:
        return None  # nobody revokes their own (fraud 21's rule, for certificates too)
    if await supervises(s, caller, cert.issuer_org_id):
        return Role.ADMIN.value if caller.is_admin else Role.BUREAU.value
    if cert.issuer_org_id is not None and caller.holds(Role.PROVIDER_ADMIN, cert.issuer_org_id):
        return Role.PROVIDER_ADMIN.value
    return None
