"""Employer approval of ledger entries (R23) and its aftermath: the queues of pending entries with the
evidence behind each, approve / reject (one by one or in bulk), revoke, override, and each entry's
decision history. The only code that changes an entry's `status` (with `decided_by`/`decided_at`); every
change writes a CreditDecision row and an audit row in the same transaction, and approvals that look
rubber-stamped (fraud 21) raise flags without being refused. Who may decide what: approval_rules."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from catalog import audit
from catalog import fields as f
from catalog.credit import approval_rules as rules
from catalog.credit import flags, ledger, policies
from catalog.credit.views import figures
from catalog.db import Database
from catalog.domain import Caller, OrgType, Role, mask_phone
from catalog.models import (
    Course,
    CreditDecision,
    CreditEntry,
    FraudFlag,
    Organization,
    Person,
    RoleAssignment,
    Session,
)
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

DECIDE_MAX = 1000  # entry ids in one call (one transaction)
REASON_MAX = 1000
# The queue's status filter: one status, "decided" (registered, rejected or revoked by someone), or all.
LIST_STATUSES = (*ledger.STATUSES, "decided", "all")
DECIDED = (ledger.REGISTERED, ledger.REJECTED, ledger.REVOKED)


@dataclass(frozen=True)
class Filters:
    status: str = ledger.PENDING
    person_id: int | None = None
    year: int | None = None
    course_id: int | None = None


# -- who is asking ----------------------------------------------------------------------------------------


async def authority(s: AsyncSession, caller: Caller) -> rules.Authority:
    """The caller's deciding powers: their employers, the HR bureau they act for (a `bureau` role held in
    an `hrss_bureau` organization; an industry department's staff neither decide nor read these queues),
    admin."""
    employers = frozenset(o for r, o in caller.roles if r == Role.EMPLOYER_ADMIN and o is not None)
    bureau_orgs = sorted(o for r, o in caller.roles if r == Role.BUREAU and o is not None)
    hrss = None
    if bureau_orgs:
        hrss = await s.scalar(
            select(Organization.id)
            .where(Organization.id.in_(bureau_orgs), Organization.type == OrgType.HRSS_BUREAU.value)
            .order_by(Organization.id)
            .limit(1)
        )
    return rules.Authority(caller.person_id, employers, hrss, caller.is_supervisor, caller.is_admin)


def learner_is_employer_admin() -> ColumnElement[bool]:
    """Whether the learner (the `Person` of the enclosing query) holds `employer_admin` in their own
    employer now: their own entries the HR bureau may decide too (approval_rules.bureau_decides)."""
    return (
        exists()
        .where(
            RoleAssignment.person_id == Person.id,
            RoleAssignment.role == Role.EMPLOYER_ADMIN.value,
            RoleAssignment.org_id == Person.employer_org_id,
        )
        .correlate(Person)
    )


# -- parsing ------------------------------------------------------------------------------------------------


def parse_reason(body: Mapping[str, Any], *, required: bool) -> str:
    """The reason of a decision: required (non-blank) for reject, revoke and override."""
    reason = f.text(body, "reason", max_len=REASON_MAX, min_len=1 if required else 0, required=required)
    return reason or ""


def parse_decisions(body: Any) -> tuple[list[int], str, str]:
    """{entry_ids: [1..DECIDE_MAX ids], action: approve|reject, reason} → (ids, action, reason)."""
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="entry_ids")
    f.reject_unknown(body, {"entry_ids", "action", "reason"})
    action = body.get("action")
    if action not in (rules.APPROVE, rules.REJECT):
        raise Invalid(
            "action must be approve or reject (revoke and override have their own routes)", field="action"
        )
    ids = f.id_list(body, "entry_ids", max_items=DECIDE_MAX)
    if not ids:
        raise Invalid("entry_ids must name at least one credit entry", field="entry_ids")
    return ids, str(action), parse_reason(body, required=action in rules.NEEDS_REASON)


def parse_reason_body(body: Any) -> str:
    """{reason} of a revocation or an override."""
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="reason")
    f.reject_unknown(body, {"reason"})
    return parse_reason(body, required=True)


# -- the queues ---------------------------------------------------------------------------------------------


async def employer_queue(
    db: Database, caller: Caller, org_id: int, filters: Filters, page: f.Page
) -> dict[str, Any]:
    """The entries of one employer's staff (default: pending, oldest first), each with its evidence and
    the actions the caller may take. The employer's administrators; the bureau and admins read."""
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not (org_id in a.employer_orgs or a.supervisor):
            raise Forbidden("only this employer's administrators (and the bureau) see its staff's credit")
        org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id} not found", field="org_id")
        return await _queue(s, a, Person.employer_org_id == org_id, filters, page)


