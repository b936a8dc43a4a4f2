"""Media tokens: short-lived signed grants to publish (WHIP), watch (WHEP) or join the room channel
(room) of one session; and what the caller may do there, asked before a page turns on a camera."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.db import Database
from catalog.domain import Caller, MediaPurpose
from catalog.lifecycle import SessionStatus, session_status
from catalog.models import Session
from infra import ice, tokens
from infra.errors import Conflict, Forbidden
from infra.settings import Settings

log = logging.getLogger(__name__)

TOKEN_TTL = timedelta(seconds=300)


class SessionEnded(Conflict):
    """Going live on a session that is over: it has its recording, a second start would add another."""

    code = "session_ended"


@dataclass(frozen=True)
class Standing:
    """Who the caller is in one session's live room: `publisher` is "expert" or None, `viewer` one of
    "expert", "staff", "learner" or None; `status` is the session's (catalog.lifecycle)."""

    publisher: str | None
    viewer: str | None
    status: SessionStatus
    name: str


async def _standing(s: AsyncSession, caller: Caller, session: Session, now: datetime) -> Standing:
    course = session.course
    is_expert = any(e.person_id == caller.person_id for e in session.experts)
    is_staff = caller.manages_provider(course.provider_org_id) and not caller.is_admin
    is_learner = (await queries.active_enrollment(s, caller.person_id, course.id)) is not None
    name = (await queries.names_of(s, [caller.person_id])).get(caller.person_id, "")
    status = session_status(
        session.kind,
        session.scheduled_start,
        session.scheduled_end,
        session.actual_start,
        session.actual_end,
        now,
    )
    return Standing(
        publisher="expert" if is_expert else None,
        viewer="expert" if is_expert else "staff" if is_staff else "learner" if is_learner else None,
        status=status,
        name=name,
    )


async def access(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """What the caller may do in the session's live room, without issuing anything: pages ask this
    before they turn on a camera or open the channel. `publish` is true only for the session's experts
    while the session has not ended (`publish_refused` says why not: `not_expert`, `session_ended`)."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        standing = await _standing(s, caller, session, now)
    ended = standing.status == SessionStatus.ENDED
    refused = "not_expert" if standing.publisher is None else "session_ended" if ended else None
    return {
        "session_id": session_id,
        "status": standing.status.value,
        "role": standing.viewer,
        "publish": refused is None,
        "publish_refused": refused,
        "watch": standing.viewer is not None,
    }


async def issue(
    db: Database, settings: Settings, caller: Caller, session_id: int, purpose: MediaPurpose, now: datetime
) -> dict[str, Any]:
    """A token for `purpose`: WHIP for the session's experts until the session has ended (then
    SessionEnded); WHEP for them, the provider's staff and enrolled learners. The role claim says which
    of those the holder is."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        standing = await _standing(s, caller, session, now)
    role = standing.publisher if purpose == MediaPurpose.WHIP else standing.viewer
    if role is None:
        raise Forbidden(
            f"you may not {'publish to' if purpose == MediaPurpose.WHIP else 'watch'} this session"
        )
    if purpose == MediaPurpose.WHIP and standing.status == SessionStatus.ENDED:
        raise SessionEnded(
            "the session has ended; it cannot go live again", field="session_id", details={"status": "ended"}
        )
    expires_at = now + TOKEN_TTL
    token = tokens.sign(
        settings.secret_key,
        purpose.value,
        tokens.Claims(
            person_id=caller.person_id,
            subject=f"session:{session_id}",
            role=role,
            expires_at=expires_at.timestamp(),
            # The room channel shows this name to the others in the room.
            extra={"name": standing.name} if purpose == MediaPurpose.ROOM else {},
        ),
    )
    log.info(
        "media token purpose=%s session=%s person=%s role=%s",
        purpose.value,
        session_id,
        caller.person_id,
        role,
    )
    out: dict[str, Any] = {"token": token, "expires_at": expires_at.isoformat(), "role": role}
    if purpose != MediaPurpose.ROOM:
        # The STUN/TURN servers the holder's browser may use; TURN with a credential of its own.
        servers = ice.for_person(
            settings.ice_servers,
            settings.turn_secret,
            person_id=caller.person_id,
            now=now.timestamp(),
            ttl_s=settings.turn_credential_ttl_s,
        )
        out["ice_servers"] = [server.as_json() for server in servers]
    return out
