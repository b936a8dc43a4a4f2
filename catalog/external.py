"""Sessions held on Tencent Meeting or DingTalk: the organization's platform credentials (sealed, never
shown again), a session's link to its meeting, the API pull, and Tencent webhook deliveries. Every way
in stores ExternalRecords through catalog.external_imports (one store path, per-row outcomes).

Secrets stay inside this module's local variables and the platform clients: no log line, error
message or answer carries them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import external_imports, queries
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, SessionKind
from catalog.models import (
    Course,
    ExternalImportBatch,
    ExternalRecordRow,
    Organization,
    PlatformCredential,
    Session,
    WebhookNonce,
)
from infra.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from infra.settings import Settings
from integrations import tencent_webhook as hooks
from integrations.dingtalk import DingTalkClient, DingTalkCredentials
from integrations.files import FileRow
from integrations.records import ExternalRecord, Platform, Source, Vendor, vendor_of
from integrations.secrets import Sealed, Sealer
from integrations.tencent import TencentClient, TencentCredentials

log = logging.getLogger(__name__)

# name -> (required, pattern); values never appear in messages, only names.
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")
_DIGITS = re.compile(r"^\d{1,32}$")
FIELDS: dict[Vendor, dict[str, tuple[bool, re.Pattern[str]]]] = {
    Vendor.TENCENT: {
        "app_id": (True, _DIGITS),
        "secret_id": (True, _PRINTABLE),
        "secret_key": (True, _PRINTABLE),
        "userid": (True, _PRINTABLE),
        "sdk_id": (False, _DIGITS),
        "webhook_token": (False, re.compile(r"^[A-Za-z0-9]{1,64}$")),
        "webhook_aes_key": (False, re.compile(r"^[A-Za-z0-9+/]{43}$")),
    },
    Vendor.DINGTALK: {
        "app_key": (True, _PRINTABLE),
        "app_secret": (True, _PRINTABLE),
        "operator_union_id": (False, _PRINTABLE),
    },
}
PUBLIC_ID = {Vendor.TENCENT: "secret_id", Vendor.DINGTALK: "app_key"}
MEETING_CODE = re.compile(r"^\d{9}$")
PLATFORM_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WEBHOOK_ACK = "successfully received callback"


# --- validation (pure) -----------------------------------------------------------------------------------


def vendor_of_path(value: str) -> Vendor:
    try:
        return Vendor(value)
    except ValueError:
        raise NotFound(f"no platform {value[:32]!r}: tencent or dingtalk", field="platform") from None


def credential_values(vendor: Vendor, body: Mapping[str, Any]) -> dict[str, str]:
    spec = FIELDS[vendor]
    for key in body:
        if key not in spec:
            raise Invalid(f"unknown field {key[:64]}", field=key[:64])
    out: dict[str, str] = {}
    for name, (required, pattern) in spec.items():
        value = body.get(name)
        if value is None or value == "":
            if required:
                raise Invalid(f"{name} is required", field=name)
            continue
        if not isinstance(value, str) or not pattern.match(value):
            raise Invalid(f"{name} has the wrong form", field=name)  # the value itself is never echoed
        out[name] = value
    return out


@dataclass(frozen=True)
class LinkDraft:
    platform: Platform
    ids: dict[str, str]


def link_draft(body: Mapping[str, Any]) -> LinkDraft:
    allowed = {"platform", "meeting_id", "meeting_code", "sub_meeting_id", "conference_id", "live_id"}
    for key in body:
        if key not in allowed:
            raise Invalid(f"unknown field {key[:64]}", field=key[:64])
    raw = body.get("platform")
    try:
        platform = Platform(raw) if isinstance(raw, str) else None
    except ValueError:
        platform = None
    if platform is None:
        raise Invalid("platform must be tencent, dingtalk_conf or dingtalk_live", field="platform")

    def text(name: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = body.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise Invalid(f"{name} must be {what}", field=name)
        return value

    expected = {
        Platform.TENCENT: {"meeting_id", "meeting_code", "sub_meeting_id"},
        Platform.DINGTALK_CONF: {"conference_id"},
        Platform.DINGTALK_LIVE: {"live_id"},
    }[platform] | {"platform"}
    for key in body:
        if key not in expected and body[key] not in (None, ""):
            raise Invalid(f"{key} does not belong to a {platform.value} link", field=key)
    ids: dict[str, str] = {}
    if platform is Platform.TENCENT:
        meeting_id = text("meeting_id", _DIGITS, "the meeting's digits (meeting_id)")
        code = text("meeting_code", MEETING_CODE, "the 9-digit meeting code")
        if meeting_id is None and code is None:
            raise Invalid("give meeting_id or the 9-digit meeting_code", field="meeting_code")
        sub = text("sub_meeting_id", _DIGITS, "digits")
        ids = {
            k: v
            for k, v in (("meeting_id", meeting_id), ("meeting_code", code), ("sub_meeting_id", sub))
            if v
        }
    else:
        name = "conference_id" if platform is Platform.DINGTALK_CONF else "live_id"
        value = text(name, PLATFORM_REF, "letters, digits, '-' or '_' (at most 64)")
        if value is None:
            raise Invalid(f"{name} is required", field=name)
        ids = {name: value}
    return LinkDraft(platform, ids)


# --- credentials -----------------------------------------------------------------------------------------


def _context(org_id: int, vendor: Vendor) -> str:
    return f"org:{org_id}:{vendor.value}"


async def _org_for_admin(s: AsyncSession, caller: Caller, org_id: int) -> Organization:
    org = await s.get(Organization, org_id)
    if org is None:
        raise NotFound(f"organization {org_id} not found", field="org_id")
    if not caller.manages_provider(org_id):
        raise Forbidden("only the organization's provider administrators manage its platform credentials")
    return org


async def _current(s: AsyncSession, org_id: int, vendor: Vendor) -> PlatformCredential | None:
    return (
        await s.scalars(
            select(PlatformCredential)
            .where(
                PlatformCredential.org_id == org_id,
                PlatformCredential.vendor == vendor.value,
                PlatformCredential.replaced_at.is_(None),
            )
            .order_by(PlatformCredential.id.desc())
        )
    ).first()


def _status(vendor: Vendor, row: PlatformCredential | None) -> dict[str, Any]:
    if row is None:
        return {"platform": vendor.value, "set": False, "set_at": None, "hint": None}
    return {
        "platform": vendor.value,
        "set": True,
        "set_at": row.created_at.isoformat(),
        "hint": f"…{row.hint}",
    }


async def credential_status(db: Database, caller: Caller, org_id: int, vendor: Vendor) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        await _org_for_admin(s, caller, org_id)
        return _status(vendor, await _current(s, org_id, vendor))


async def put_credentials(
    db: Database,
    sealer: Sealer | None,
    caller: Caller,
    org_id: int,
    vendor: Vendor,
    body: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Seal and store the organization's credentials for `vendor`, replacing any earlier ones."""
    values = credential_values(vendor, body)
    async with db.sessions.begin() as s:
        await _org_for_admin(s, caller, org_id)
        if sealer is None:
            raise Unavailable("LECTERN_CREDENTIALS_KEY is not set: platform credentials cannot be stored")
        sealed = sealer.seal(values, _context(org_id, vendor))
        previous = await _current(s, org_id, vendor)
        if previous is not None:
            previous.replaced_at = now
        row = PlatformCredential(
            org_id=org_id,
            vendor=vendor.value,
            ciphertext=sealed.ciphertext,
            key_id=sealed.key_id,
            hint=values[PUBLIC_ID[vendor]][-4:],
            created_by=caller.person_id,
            created_at=now,
        )
        s.add(row)
        await s.flush()
        log.info("platform credentials set org=%d platform=%s by=%d", org_id, vendor.value, caller.person_id)
        return {**_status(vendor, row), "replaced": previous is not None}