async def unaffiliated_queue(db: Database, caller: Caller, filters: Filters, page: f.Page) -> dict[str, Any]:
    """The entries of learners with no employer, which the HR bureau decides (admins and other bureau
    staff read)."""
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not a.supervisor:
            raise Forbidden("only the bureau and admins see the credit of learners without an employer")
        return await _queue(s, a, Person.employer_org_id.is_(None), filters, page)


async def employer_admins_queue(
    db: Database, caller: Caller, filters: Filters, page: f.Page
) -> dict[str, Any]:
    """The entries of employer administrators (learners holding `employer_admin` in their own
    employer): nobody decides their own, so another administrator of the employer or the HR bureau
    decides them; the bureau's queue of them (admins and other bureau staff read)."""
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not a.supervisor:
            raise Forbidden("only the bureau and admins see the credit of employer administrators")
        return await _queue(s, a, learner_is_employer_admin(), filters, page)


async def _queue(
    s: AsyncSession, a: rules.Authority, scope: ColumnElement[bool], filters: Filters, page: f.Page
) -> dict[str, Any]:
    later = aliased(CreditEntry)
    is_reversed = exists().where(later.reversal_of_id == CreditEntry.id)
    where: list[ColumnElement[bool]] = [scope, CreditEntry.kind != ledger.REVERSAL]
    if filters.status == ledger.PENDING:
        where += [CreditEntry.status == ledger.PENDING, ~is_reversed]
        order: list[ColumnElement[Any]] = [CreditEntry.computed_at.asc(), CreditEntry.id.asc()]
    elif filters.status == "decided":
        where += [CreditEntry.status.in_(DECIDED), CreditEntry.decided_at.is_not(None)]
        order = [CreditEntry.decided_at.desc(), CreditEntry.id.desc()]
    elif filters.status == "all":
        order = [CreditEntry.id.desc()]
    else:
        where.append(CreditEntry.status == filters.status)
        order = [CreditEntry.decided_at.desc().nulls_last(), CreditEntry.id.desc()]
    if filters.person_id is not None:
        where.append(CreditEntry.person_id == filters.person_id)
    if filters.year is not None:
        where.append(CreditEntry.credit_year == filters.year)
    if filters.course_id is not None:
        where.append(CreditEntry.course_id == filters.course_id)
    total = await s.scalar(
        select(func.count())
        .select_from(CreditEntry)
        .join(Person, Person.id == CreditEntry.person_id)
        .where(*where)
    )
    rows = (
        await s.execute(
            select(
                CreditEntry,
                Person.name,
                Person.phone,
                Person.employer_org_id,
                learner_is_employer_admin().label("learner_is_employer_admin"),
                Course.title,
                Session.title,
            )
            .join(Person, Person.id == CreditEntry.person_id)
            .outerjoin(Course, Course.id == CreditEntry.course_id)  # a mentorship award has no course
            .outerjoin(Session, Session.id == CreditEntry.session_id)
            .where(*where)
            .order_by(*order)
            .offset(page.offset)
            .limit(page.page_size)
        )
    ).all()
    entries = [r[0] for r in rows]
    context = await _context(s, entries)
    items = [
        entry_view(e, name, phone, employer, bool(is_admin), course_title, session_title, context, a)
        for e, name, phone, employer, is_admin, course_title, session_title in rows
    ]
    return {"items": items, "total": int(total or 0), "page": page.page, "page_size": page.page_size}


@dataclass
class _Context:
    """What the views of a page of entries need besides the entries: reversed ids, open flags by
    (person, session), the latest decision of each entry, deciders' names."""

    reversed: set[int]
    flags: dict[tuple[int, int | None], list[dict[str, Any]]]
    last: dict[int, CreditDecision]
    names: dict[int, str]


