"""Media tokens: short-lived signed grants to publish (WHIP), watch (WHEP) or join the room channel
(room) of one session, issued only while the session's media window is open (catalog.lifecycle); what
the caller may do there, asked before a page turns on a camera; and `check_grant`, the live server's
question when a token is used: does the catalog still say yes (the session not ended, the learner
still enrolled since before the token was issued)?"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.courseware import access as courseware_access
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, MediaPurpose, Role
from catalog.lifecycle import MediaRefusal, SessionStatus, media_refusal, session_status, whip_opens_at
from catalog.models import RoleAssignment, Session
from infra import ice, tokens
from infra.errors import Conflict, Forbidden, NotFound
from infra.settings import Settings

log = logging.getLogger(__name__)

TOKEN_TTL = timedelta(seconds=300)


class SessionEnded(Conflict):
    """The session is over: it cannot go live again, and its live room (media, channel) is closed."""

    code = MediaRefusal.SESSION_ENDED.value


class TooEarly(Conflict):
    """Going live before the session's media window opens (catalog.lifecycle.WHIP_OPENS_BEFORE_START)."""

    code = MediaRefusal.TOO_EARLY.value


class CourseNotPublished(Conflict):
    """A session of a draft or archived course: it has no live room."""

    code = MediaRefusal.COURSE_NOT_PUBLISHED.value


class GrantRevoked(Forbidden):
    """A token whose holder no longer holds the role it names (withdrew, was removed as expert)."""


@dataclass(frozen=True)
class Standing:
    """Who the caller is in one session's live room: `publisher` is "expert" or None, `viewer` one of
    "expert", "staff", "learner" or None; `status` is the session's (catalog.lifecycle)."""

    publisher: str | None
    viewer: str | None
    status: SessionStatus
    name: str


def _status(session: Session, now: datetime) -> SessionStatus:
    return session_status(
        session.kind,
        session.scheduled_start,
        session.scheduled_end,
        session.actual_start,
        session.actual_end,
        now,
    )


async def _standing(s: AsyncSession, caller: Caller, session: Session, now: datetime) -> Standing:
    course = session.course
    is_expert = any(e.person_id == caller.person_id for e in session.experts)
    is_staff = caller.manages_provider(course.provider_org_id) and not caller.is_admin
    is_learner = (await queries.active_enrollment(s, caller.person_id, course.id)) is not None
    name = (await queries.names_of(s, [caller.person_id])).get(caller.person_id, "")
    return Standing(
        publisher="expert" if is_expert else None,
        viewer="expert" if is_expert else "staff" if is_staff else "learner" if is_learner else None,
        status=_status(session, now),
        name=name,
    )


def _refusal(session: Session, publishing: bool, now: datetime) -> MediaRefusal | None:
    return media_refusal(
        publishing=publishing,
        course_status=session.course.status,
        status=_status(session, now),
        scheduled_start=session.scheduled_start,
        now=now,
    )


def _raise(refusal: MediaRefusal, session: Session, publishing: bool) -> None:
    """The domain error for a closed media window, with what a page needs to say why in Chinese."""
    match refusal:
        case MediaRefusal.COURSE_NOT_PUBLISHED:
            raise CourseNotPublished(
                "the course is not published: its sessions have no live room",
                field="session_id",
                details={"course_status": session.course.status},
            )
        case MediaRefusal.TOO_EARLY:
            opens_at = whip_opens_at(session.scheduled_start)
            raise TooEarly(
                f"too early to go live: the session opens for its expert at {opens_at.isoformat()}, "
                f"{int((session.scheduled_start - opens_at).total_seconds()) // 60} minutes before its "
                "scheduled start",
                field="session_id",
                details={
                    "opens_at": opens_at.isoformat(),
                    "scheduled_start": session.scheduled_start.isoformat(),
                },
            )
        case MediaRefusal.SESSION_ENDED:
            message = (
                "the session has ended; it cannot go live again"
                if publishing
                else "the session has ended; its live room is closed"
            )
            raise SessionEnded(message, field="session_id", details={"status": "ended"})


