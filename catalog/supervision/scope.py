"""Who supervises which providers (pure): the HR&SS bureau (a `bureau` in an `hrss_bureau` organization)
and administrators see every provider; an industry department (a `bureau` in an `industry_dept`
organization) sees only the providers whose `sector` equals its own; nobody else sees the supervision view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from catalog.domain import Caller, OrgType, Role
from infra.errors import Forbidden


@dataclass(frozen=True)
class OrgFacts:
    """What the rules need of an organization: its type and its sector."""

    type: str
    sector: str | None


@dataclass(frozen=True)
class Scope:
    """Every provider (`everything`), or only those of `sectors` (possibly none: an industry department
    whose own sector is not set yet sees nobody)."""

    everything: bool
    sectors: frozenset[str] = frozenset()

    def sees(self, sector: str | None) -> bool:
        return self.everything or (sector is not None and sector in self.sectors)

    def to_dict(self) -> dict[str, object]:
        return {"all": self.everything, "sectors": sorted(self.sectors)}


def bureau_org_ids(caller: Caller) -> list[int]:
    """The organizations in which the caller holds the bureau role (whose type and sector decide)."""
    return sorted(org for role, org in caller.roles if role == Role.BUREAU and org is not None)


def scope_of(caller: Caller, orgs: Mapping[int, OrgFacts]) -> Scope:
    """The caller's supervision scope, given the facts of the organizations of bureau_org_ids(caller);
    Forbidden for anyone who supervises nothing. Several bureau roles add up."""
    if caller.is_admin:
        return Scope(everything=True)
    sectors: set[str] = set()
    supervisor = False
    for org_id in bureau_org_ids(caller):
        facts = orgs.get(org_id)
        if facts is None:
            continue
        if facts.type == OrgType.HRSS_BUREAU:
            return Scope(everything=True)
        if facts.type == OrgType.INDUSTRY_DEPT:
            supervisor = True
            if facts.sector:
                sectors.add(facts.sector)
    if not supervisor:
        raise Forbidden("only the HR&SS bureau, industry departments and administrators supervise providers")
    return Scope(everything=False, sectors=frozenset(sectors))


def require_sector(scope: Scope, sector: str | None) -> None:
    """A `sector` filter outside the caller's scope is refused (an industry department asking for
    another industry's providers)."""
    if sector is not None and not scope.sees(sector):
        raise Forbidden(f"the sector {sector} is not one you supervise", field="sector")


def require_provider(scope: Scope, provider_id: int, sector: str | None) -> None:
    """A provider outside the caller's scope is refused at every level (its sessions, their entries)."""
    if not scope.sees(sector):
        raise Forbidden(f"provider {provider_id} is not in a sector you supervise", field="provider")