async def _context(s: AsyncSession, entries: Sequence[CreditEntry]) -> _Context:
    ids = [e.id for e in entries]
    if not ids:
        return _Context(set(), {}, {}, {})
    reversed_ids = set(
        await s.scalars(select(CreditEntry.reversal_of_id).where(CreditEntry.reversal_of_id.in_(ids)))
    )
    people = sorted({e.person_id for e in entries})
    sessions = sorted({e.session_id for e in entries if e.session_id is not None})
    found: dict[tuple[int, int | None], list[dict[str, Any]]] = defaultdict(list)
    if sessions:
        for flag in await s.scalars(
            select(FraudFlag)
            .where(
                FraudFlag.person_id.in_(people),
                FraudFlag.session_id.in_(sessions),
                FraudFlag.status == "open",
            )
            .order_by(FraudFlag.id)
        ):
            found[(flag.person_id, flag.session_id)].append(
                {"id": flag.id, "code": flag.code, "severity": flag.severity, "evidence": flag.evidence}
            )
    last: dict[int, CreditDecision] = {}
    for d in await s.scalars(
        select(CreditDecision).where(CreditDecision.entry_id.in_(ids)).order_by(CreditDecision.id)
    ):
        last[d.entry_id] = d
    deciders = {e.decided_by for e in entries if e.decided_by is not None}
    names: dict[int, str] = {}
    if deciders:
        rows = await s.execute(select(Person.id, Person.name).where(Person.id.in_(deciders)))
        names = {person_id: name for person_id, name in rows}
    return _Context({i for i in reversed_ids if i is not None}, found, last, names)


def _evidence(ev: Mapping[str, Any]) -> dict[str, Any]:
    """What an approver reads of an entry's evidence: the figures (presence, coverage, checks), the
    credited time intervals and the window, the caps that cut it, and where external credit came from."""
    window = ev.get("window") or []
    return {
        **figures(ev),
        "intervals": ev.get("credited_spans", []),
        "window": window[0] if window else None,
        "uncapped_xueshi": ev.get("uncapped_xueshi"),
        "course_cap_applied": ev.get("course_cap_applied"),
        "daily_cap_cut": ev.get("daily_cap_cut") or {},
        "recording_id": ev.get("recording_id"),
        "platform": ev.get("platform"),
        "trust": ev.get("trust"),
        "policy_version": ev.get("policy_version"),
    }


# What an entry of no course (a fixed award) is called where a course title would be.
NO_COURSE = {"mentorship": "师承带徒"}


def entry_view(
    e: CreditEntry,
    name: str,
    phone: str,
    employer: int | None,
    is_admin: bool,
    course_title: str | None,
    session_title: str | None,
    context: _Context,
    a: rules.Authority,
) -> dict[str, Any]:
    reversed_ = e.id in context.reversed
    last = context.last.get(e.id)
    facts = rules.EntryFacts(e.id, e.person_id, employer, e.status, e.kind, reversed_, is_admin)
    return {
        "id": e.id,
        "person_id": e.person_id,
        "name": name,
        "phone": mask_phone(phone),
        "employer_org_id": employer,
        "learner_is_employer_admin": is_admin,
        "course_id": e.course_id,
        "course_title": course_title if course_title is not None else NO_COURSE.get(e.kind, ""),
        "session_id": e.session_id,
        "session_title": session_title,
        "category": e.category,
        "kind": e.kind,
        "credit_year": e.credit_year,
        "credit_day": e.credit_day,
        "minutes": round(float(e.minutes), 1),
        "xueshi": str(e.xueshi),
        "status": e.status,
        "policy_version": e.policy_version,
        "computed_at": e.computed_at.isoformat(),
        "decided_by": e.decided_by,
        "decided_by_name": context.names.get(e.decided_by) if e.decided_by is not None else None,
        "decided_at": e.decided_at.isoformat() if e.decided_at else None,
        "note": e.note,
        "reversed": reversed_,
        "own": e.person_id == a.person_id,
        "evidence": _evidence(e.evidence or {}),
        "flags": context.flags.get((e.person_id, e.session_id), []),
        "last_decision": _decision_view(last) if last is not None else None,
        "actions": rules.allowed(a, facts),
    }