async def access(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """What the caller may do in the session's live room, without issuing anything: pages ask this
    before they turn on a camera or open the channel. `publish` is true only for the session's experts
    while publishing is open (`publish_refused` says why not: `not_expert`, `course_not_published`,
    `too_early`, `session_ended`); `publish_opens_at` is when it opens. `watch` says whether the caller
    is someone who may watch (expert, the provider's staff, an enrolled learner)."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        standing = await _standing(s, caller, session, now)
    refusal = _refusal(session, True, now)
    refused = "not_expert" if standing.publisher is None else refusal.value if refusal else None
    return {
        "session_id": session_id,
        "status": standing.status.value,
        "role": standing.viewer,
        "publish": refused is None,
        "publish_refused": refused,
        "publish_opens_at": whip_opens_at(session.scheduled_start).isoformat(),
        "watch": standing.viewer is not None,
    }


async def issue(
    db: Database, settings: Settings, caller: Caller, session_id: int, purpose: MediaPurpose, now: datetime
) -> dict[str, Any]:
    """A token for `purpose`: WHIP for the session's experts, WHEP and room for them, the provider's
    staff and enrolled learners (else Forbidden); only for a published course (else CourseNotPublished)
    and a session not ended (else SessionEnded), WHIP not before its window opens (else TooEarly). The
    role claim says which of those the holder is; `iat` (extra) when it was issued, so that a later
    withdrawal voids it (check_grant)."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        standing = await _standing(s, caller, session, now)
    publishing = purpose == MediaPurpose.WHIP
    role = standing.publisher if publishing else standing.viewer
    if role is None:
        raise Forbidden(f"you may not {'publish to' if publishing else 'watch'} this session")
    refusal = _refusal(session, publishing, now)
    if refusal is not None:
        log.info(
            "media token refused purpose=%s session=%s person=%s: %s",
            purpose.value,
            session_id,
            caller.person_id,
            refusal.value,
        )
        _raise(refusal, session, publishing)
    expires_at = now + TOKEN_TTL
    extra: dict[str, Any] = {"iat": now.timestamp()}
    if purpose == MediaPurpose.ROOM:
        extra["name"] = standing.name  # the room channel shows this name to the others in the room
    token = tokens.sign(
        settings.secret_key,
        purpose.value,
        tokens.Claims(
            person_id=caller.person_id,
            subject=f"session:{session_id}",
            role=role,
            expires_at=expires_at.timestamp(),
            extra=extra,
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


@dataclass(frozen=True)
class MediaGrant:
    """What a verified media token claims, asked again of the catalog when it is used: `role` is the
    token's ("expert", "staff", "learner", or "speaker" for a promoted learner's WHIP token) and
    `issued_at` when it was issued (a speaker token: when the promotion granted it)."""

    purpose: MediaPurpose
    session_id: int
    person_id: int
    role: str
    issued_at: datetime


async def _still_holds(s: AsyncSession, grant: MediaGrant, session: Session) -> bool:
    """Whether the holder still is what the token says, as it was when it was issued."""
    if (
        session.course.status == CourseStatus.DRAFT
        and grant.role not in ("expert", courseware_access.REVIEWER)
        and await courseware_access.is_staging(s, session.course_id)
    ):
        return False  # a courseware version not (or no longer) approved: its owner and reviewers only
    match grant.role:
        case "expert":
            return any(e.person_id == grant.person_id for e in session.experts)
        case "staff":
            # The provider's admins; platform admins too (the replay rule names them staff: they manage
            # every provider), though media tokens never call an admin staff.
            found = await s.scalar(
                select(RoleAssignment.id).where(
                    RoleAssignment.person_id == grant.person_id,
                    or_(
                        and_(
                            RoleAssignment.role == Role.PROVIDER_ADMIN.value,
                            RoleAssignment.org_id == session.course.provider_org_id,
                        ),
                        RoleAssignment.role == Role.ADMIN.value,
                    ),
                )
            )
            return found is not None
        case "learner" | "speaker":
            # Enrolled now, and since before the token: a withdrawal voids the tokens issued before it,
            # even when the learner enrolled again since.
            enrollment = await queries.active_enrollment(s, grant.person_id, session.course_id)
            return enrollment is not None and enrollment.enrolled_at <= grant.issued_at
        case courseware_access.REVIEWER:
            found = await s.scalar(
                select(RoleAssignment.id).where(
                    RoleAssignment.person_id == grant.person_id, RoleAssignment.role == Role.REVIEWER.value
                )
            )
            return found is not None and await courseware_access.is_courseware_course(s, session.course_id)
        case "supervisor":
            found = await s.scalar(
                select(RoleAssignment.id).where(
                    RoleAssignment.person_id == grant.person_id,
                    RoleAssignment.role.in_((Role.BUREAU.value, Role.ADMIN.value)),
                )
            )
            return found is not None
    return False


async def _session_if_held(db: Database, grant: MediaGrant, what: str, remedy: str) -> Session | None:
    """The grant's session when its holder still holds the role it was issued for; None for a session
    the catalog does not know (see `check_grant`); GrantRevoked (403, naming `what` and `remedy`) else."""
    async with db.sessions.begin() as s:
        try:
            session = await queries.session_or_404(s, grant.session_id)
        except NotFound:
            return None
        holds = await _still_holds(s, grant, session)
    if not holds:
        log.info(
            "media grant revoked %s session=%s person=%s role=%s",
            what,
            grant.session_id,
            grant.person_id,
            grant.role,
        )
        raise GrantRevoked(
            f"this {what} no longer admits you: you are not the session's {grant.role} any more ({remedy})",
            details={"role": grant.role},
        )
    return session


async def check_media_grant(db: Database, grant: MediaGrant) -> None:
    """Raise GrantRevoked (403) unless the holder of a `/hls/` media grant (a replay's or the live HLS's
    cookie, infra.media_access) still holds the role it was issued for: a learner who withdrew after it
    was issued, an expert taken off the session, staff who lost the provider's admin role are refused at
    once instead of when the cookie expires. No window rule: replays are watched after the end. Asked for
    every media request of the embedded route and for each nginx `auth_request` (whose answer nginx keeps
    30 s): a few indexed reads. A session the catalog does not know passes, as in `check_grant`."""
    await _session_if_held(db, grant, "media grant", "open the page again")


async def check_grant(db: Database, grant: MediaGrant, now: datetime) -> None:
    """Raise unless the catalog still stands behind `grant` at `now`: GrantRevoked (403) when the holder
    no longer holds its role (a learner who withdrew after it was issued, an expert removed from the
    session), else CourseNotPublished, SessionEnded or, for the expert's WHIP, TooEarly (409), as
    `issue` would. Asked by the live server when a WHIP, WHEP or room-channel connection is made (not per
    packet or message): a few indexed reads.

    A session the catalog does not know passes: the catalog never issued a token for it (sessions are
    not deleted), so its token was minted outside the catalog by a holder of the server's key (a tool,
    the live path's own tests) and is theirs to answer for."""
    session = await _session_if_held(db, grant, f"{grant.purpose.value} token", "get a new token")
    if session is None:
        return
    publishing = grant.purpose == MediaPurpose.WHIP and grant.role == "expert"
    refusal = _refusal(session, publishing, now)
    if refusal is not None:
        _raise(refusal, session, publishing)