async def _open_credentials(
    s: AsyncSession, sealer: Sealer | None, org_id: int, vendor: Vendor
) -> dict[str, str]:
    row = await _current(s, org_id, vendor)
    if row is None:
        raise Conflict(
            f"the organization has no {vendor.value} credentials yet: enter them first", field="platform"
        )
    if sealer is None:
        raise Unavailable("LECTERN_CREDENTIALS_KEY is not set: platform credentials cannot be read")
    return sealer.open(Sealed(row.ciphertext, row.key_id), _context(org_id, vendor))


def tencent_credentials(values: Mapping[str, str]) -> TencentCredentials:
    return TencentCredentials(
        app_id=values["app_id"],
        secret_id=values["secret_id"],
        secret_key=values["secret_key"],
        userid=values["userid"],
        sdk_id=values.get("sdk_id", ""),
        webhook_token=values.get("webhook_token", ""),
        webhook_aes_key=values.get("webhook_aes_key", ""),
    )


def dingtalk_credentials(values: Mapping[str, str]) -> DingTalkCredentials:
    return DingTalkCredentials(
        app_key=values["app_key"],
        app_secret=values["app_secret"],
        operator_union_id=values.get("operator_union_id", ""),
    )


# --- linking a session -----------------------------------------------------------------------------------