def _decision_view(d: CreditDecision, decider: str | None = None) -> dict[str, Any]:
    out = {
        "id": d.id,
        "entry_id": d.entry_id,
        "action": d.action,
        "from_status": d.from_status,
        "to_status": d.to_status,
        "reason": d.reason,
        "decided_by": d.decided_by,
        "decided_as": d.decided_as,
        "org_id": d.org_id,
        "batch_id": d.batch_id,
        "decided_at": d.decided_at.isoformat(),
    }
    if decider is not None:
        out["decided_by_name"] = decider
    return out


# -- deciding -----------------------------------------------------------------------------------------------


async def decide(
    db: Database, caller: Caller, entry_ids: Sequence[int], action: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Approve or reject entries, one or many, in one transaction: all of them or none (the error names
    the entries at fault). A bulk call shares a `batch_id`. Approvals sooner than the policy's
    `approval_min_seconds` after posting, or more than `approval_bulk_flag_size` at once, are flagged."""
    if action not in (rules.APPROVE, rules.REJECT):
        raise Invalid("action must be approve or reject", field="action")
    batch_id = str(uuid.uuid4()) if len(entry_ids) > 1 else None
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not a.may_act(action):
            raise Forbidden(
                "only employer administrators (and the HR bureau, for learners without an employer and"
                " employer administrators' own entries) decide credit"
            )
        decided, decisions = await _apply(s, a, action, entry_ids, reason, now, batch_id)
        if action == rules.APPROVE:
            await _flag_approvals(s, caller, decided, decisions, now, batch_id)
    log.info("credit %s by=%s entries=%d batch=%s", action, caller.person_id, len(decided), batch_id or "-")
    return {
        "action": action,
        "batch_id": batch_id,
        "items": [_decided_view(e) for e in decided],
    }


async def revoke(db: Database, caller: Caller, entry_id: int, reason: str, now: datetime) -> dict[str, Any]:
    """registered → revoked (the learner's employer administrators, the HR bureau, admins)."""
    return await _single(db, caller, rules.REVOKE, entry_id, reason, now)


async def override(db: Database, caller: Caller, entry_id: int, reason: str, now: datetime) -> dict[str, Any]:
    """rejected → registered (the HR bureau, admins), e.g. after the learner appealed."""
    return await _single(db, caller, rules.OVERRIDE, entry_id, reason, now)


async def _single(
    db: Database, caller: Caller, action: str, entry_id: int, reason: str, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        a = await authority(s, caller)
        if not a.may_act(action):
            raise Forbidden(f"you may not {action} credit")
        (entry,), (decision,) = await _apply(s, a, action, [entry_id], reason, now, None)
    log.info("credit %s by=%s entry=%s", action, caller.person_id, entry_id)
    return {**_decided_view(entry), "decision": _decision_view(decision)}


def _decided_view(e: CreditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "person_id": e.person_id,
        "status": e.status,
        "xueshi": str(e.xueshi),
        "decided_by": e.decided_by,
        "decided_at": e.decided_at.isoformat() if e.decided_at else None,
    }


async def _apply(
    s: AsyncSession,
    a: rules.Authority,
    action: str,
    entry_ids: Sequence[int],
    reason: str,
    now: datetime,
    batch_id: str | None,
) -> tuple[list[CreditEntry], list[CreditDecision]]:
    """Lock the entries, check every one, then move each along `action`'s edge with a decision row and
    an audit row. The row locks order this against a concurrent decision or reversal of the same entry
    (PostgreSQL); a reversal written first makes the entry undecidable."""
    rows = (
        await s.execute(
            select(CreditEntry, Person.employer_org_id, learner_is_employer_admin())
            .join(Person, Person.id == CreditEntry.person_id)
            .where(CreditEntry.id.in_(entry_ids))
            .order_by(CreditEntry.id)
            .with_for_update(of=CreditEntry)
        )
    ).all()
    found = {e.id: (e, employer, bool(is_admin)) for e, employer, is_admin in rows}
    reversed_ids = set(
        await s.scalars(select(CreditEntry.reversal_of_id).where(CreditEntry.reversal_of_id.in_(list(found))))
    )
    facts = [
        rules.EntryFacts(e.id, e.person_id, employer, e.status, e.kind, e.id in reversed_ids, is_admin)
        for e, employer, is_admin in found.values()
    ]
    rules.check_all(a, action, facts, missing=set(entry_ids) - set(found))
    source, target = rules.TRANSITIONS[action]
    # Conditional on the status read: where there are no row locks (SQLite reads outside the write
    # transaction) a decision committed meanwhile leaves fewer rows to change, and this one is refused.
    changed = await s.execute(
        update(CreditEntry)
        .where(CreditEntry.id.in_([fact.entry_id for fact in facts]), CreditEntry.status == source)
        .values(status=target, decided_by=a.person_id, decided_at=now)
    )
    if int(getattr(changed, "rowcount", 0) or 0) != len(facts):
        raise Conflict(
            "the entries were decided by someone else meanwhile: reload and try again",
            field="entry_ids",
            details={"reason": "status", "entry_ids": [fact.entry_id for fact in facts]},
        )
    entries: list[CreditEntry] = []
    decisions: list[CreditDecision] = []
    for fact in facts:
        role, org = rules.check(a, action, fact)
        entry = found[fact.entry_id][0]
        decision = CreditDecision(
            entry_id=entry.id,
            person_id=entry.person_id,
            action=action,
            from_status=source,
            to_status=target,
            reason=reason,
            decided_by=a.person_id,
            decided_as=role,
            org_id=org,
            batch_id=batch_id,
            decided_at=now,
        )
        s.add(decision)
        entries.append(entry)
        decisions.append(decision)
    await s.flush()  # the decisions' ids, for the audit rows
    for entry, decision in zip(entries, decisions, strict=True):
        audit.record(
            s,
            actor=a.person_id,
            action=rules.AUDIT_ACTIONS[action],
            subject_type="credit_entry",
            subject_id=entry.id,
            detail={
                "decision_id": decision.id,
                "person_id": entry.person_id,
                "from": source,
                "to": target,
                "reason": reason,
                "xueshi": str(entry.xueshi),
                "decided_as": decision.decided_as,
                "org_id": decision.org_id,
                "batch_id": batch_id,
            },
            at=now,
        )
    return entries, decisions


async def _flag_approvals(
    s: AsyncSession,
    caller: Caller,
    entries: Sequence[CreditEntry],
    decisions: Sequence[CreditDecision],
    now: datetime,
    batch_id: str | None,
) -> None:
    """Fraud 21 on the approver (review list; supervisors read it, admins resolve it)."""
    policy = await policies.current(s)
    found = rules.approval_flags(
        [(e.id, e.computed_at) for e in entries],
        now,
        min_seconds=policy.approval_min_seconds,
        bulk_flag_size=policy.approval_bulk_flag_size,
    )
    if not found:
        return
    subject = f"approval:batch:{batch_id}" if batch_id else f"approval:decision:{decisions[0].id}"
    await flags.raise_flags(
        s,
        found,
        person_id=caller.person_id,
        subject=subject,
        session_id=None,
        course_id=None,
        now=now,
        evidence={
            "batch_id": batch_id,
            "entry_ids": [e.id for e in entries],
            "learner_ids": sorted({e.person_id for e in entries}),
            "org_ids": sorted({d.org_id for d in decisions if d.org_id is not None}),
            "policy_version": policy.version,
        },
    )


# -- an entry's history -------------------------------------------------------------------------------------


async def history(db: Database, caller: Caller, entry_id: int) -> dict[str, Any]:
    """Every decision on one entry, oldest first: the learner themself, their employer's administrators,
    the bureau and admins (anyone else: not found)."""
    async with db.sessions.begin() as s:
        row = (
            await s.execute(
                select(CreditEntry, Person.employer_org_id)
                .join(Person, Person.id == CreditEntry.person_id)
                .where(CreditEntry.id == entry_id)
            )
        ).first()
        a = await authority(s, caller)
        if row is None or not (row[0].person_id == caller.person_id or a.may_read(row[1])):
            raise NotFound(f"credit entry {entry_id} not found", field="entry_id")
        entry = row[0]
        decisions = (
            await s.execute(
                select(CreditDecision, Person.name)
                .outerjoin(Person, Person.id == CreditDecision.decided_by)
                .where(CreditDecision.entry_id == entry_id)
                .order_by(CreditDecision.id)
            )
        ).all()
    return {
        "entry_id": entry.id,
        "status": entry.status,
        "items": [_decision_view(d, name or "") for d, name in decisions],
    }


def status_filter(raw: str | None) -> str:
    status = raw or ledger.PENDING
    if status not in LIST_STATUSES:
        raise Invalid(f"status must be one of {', '.join(LIST_STATUSES)}", field="status")
    return status
