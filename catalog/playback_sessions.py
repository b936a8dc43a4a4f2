"""Opening a replay playback: one transaction that checks who may watch, records the learning client
(R18: the person's other active clients, of any kind, are superseded by it) and reads the resume point
and the credit policy the grant is signed with."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select, update

from catalog.credit import policies
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import ClientSession, CreditEntry, Person, ReplayProgress
from catalog.playback import GRANT_SLACK_S, Grant
from catalog.replays import ordered_angles, watchable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    grant: Grant
    superseded: list[str]  # the person's clients this one took over
    position_s: float  # where to resume (the last heartbeat's position, kept by the catalog)
    first_viewing: bool
    max_playback_rate: float


async def open_playback(
    db: Database,
    caller: Caller,
    recording_id: str,
    *,
    binding: str,
    now: datetime,
    ip: str = "",
    user_agent: str = "",
) -> Opened:
    """Open a replay client for `caller` (NotFound / Forbidden as GET /api/replays/{id}).

    `first_viewing` (R14's forward lock) is true until the person has completed this replay: until a
    replay credit entry exists for its session. Watching again after that may seek freely."""
    client_id = uuid.uuid4().hex
    async with db.sessions.begin() as s:
        recording, session = await watchable(s, caller, recording_id)
        # Serialises openings of one person (a no-op lock on SQLite, whose writers are serial anyway), so
        # that two tabs opening at once cannot both stay active.
        await s.execute(select(Person.id).where(Person.id == caller.person_id).with_for_update())
        policy = await policies.current(s)
        completed = await s.scalar(
            select(
                exists().where(
                    CreditEntry.person_id == caller.person_id,
                    CreditEntry.session_id == session.id,
                    CreditEntry.kind == "replay",
                    CreditEntry.minutes > 0,
                )
            )
        )
        superseded = list(
            await s.scalars(
                select(ClientSession.id).where(
                    ClientSession.person_id == caller.person_id, ClientSession.superseded_at.is_(None)
                )
            )
        )
        if superseded:
            await s.execute(
                update(ClientSession)
                .where(ClientSession.id.in_(superseded), ClientSession.superseded_at.is_(None))
                .values(superseded_at=now, superseded_by=client_id)
            )
        s.add(
            ClientSession(
                id=client_id,
                person_id=caller.person_id,
                kind="replay",
                session_id=session.id,
                recording_id=recording.id,
                opened_at=now,
                first_viewing=not completed,
                ip=ip[:64],
                user_agent=user_agent[:512],
            )
        )
        progress = await s.get(ReplayProgress, (caller.person_id, recording.id))
    grant = Grant(
        client_id=client_id,
        person_id=caller.person_id,
        recording_id=recording.id,
        duration_s=recording.duration_s,
        angles=tuple(ordered_angles(recording.angles)),
        seed=secrets.token_urlsafe(12),
        checks_per_45_min=policy.checks_per_45_min,
        check_window_s=policy.check_window_s,
        heartbeat_period_s=policy.heartbeat_period_s,
        binding=binding,
        expires_at=now.timestamp() + recording.duration_s + GRANT_SLACK_S,
    )
    log.info(
        "playback opened person=%s recording=%s client=%s superseded=%d",
        caller.person_id,
        recording.id,
        client_id,
        len(superseded),
    )
    return Opened(
        grant=grant,
        superseded=superseded,
        position_s=min(progress.position_s, recording.duration_s) if progress else 0.0,
        first_viewing=not completed,
        max_playback_rate=policy.max_playback_rate,
    )
