"""Attendance evidence as the catalog's consumer stores it: attention changes and live presence checks
(one event at a time), and the high-volume `evidence` topic (live room-channel, HLS and playback
heartbeats, segment fetches, replay checks) in batches — one multi-row `INSERT … ON CONFLICT DO NOTHING`
per table per batch, on PostgreSQL and SQLite alike. Raw evidence is append-only and idempotent by its
natural keys, so a redelivered event stores nothing twice. Evidence naming a person, session or recording
the catalog does not have is still stored (it is kept, never credited: settlement reads only known
people); only the replay resume point (`replay_progress`, foreign keys to both) is written for known
people and recordings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db import Database
from catalog.models import (
    AttentionChange,
    Heartbeat,
    HlsFetch,
    Person,
    PresenceAnswer,
    PresenceCheckRecord,
    Recording,
    ReplayProgress,
)
from infra import events

log = logging.getLogger(__name__)

LIVE = "live"
REPLAY = "replay"
HLS = "hls"

# Event types the batch path stores (topic `evidence`).
BATCHED: tuple[type[events.Event], ...] = (
    events.LiveHeartbeat,
    events.HlsHeartbeat,
    events.HlsSegmentFetched,
    events.PlaybackHeartbeat,
    events.ReplayCheckIssued,
    events.ReplayCheckAnswered,
)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def insert_for(s: AsyncSession, model: Any) -> Any:
    """The dialect's INSERT (both PostgreSQL's and SQLite's know ON CONFLICT)."""
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_table(model))


async def _insert_ignoring_duplicates(s: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> int:
    """One multi-row INSERT … ON CONFLICT DO NOTHING; the number of rows actually inserted."""
    if not rows:
        return 0
    result = await s.execute(insert_for(s, model).values(rows).on_conflict_do_nothing())
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


# PostgreSQL: a batch of heartbeats as one array per column, unnested into rows: one statement whose text
# never changes (prepared once per connection), instead of a multi-row VALUES list that SQLAlchemy
# compiles anew for every batch size (the consumer's dominant cost at thousands of heartbeats a second).
_HEARTBEAT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "text"),
    ("person_id", "bigint"),
    ("kind", "text"),
    ("session_id", "bigint"),
    ("recording_id", "text"),
    ("seq", "bigint"),
    ("at", "timestamptz"),
    ("position_s", "float8"),
    ("rate", "float8"),
    ("visible", "boolean"),
    ("angle", "text"),
    ("media_sequence", "bigint"),
)
_UNNEST_HEARTBEATS = text(
    "INSERT INTO heartbeats ("
    + ", ".join(f'"{name}"' for name, _ in _HEARTBEAT_COLUMNS)
    + ") SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _HEARTBEAT_COLUMNS)
    + ") ON CONFLICT DO NOTHING"
)


