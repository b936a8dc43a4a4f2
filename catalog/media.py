"""Media tokens: short-lived signed grants to publish (WHIP), watch (WHEP) or join the room channel
(room) of one session."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from catalog import queries
from catalog.db import Database
from catalog.domain import Caller, MediaPurpose
from infra import ice, tokens
from infra.errors import Forbidden
from infra.settings import Settings

log = logging.getLogger(__name__)

TOKEN_TTL = timedelta(seconds=300)


async def issue(
    db: Database, settings: Settings, caller: Caller, session_id: int, purpose: MediaPurpose, now: datetime
) -> dict[str, Any]:
    """A token for `purpose`: WHIP for the session's experts; WHEP for them, the provider's staff and
    enrolled learners. The role claim says which of those the holder is."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        course = session.course
        is_expert = any(e.person_id == caller.person_id for e in session.experts)
        is_staff = caller.manages_provider(course.provider_org_id) and not caller.is_admin
        is_learner = (await queries.active_enrollment(s, caller.person_id, course.id)) is not None
        name = (await queries.names_of(s, [caller.person_id])).get(caller.person_id, "")
    if purpose == MediaPurpose.WHIP:
        role = "expert" if is_expert else None
    else:
        role = "expert" if is_expert else "staff" if is_staff else "learner" if is_learner else None
    if role is None:
        raise Forbidden(
            f"you may not {'publish to' if purpose == MediaPurpose.WHIP else 'watch'} this session"
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
            extra={"name": name} if purpose == MediaPurpose.ROOM else {},
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
