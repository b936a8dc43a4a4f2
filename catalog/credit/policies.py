"""The credit policy store: versions of catalog.credit.policy.CreditPolicy in `credit_policies`. A change
is a new version (never an update), made by an administrator and written to the audit log; credits
already computed keep the version they name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from catalog import audit
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import CreditPolicyVersion
from infra.errors import Conflict, Forbidden, Invalid, NotFound

NOTE_MAX = 500
Reader = AsyncSession | AsyncConnection


async def current(s: Reader) -> CreditPolicy:
    """The latest stored version, or the built-in defaults (version 0) when none is stored."""
    row = (
        await s.execute(
            select(CreditPolicyVersion.version, CreditPolicyVersion.params)
            .order_by(CreditPolicyVersion.version.desc())
            .limit(1)
        )
    ).first()
    return CreditPolicy() if row is None else CreditPolicy.from_dict(row.params, row.version)


async def by_version(s: Reader, version: int) -> CreditPolicy:
    """One stored version (0 is the built-in defaults); NotFound for a version never stored."""
    if version == 0:
        return CreditPolicy()
    params = await s.scalar(select(CreditPolicyVersion.params).where(CreditPolicyVersion.version == version))
    if params is None:
        raise NotFound(f"credit policy version {version} not found", field="version")
    return CreditPolicy.from_dict(params, version)


def view(policy: CreditPolicy, row: CreditPolicyVersion | None = None) -> dict[str, Any]:
    """A version as the API shows it: its parameters and who made it when (nothing for version 0)."""
    return {
        "version": policy.version,
        "params": {k: v for k, v in policy.to_dict().items() if k != "version"},
        "created_by": row.created_by if row else None,
        "created_at": row.created_at.isoformat() if row else None,
        "note": row.note if row else "内置默认规则",
    }


async def current_view(db: Database) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        row = await s.scalar(
            select(CreditPolicyVersion).order_by(CreditPolicyVersion.version.desc()).limit(1)
        )
        policy = CreditPolicy() if row is None else CreditPolicy.from_dict(row.params, row.version)
    return view(policy, row)


async def versions(db: Database, caller: Caller) -> dict[str, Any]:
    """Every version, newest first, ending with the built-in version 0 (administrators and the bureau)."""
    if not caller.is_supervisor:
        raise Forbidden("only administrators and the bureau see the credit policy's history")
    async with db.sessions.begin() as s:
        rows = (
            await s.scalars(select(CreditPolicyVersion).order_by(CreditPolicyVersion.version.desc()))
        ).all()
    items = [view(CreditPolicy.from_dict(r.params, r.version), r) for r in rows]
    items.append(view(CreditPolicy()))
    return {"items": items, "current": items[0]["version"]}


def parse_new(body: Any) -> tuple[dict[str, Any], str]:
    """The parameters and note of a new version, validated field by field (Invalid names the field)."""
    if not isinstance(body, dict):
        raise Invalid("a credit policy is a JSON object", field="policy")
    params = {k: v for k, v in body.items() if k != "note"}
    if "version" in params:
        raise Invalid("version is assigned by the server", field="version")
    note = body.get("note", "")
    if not isinstance(note, str) or not note.strip():
        raise Invalid("note is required: say why the rules change", field="note")
    if len(note) > NOTE_MAX:
        raise Invalid(f"note must be at most {NOTE_MAX} characters", field="note")
    CreditPolicy.from_dict(params, 0)  # validates; the version is assigned when stored
    return params, note.strip()


async def create(
    db: Database, caller: Caller, params: dict[str, Any], note: str, now: datetime
) -> dict[str, Any]:
    """Store a new version (last + 1) from full parameters (missing ones take the built-in defaults)."""
    if not caller.is_admin:
        raise Forbidden("only administrators change the credit policy")
    try:
        return await _store(db, caller, params, note, now)
    except IntegrityError:
        # Two administrators saved at once: both took the same last + 1; the second one is refused.
        raise Conflict("another credit policy version was saved at the same time: reload and retry") from None


async def _store(
    db: Database, caller: Caller, params: dict[str, Any], note: str, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        last = await s.scalar(select(func.max(CreditPolicyVersion.version))) or 0
        policy = CreditPolicy.from_dict(params, last + 1)
        stored = {k: v for k, v in policy.to_dict().items() if k != "version"}
        row = CreditPolicyVersion(
            version=policy.version, params=stored, created_by=caller.person_id, created_at=now, note=note
        )
        s.add(row)
        audit.record(
            s,
            actor=caller.person_id,
            action="credit_policy.create",
            subject_type="credit_policy",
            subject_id=policy.version,
            detail={"params": stored, "note": note, "previous_version": last},
            at=now,
        )
    return view(policy, row)


async def heartbeat_period_s(db: Database) -> float:
    """The heartbeat period of the policy in force: what live pages are told when their room opens."""
    async with db.sessions.begin() as s:
        return float((await current(s)).heartbeat_period_s)
