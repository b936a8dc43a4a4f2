"""HTTP for employer approval and the audit log (catalog.api adds ROUTES): parse, call one service,
serialize. No route changes or removes an audit row or a decision: there are none to write."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from aiohttp import web

from catalog import audit_log
from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit import approval
from catalog.routing import ORG, Route
from infra.errors import Invalid
from infra.http import json_ok, read_json

ENTRY = r"{entry_id:\d+}"

_REASON = {"type": "string", "maxLength": approval.REASON_MAX}
DECISIONS = {
    "type": "object",
    "properties": {
        "entry_ids": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": f.BIGINT_MAX},
            "minItems": 1,
            "maxItems": approval.DECIDE_MAX,
        },
        "action": {"type": "string", "enum": ["approve", "reject"]},
        "reason": {**_REASON, "description": "required (not blank) to reject"},
    },
    "required": ["entry_ids", "action"],
    "additionalProperties": False,
}
REASON = {
    "type": "object",
    "properties": {"reason": {**_REASON, "minLength": 1}},
    "required": ["reason"],
    "additionalProperties": False,
}


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


def _filters(query: Mapping[str, str]) -> approval.Filters:
    return approval.Filters(
        status=approval.status_filter(query.get("status")),
        person_id=f.query_int(query, "person_id", default=None, minimum=1, maximum=f.BIGINT_MAX),
        year=f.query_int(query, "year", default=None, minimum=2000, maximum=2100),
        course_id=f.query_int(query, "course_id", default=None, minimum=1, maximum=f.BIGINT_MAX),
    )


async def employer_entries(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(
        await approval.employer_queue(
            database(request), caller, _id(request, "org_id"), _filters(request.query), f.page(request.query)
        )
    )


async def unaffiliated_entries(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(
        await approval.unaffiliated_queue(
            database(request), caller, _filters(request.query), f.page(request.query)
        )
    )


async def employer_admin_entries(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(
        await approval.employer_admins_queue(
            database(request), caller, _filters(request.query), f.page(request.query)
        )
    )


async def decide(request: web.Request) -> web.Response:
    caller = await current_person(request)
    ids, action, reason = approval.parse_decisions(await read_json(request))
    return json_ok(await approval.decide(database(request), caller, ids, action, reason, now()))


async def revoke(request: web.Request) -> web.Response:
    caller = await current_person(request)
    reason = approval.parse_reason_body(await read_json(request))
    return json_ok(await approval.revoke(database(request), caller, _id(request, "entry_id"), reason, now()))


async def override(request: web.Request) -> web.Response:
    caller = await current_person(request)
    reason = approval.parse_reason_body(await read_json(request))
    return json_ok(
        await approval.override(database(request), caller, _id(request, "entry_id"), reason, now())
    )


async def decisions(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await approval.history(database(request), caller, _id(request, "entry_id")))


def audit_filters(query: Mapping[str, str]) -> audit_log.Filters:
    """from/to: a date (Beijing users type dates; a date is its UTC day, `to` including all of it) or a
    date-time, both ends included."""
    since = f.parse_instant(query["from"], "from", allow_date=True) if query.get("from") else None
    before = None
    if query.get("to"):
        to = f.parse_instant(query["to"], "to", allow_date=True)
        before = to + (timedelta(days=1) if len(query["to"]) == 10 else timedelta(microseconds=1))
    if since is not None and before is not None and before <= since:
        raise Invalid("to must not be before from", field="to")
    return audit_log.Filters(
        subject_type=f.query_text(query, "subject_type", max_len=32),
        subject_id=f.query_text(query, "subject_id", max_len=64),
        actor=f.query_int(query, "actor", default=None, minimum=1, maximum=f.BIGINT_MAX),
        action=f.query_text(query, "action", max_len=64),
        since=since,
        before=before,
    )


async def read_audit_log(request: web.Request) -> web.Response:
    caller = await current_person(request)
    filters = audit_filters(request.query)
    return json_ok(await audit_log.read(database(request), caller, filters, f.page(request.query)))


_QUEUE = ("status", "person_id", "year", "course_id", "page", "page_size")

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"/api/employers/{ORG}/credit-entries",
        employer_entries,
        "The credit entries of an employer's staff (default: pending, oldest first), each with its evidence"
        " (intervals, checks, coverage, minutes, policy version, open flags) and the actions the caller may"
        " take",
        "employer_admin of the employer; bureau, admin (read)",
        "approval",
        query=_QUEUE,
    ),
    Route(
        "GET",
        "/api/credit-entries/unaffiliated",
        unaffiliated_entries,
        "The credit entries of learners without an employer (the HR bureau decides them), as above",
        "bureau (the HR bureau decides; industry departments read), admin (read)",
        "approval",
        query=_QUEUE,
    ),
    Route(
        "GET",
        "/api/credit-entries/employer-admins",
        employer_admin_entries,
        "The credit entries of employer administrators (learners holding employer_admin in their own"
        " employer), as above: nobody decides their own, so another administrator of the employer or the"
        " HR bureau decides them",
        "bureau (the HR bureau decides; industry departments read), admin (read)",
        "approval",
        query=_QUEUE,
    ),
    Route(
        "POST",
        "/api/credit-entries/decisions",
        decide,
        "Approve (pending → registered) or reject (pending → rejected, with a reason) one or many entries in"
        " one transaction: all or none. Nobody decides their own entry",
        "employer_admin of the learners' employer; bureau of an HR bureau for learners without one and"
        " for employer administrators' own entries",
        "approval",
        body=DECISIONS,
        responses={
            200: "Decided",
            403: "Not allowed, or one's own entry",
            404: "An entry not found (or not the caller's to see)",
            409: "An entry not pending, reversed, or a reversal",
        },
    ),
    Route(
        "POST",
        f"/api/credit-entries/{ENTRY}/revoke",
        revoke,
        "Revoke a registered entry (registered → revoked), with a reason",
        "employer_admin of the learner's employer, bureau of an HR bureau, admin; never one's own",
        "approval",
        body=REASON,
        responses={200: "Revoked", 409: "Not registered, or reversed"},
    ),
    Route(
        "POST",
        f"/api/credit-entries/{ENTRY}/override",
        override,
        "Override a rejection (rejected → registered), with a reason",
        "bureau of an HR bureau, admin; never one's own",
        "approval",
        body=REASON,
        responses={200: "Registered", 409: "Not rejected, or reversed"},
    ),
    Route(
        "GET",
        f"/api/credit-entries/{ENTRY}/decisions",
        decisions,
        "Every decision on one entry, oldest first (who, in which role, when, why)",
        "the learner, their employer's employer_admin, bureau, admin",
        "approval",
    ),
    Route(
        "GET",
        "/api/audit-log",
        read_audit_log,
        "The audit log, newest first: approvals, rejections, revocations, overrides, reversals, policy"
        " versions, time corrections, flag decisions. Append-only: no route changes it",
        "bureau of an HR bureau, admin",
        "audit",
        query=("subject_type", "subject_id", "actor", "action", "from", "to", "page", "page_size"),
    ),
)