async def _insert_heartbeats(s: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows or s.get_bind().dialect.name != "postgresql":
        return await _insert_ignoring_duplicates(s, Heartbeat, rows)
    columns = {name: [row[name] for row in rows] for name, _ in _HEARTBEAT_COLUMNS}
    result = await s.execute(_UNNEST_HEARTBEATS, columns)
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


# -- one event at a time (topics attendance and presence) ---------------------------------------------


async def record_attention(db: Database, event: events.AttentionChanged) -> bool:
    """Store an attention change; False when it was already stored (a redelivery)."""
    row = {
        "session_id": event.session_id,
        "person_id": event.person_id,
        "conn_id": event.conn_id,
        "visible": event.visible,
        "at": event.at,
        "reason": event.reason,
    }
    async with db.sessions.begin() as s:
        return await _insert_ignoring_duplicates(s, AttentionChange, [row]) > 0


async def record_live_check(db: Database, event: events.PresenceCheckIssued) -> bool:
    """Store a live presence check as the room issued it (to everyone in the room)."""
    row = {
        "id": event.check_id,
        "kind": LIVE,
        "session_id": event.session_id,
        "recording_id": None,
        "client_id": None,
        "person_id": None,
        "position_s": None,
        "issued_at": event.issued_at,
        "deadline_at": event.deadline_at,
    }
    async with db.sessions.begin() as s:
        return await _insert_ignoring_duplicates(s, PresenceCheckRecord, [row]) > 0


async def record_live_answer(db: Database, event: events.PresenceCheckAnswered) -> bool:
    """Store a person's answer to a live check (the first stored answer stands)."""
    row = {
        "check_id": event.check_id,
        "person_id": event.person_id,
        "answered_at": event.answered_at,
        "latency_ms": event.latency_ms,
    }
    async with db.sessions.begin() as s:
        return await _insert_ignoring_duplicates(s, PresenceAnswer, [row]) > 0


# -- the evidence topic, in batches -------------------------------------------------------------------


@dataclass
class StoredBatch:
    """What one batch stored: rows inserted per table (duplicates not counted), and the (person, recording)
    pairs whose playback advanced, with the furthest position the batch saw (for cheap completion checks)."""

    inserted: dict[str, int] = field(default_factory=dict)
    replay_positions: dict[tuple[int, str], float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.inserted.values())


def _rows(
    batch: Iterable[events.Event], recording_sessions: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    heartbeats: list[dict[str, Any]] = []
    fetches: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    for event in batch:
        if isinstance(event, events.LiveHeartbeat):
            heartbeats.append(
                {
                    "client_id": event.client_id,
                    "person_id": event.person_id,
                    "kind": LIVE,
                    "session_id": event.session_id,
                    "recording_id": None,
                    "seq": event.seq,
                    "at": event.at,
                    "position_s": 0.0,  # live media has no position a page could report
                    "rate": 1.0,
                    "visible": event.visible,
                    "angle": None,
                    "media_sequence": None,
                }
            )
        elif isinstance(event, events.HlsHeartbeat):
            heartbeats.append(
                {
                    "client_id": event.client_id,
                    "person_id": event.person_id,
                    "kind": HLS,
                    "session_id": event.session_id,
                    "recording_id": None,
                    "seq": event.seq,
                    "at": event.at,
                    "position_s": event.position_s,
                    "rate": event.rate,
                    "visible": event.visible,
                    "angle": None,
                    "media_sequence": event.media_sequence,
                }
            )
        elif isinstance(event, events.PlaybackHeartbeat):
            heartbeats.append(
                {
                    "client_id": event.client_id,
                    "person_id": event.person_id,
                    "kind": REPLAY,
                    "session_id": recording_sessions.get(event.recording_id),
                    "recording_id": event.recording_id,
                    "seq": event.seq,
                    "at": event.at,
                    "position_s": event.position_s,
                    "rate": event.rate,
                    "visible": event.visible,
                    "angle": event.angle,
                    "media_sequence": None,
                }
            )
        elif isinstance(event, events.HlsSegmentFetched):
            fetches.append(
                {
                    "session_id": event.session_id,
                    "person_id": event.person_id,
                    "key": event.key,
                    "at": event.at,
                }
            )
        elif isinstance(event, events.ReplayCheckIssued):
            checks.append(
                {
                    "id": event.check_id,
                    "kind": REPLAY,
                    "session_id": recording_sessions.get(event.recording_id),
                    "recording_id": event.recording_id,
                    "client_id": event.client_id,
                    "person_id": event.person_id,
                    "position_s": event.position_s,
                    "issued_at": event.issued_at,
                    "deadline_at": event.deadline_at,
                }
            )
        elif isinstance(event, events.ReplayCheckAnswered):
            answers.append(
                {
                    "check_id": event.check_id,
                    "person_id": event.person_id,
                    "answered_at": event.answered_at,
                    "latency_ms": event.latency_ms,
                }
            )
    return {
        "heartbeats": heartbeats,
        "hls_fetches": fetches,
        "presence_checks": checks,
        "presence_answers": answers,
    }


def _dedup(rows: list[dict[str, Any]], *key: str) -> list[dict[str, Any]]:
    """The first row per key: PostgreSQL refuses a statement whose own rows conflict only when updating,
    but fewer rows are cheaper either way."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in rows:
        k = tuple(row[name] for name in key)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


_MODELS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "heartbeats": (Heartbeat, ("client_id", "seq")),
    "hls_fetches": (HlsFetch, ("session_id", "person_id", "key")),
    "presence_checks": (PresenceCheckRecord, ("id",)),
    "presence_answers": (PresenceAnswer, ("check_id", "person_id")),
}


# PostgreSQL: the resume points of a batch as one upsert from unnested arrays, whose text never changes
# (as _UNNEST_HEARTBEATS), instead of a VALUES list (and its EXCLUDED alias) compiled anew per batch.
_PROGRESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("person_id", "bigint"),
    ("recording_id", "text"),
    ("position_s", "float8"),
    ("rate", "float8"),
    ("visible", "boolean"),
    ("angle", "text"),
    ("updated_at", "timestamptz"),
)
_UPDATED = ("position_s", "rate", "visible", "angle", "updated_at")
_UNNEST_PROGRESS = text(
    "INSERT INTO replay_progress ("
    + ", ".join(f'"{name}"' for name, _ in _PROGRESS_COLUMNS)
    + ") SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _PROGRESS_COLUMNS)
    + ') ON CONFLICT ("person_id", "recording_id") DO UPDATE SET '
    + ", ".join(f'"{name}" = EXCLUDED."{name}"' for name in _UPDATED)
    + ' WHERE replay_progress."updated_at" <= EXCLUDED."updated_at"'
)


async def _advance_progress(
    s: AsyncSession, beats: Sequence[events.PlaybackHeartbeat], recordings: set[str]
) -> dict[tuple[int, str], float]:
    """Keep the resume point (`replay_progress`, read by the replay page and /me) at each known person's
    latest heartbeat per recording; an older heartbeat delivered late never moves it back."""
    latest: dict[tuple[int, str], events.PlaybackHeartbeat] = {}
    furthest: dict[tuple[int, str], float] = {}
    for beat in beats:
        pair = (beat.person_id, beat.recording_id)
        if beat.recording_id not in recordings:
            continue
        furthest[pair] = max(furthest.get(pair, 0.0), beat.position_s)
        if pair not in latest or (beat.at, beat.seq) > (latest[pair].at, latest[pair].seq):
            latest[pair] = beat
    if not latest:
        return {}
    people = set(await s.scalars(select(Person.id).where(Person.id.in_({pid for pid, _ in latest}))))
    rows = [
        {
            "person_id": b.person_id,
            "recording_id": b.recording_id,
            "position_s": b.position_s,
            "rate": b.rate,
            "visible": b.visible,
            "angle": b.angle,
            "updated_at": b.at,
        }
        for (pid, _rec), b in sorted(latest.items())
        if pid in people
    ]
    if rows and s.get_bind().dialect.name == "postgresql":
        await s.execute(
            _UNNEST_PROGRESS, {name: [row[name] for row in rows] for name, _ in _PROGRESS_COLUMNS}
        )
    elif rows:
        stmt = insert_for(s, ReplayProgress).values(rows)
        excluded = stmt.excluded
        table = _table(ReplayProgress)
        await s.execute(
            stmt.on_conflict_do_update(
                index_elements=["person_id", "recording_id"],
                set_={name: excluded[name] for name in _UPDATED},
                where=table.c.updated_at <= excluded.updated_at,
            )
        )
    return {pair: pos for pair, pos in furthest.items() if pair[0] in people}


async def store_batch(db: Database, batch: Sequence[events.Event]) -> StoredBatch:
    """Store a batch of `evidence` events in one transaction: one multi-row insert per table (duplicates
    ignored), then the replay resume points. Other event types in `batch` are ignored."""
    out = StoredBatch()
    recording_ids = {
        e.recording_id for e in batch if isinstance(e, events.PlaybackHeartbeat | events.ReplayCheckIssued)
    }
    async with db.sessions.begin() as s:
        recording_sessions: dict[str, int] = {}
        if recording_ids:
            recording_sessions = {
                rid: sid
                for rid, sid in await s.execute(
                    select(Recording.id, Recording.session_id).where(Recording.id.in_(recording_ids))
                )
            }
        for name, rows in _rows(batch, recording_sessions).items():
            model, key = _MODELS[name]
            unique = _dedup(rows, *key)
            if model is Heartbeat:
                out.inserted[name] = await _insert_heartbeats(s, unique)
            else:
                out.inserted[name] = await _insert_ignoring_duplicates(s, model, unique)
        beats = [e for e in batch if isinstance(e, events.PlaybackHeartbeat)]
        out.replay_positions = await _advance_progress(s, beats, set(recording_sessions))
    return out