def _require_staff(session: Session, caller: Caller) -> None:
    course = session.course
    if caller.manages_provider(course.provider_org_id):
        return
    if course.status == CourseStatus.DRAFT and not caller.supervises_provider(course.provider_org_id):
        raise NotFound(f"session {session.id} not found", field="session_id")
    raise Forbidden("only the provider's administrators link sessions to external meetings")


def link_view(session: Session) -> dict[str, Any]:
    return {"session_id": session.id, "platform": session.external_platform, **(session.external_ids or {})}


async def link(
    db: Database, caller: Caller, session_id: int, draft: LinkDraft, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_staff(session, caller)
        if session.kind != SessionKind.EXTERNAL:
            raise Conflict("only external sessions (kind external) are linked to a meeting", field="platform")
        session.external_platform = draft.platform.value
        session.external_ids = dict(draft.ids)
        log.info("session %d linked to %s", session.id, draft.platform.value)
        return link_view(session)


async def get_link(db: Database, caller: Caller, session_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_staff(session, caller)
        batches = (
            await s.scalars(
                select(ExternalImportBatch)
                .where(ExternalImportBatch.session_id == session_id)
                .order_by(ExternalImportBatch.id.desc())
                .limit(20)
            )
        ).all()
        return {
            **link_view(session),
            "batches": [
                {
                    "id": b.id,
                    "source": b.source,
                    "platform": b.platform,
                    "status": b.status,
                    "fetched_at": b.fetched_at.isoformat(),
                    "counts": b.counts,
                    "error": b.error,
                }
                for b in batches
            ],
        }


# --- the API pull ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullContext:
    http: aiohttp.ClientSession
    settings: Settings
    sealer: Sealer | None


async def _fetch(
    ctx: PullContext, platform: Platform, ids: dict[str, str], values: Mapping[str, str]
) -> tuple[list[ExternalRecord], dict[str, str]]:
    """The platform's records for the link, and the link's ids completed (a meeting code resolved)."""
    if platform is Platform.TENCENT:
        client = TencentClient(ctx.http, tencent_credentials(values), base_url=ctx.settings.tencent_api_url)
        ids = dict(ids)
        if "meeting_id" not in ids:
            info = await client.meeting_by_code(ids["meeting_code"])
            ids["meeting_id"] = info.meeting_id
            if info.recurring and "sub_meeting_id" not in ids:
                raise Invalid(
                    "this is a recurring meeting: link the session with its sub_meeting_id",
                    field="sub_meeting_id",
                    details={"sub_meeting_ids": list(info.sub_meeting_ids)[:50]},
                )
        return await client.participants(ids["meeting_id"], ids.get("sub_meeting_id")), ids
    dt = DingTalkClient(ctx.http, dingtalk_credentials(values), base_url=ctx.settings.dingtalk_api_url)
    if platform is Platform.DINGTALK_CONF:
        return await dt.conference_members(ids["conference_id"]), ids
    return await dt.live_watchers(ids["live_id"]), ids


async def pull(
    db: Database, ctx: PullContext, caller: Caller | None, session_id: int, now: datetime
) -> dict[str, Any]:
    """Fetch the linked meeting's attendance and store it as one API batch; pulling again adds nothing
    that is already there. `caller` None: the automatic pull after the session's end."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        if caller is not None:
            _require_staff(session, caller)
        if session.external_platform in ("", "none"):
            raise Conflict("link the session to an external meeting first", field="platform")
        platform = Platform(session.external_platform)
        org_id = session.course.provider_org_id
        values = await _open_credentials(s, ctx.sealer, org_id, vendor_of(platform))
        ids = {str(k): str(v) for k, v in (session.external_ids or {}).items()}
    link_ids = dict(ids)
    try:
        records, ids = await _fetch(ctx, platform, ids, values)
    except DomainError as exc:
        await external_imports.failed_batch(db, session_id, platform, Source.API, caller, exc.message, now)
        raise
    secret_id = values.get("secret_id") if platform is Platform.TENCENT else None
    del values
    if ids != link_ids:
        async with db.sessions.begin() as s:
            session = await queries.session_or_404(s, session_id)
            session.external_ids = ids  # the meeting code resolved once
    digest = external_imports.records_hash(records)
    report = await external_imports.import_rows(
        db,
        caller,
        session_id=session_id,
        platform=platform,
        source=Source.API,
        payload_hash=digest,
        chunks=_chunks(records),
        now=now,
        tencent_secret_id=secret_id,
    )
    if report.already_imported:
        await external_imports.unchanged_batch(db, session_id, platform, caller, digest, now)
    log.info(
        "external pull session=%d platform=%s rows=%d matched=%d review=%d skipped=%d again=%s",
        session_id,
        platform.value,
        report.counts["rows"],
        report.counts["matched"],
        report.counts["needs_review"],
        report.counts["skipped"],
        report.already_imported,
    )
    return report.as_json()


async def _chunks(records: list[ExternalRecord]) -> AsyncIterator[list[FileRow]]:
    for start in range(0, len(records), external_imports.CHUNK_ROWS):
        yield [
            FileRow(r.raw_ref, r, name=r.display_name)
            for r in records[start : start + external_imports.CHUNK_ROWS]
        ]


# --- Tencent webhooks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    timestamp: str
    nonce: str
    signature: str
    data: str  # POST: the body's "data"; GET: check_str


async def _webhook_credentials(s: AsyncSession, sealer: Sealer | None, org_id: int) -> TencentCredentials:
    try:
        values = await _open_credentials(s, sealer, org_id, Vendor.TENCENT)
    except (Conflict, Unavailable):
        # Do not tell a stranger which organizations have integrations: the same refusal as a bad signature.
        raise hooks.BadSignature("webhook signature does not match") from None
    if "webhook_token" not in values:
        raise hooks.BadSignature("webhook signature does not match")
    return tencent_credentials(values)


async def _accept(s: AsyncSession, org_id: int, d: Delivery, now: datetime) -> None:
    """R30: the signature, a timestamp within 5 minutes, and a timestamp+nonce never seen before."""
    if not hooks.timestamp_fresh(d.timestamp, now):
        raise hooks.Replayed("webhook timestamp is more than 5 minutes away from now")
    await s.execute(
        delete(WebhookNonce).where(WebhookNonce.seen_at < now - timedelta(seconds=2 * hooks.REPLAY_WINDOW_S))
    )
    try:
        async with s.begin_nested():
            s.add(WebhookNonce(org_id=org_id, timestamp=d.timestamp[:32], nonce=d.nonce[:64], seen_at=now))
            await s.flush()
    except IntegrityError:
        raise hooks.Replayed("webhook timestamp and nonce were already used") from None


async def webhook_check(db: Database, sealer: Sealer | None, org_id: int, d: Delivery, now: datetime) -> str:
    """The GET verification: answer check_str's plaintext once the signature holds."""
    async with db.sessions.begin() as s:
        creds = await _webhook_credentials(s, sealer, org_id)
        hooks.verify_signature(creds.webhook_token, d.timestamp, d.nonce, d.data, d.signature)
        await _accept(s, org_id, d, now)
        return hooks.check_str_answer(d.data, creds.webhook_aes_key)


async def _sessions_for(s: AsyncSession, org_id: int, event: hooks.ParticipantEvent) -> list[Session]:
    """The organization's sessions linked to the event's meeting (and sub-meeting, when linked with one)."""
    rows = await s.scalars(
        select(Session)
        .join(Course, Course.id == Session.course_id)
        .where(Course.provider_org_id == org_id, Session.external_platform == Platform.TENCENT.value)
    )
    found = []
    for session in rows:
        ids = session.external_ids or {}
        same = ids.get("meeting_id") == event.meeting_id or (
            event.meeting_code and ids.get("meeting_code") == event.meeting_code
        )
        sub = ids.get("sub_meeting_id")
        if same and (sub is None or event.sub_meeting_id in (None, sub)):
            found.append(session)
    return found


async def _close_join(s: AsyncSession, session_id: int, event: hooks.ParticipantEvent, now: datetime) -> bool:
    """A left event closes the open webhook join of the same connection; False when there is none."""
    if not event.ms_open_id:
        return False
    row = (
        await s.scalars(
            select(ExternalRecordRow)
            .where(
                ExternalRecordRow.session_id == session_id,
                ExternalRecordRow.platform == Platform.TENCENT.value,
                ExternalRecordRow.connection_id == event.ms_open_id,
                ExternalRecordRow.leave_at.is_(None),
                ExternalRecordRow.join_at.is_not(None),
            )
            .order_by(ExternalRecordRow.join_at.desc())
        )
    ).first()
    if row is None or row.join_at is None or row.join_at > event.at:
        return False
    row.leave_at = event.at
    row.updated_at = now
    return True


async def webhook_event(
    db: Database, sealer: Sealer | None, org_id: int, d: Delivery, now: datetime
) -> dict[str, int]:
    """A POST delivery: verify, refuse replays, store joins and close them on leaves."""
    counts = {"events": 0, "stored": 0, "closed": 0, "unlinked": 0}
    async with db.sessions.begin() as s:
        creds = await _webhook_credentials(s, sealer, org_id)
        hooks.verify_signature(creds.webhook_token, d.timestamp, d.nonce, d.data, d.signature)
        await _accept(s, org_id, d, now)
        events = hooks.participant_events(hooks.decode_data(d.data, creds.webhook_aes_key))
        for event in events:
            counts["events"] += 1
            sessions = await _sessions_for(s, org_id, event)
            if not sessions:
                counts["unlinked"] += 1
                continue
            for session in sessions:
                if event.event == hooks.LEFT and await _close_join(s, session.id, event, now):
                    counts["closed"] += 1
                    continue
                batch = await external_imports.open_batch(
                    s, session.id, Platform.TENCENT, Source.WEBHOOK, now
                )
                results = await external_imports.store_into(
                    s, batch, session.course_id, [event.record], now, tencent_secret_id=creds.secret_id
                )
                counts["stored"] += sum(
                    r.reason not in (external_imports.DUPLICATE, external_imports.LEAVE_TIME_ADDED)
                    and r.status != external_imports.SKIPPED
                    for r in results
                )
                counts["closed"] += sum(r.reason == external_imports.LEAVE_TIME_ADDED for r in results)
    log.info("tencent webhook org=%d %s", org_id, " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts
