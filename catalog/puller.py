"""The automatic pull of external meetings: every `LECTERN_EXTERNAL_PULL_EVERY_S` seconds, sessions linked
to a Tencent meeting or a DingTalk conference / live whose organization has credentials are pulled after
their scheduled end (once `PULL_AFTER[0]` has passed, and again after `PULL_AFTER[1]`, for a meeting that
ran over), then settled (catalog.credit.settle.settle_external). A failed pull is retried with exponential
backoff (`backoff_s`), at most `MAX_FAILURES` times per round of a session; each try leaves a batch (done
or failed, with its error), which is all the state there is. Pulls are idempotent: the same records again
change nothing. Runs in the catalog app's cleanup context, cancelled and awaited on the way out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import func, select

from catalog import external, external_imports, periodic
from catalog.credit import settle
from catalog.db import Database
from catalog.keys import DATABASE, EXTERNAL
from catalog.models import Course, ExternalImportBatch, PlatformCredential, Session
from infra.appkeys import SETTINGS
from infra.errors import DomainError
from integrations.records import Platform, Source, vendor_of

log = logging.getLogger(__name__)

PULL_AFTER = (timedelta(minutes=5), timedelta(hours=3))  # after the scheduled end
HORIZON = timedelta(days=7)  # sessions that ended longer ago are left to the console's button
MAX_FAILURES = 8
BACKOFF_BASE_S = 60.0
BACKOFF_MAX_S = 3600.0


def backoff_s(failures: int) -> float:
    """How long after the n-th failed try (n ≥ 1) the next one waits: 1, 2, 4 … minutes, at most an hour."""
    return min(BACKOFF_BASE_S * float(2 ** max(failures - 1, 0)), BACKOFF_MAX_S)


@dataclass(frozen=True)
class Due:
    session_id: int
    reason: str  # "after_end" or "retry"


async def due_pulls(db: Database, now: datetime) -> list[Due]:
    """Linked sessions (with credentials for their platform) that need a pull now."""
    async with db.sessions.begin() as s:
        linked = (
            await s.execute(
                select(Session.id, Session.scheduled_end, Session.external_platform, Course.provider_org_id)
                .join(Course, Course.id == Session.course_id)
                .where(
                    Session.external_platform != "none",
                    Session.scheduled_end <= now - PULL_AFTER[0],
                    Session.scheduled_end >= now - HORIZON,
                )
            )
        ).all()
        if not linked:
            return []
        with_credentials = set(
            (
                await s.execute(
                    select(PlatformCredential.org_id, PlatformCredential.vendor).where(
                        PlatformCredential.replaced_at.is_(None)
                    )
                )
            ).all()
        )
        batches = (
            await s.execute(
                select(
                    ExternalImportBatch.session_id,
                    ExternalImportBatch.status,
                    func.count(),
                    func.max(ExternalImportBatch.fetched_at),
                )
                .where(
                    ExternalImportBatch.session_id.in_([row[0] for row in linked]),
                    ExternalImportBatch.source == Source.API.value,
                )
                .group_by(ExternalImportBatch.session_id, ExternalImportBatch.status)
            )
        ).all()
        done_at: dict[int, datetime] = {}
        failed: dict[int, tuple[int, datetime]] = {}
        for session_id, status, n, last in batches:
            if status in ("done", "unchanged"):
                done_at[session_id] = max(last, done_at.get(session_id, last))
            elif status == "failed":
                failed[session_id] = (n, last)
        # Failures since the last successful pull count toward the backoff.
        failures_since: dict[int, int] = {}
        for session_id, (_n, _last) in failed.items():
            since = done_at.get(session_id)
            query = select(func.count()).where(
                ExternalImportBatch.session_id == session_id,
                ExternalImportBatch.source == Source.API.value,
                ExternalImportBatch.status == "failed",
            )
            if since is not None:
                query = query.where(ExternalImportBatch.fetched_at > since)
            failures_since[session_id] = int(await s.scalar(query) or 0)
    out: list[Due] = []
    for session_id, end, platform, org_id in linked:
        try:
            vendor = vendor_of(Platform(platform))
        except ValueError:
            continue
        if (org_id, vendor.value) not in with_credentials:
            continue
        target = max((end + after for after in PULL_AFTER if end + after <= now), default=None)
        if target is None:
            continue
        last_done = done_at.get(session_id)
        if last_done is not None and last_done >= target:
            continue  # this round is pulled
        failures = failures_since.get(session_id, 0)
        if failures:
            last_failure = failed[session_id][1]
            if failures >= MAX_FAILURES or now < last_failure + timedelta(seconds=backoff_s(failures)):
                continue
            out.append(Due(session_id, "retry"))
        else:
            out.append(Due(session_id, "after_end"))
    return out


async def pull_due(db: Database, ctx: external.PullContext, now: datetime) -> dict[str, int]:
    """Pull what is due and settle what was pulled. Returns counts for the log."""
    counts = {"pulled": 0, "failed": 0, "entries": 0}
    for due in await due_pulls(db, now):
        try:
            await external.pull(db, ctx, None, due.session_id, now)
        except DomainError as exc:  # pull() has left a failed batch with the message
            counts["failed"] += 1
            log.warning("automatic pull failed session=%d (%s): %s", due.session_id, due.reason, exc.code)
            continue
        except Exception as exc:  # an unexpected failure still counts toward the backoff
            counts["failed"] += 1
            log.exception("automatic pull failed session=%d (%s)", due.session_id, due.reason)
            await _failed(db, due.session_id, type(exc).__name__, now)
            continue
        counts["pulled"] += 1
        report = await settle.settle_external(db, due.session_id, now)
        counts["entries"] += report.entries
    return counts


async def _failed(db: Database, session_id: int, what: str, now: datetime) -> None:
    async with db.sessions.begin() as s:
        platform = await s.scalar(select(Session.external_platform).where(Session.id == session_id))
    if platform is None or platform == "none":
        return
    await external_imports.failed_batch(
        db, session_id, Platform(platform), Source.API, None, f"unexpected error: {what}", now
    )


async def pull_round(app: web.Application) -> None:
    """One round: pull (and settle) the linked sessions that are due."""
    counts = await pull_due(app[DATABASE], app[EXTERNAL], datetime.now(UTC))
    if any(counts.values()):
        log.info("external pulls %s", " ".join(f"{k}={v}" for k, v in counts.items()))


async def pull_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the pull task runs while the app does (not at all when the setting is 0)."""
    async with periodic.every("external pull", app[SETTINGS].external_pull_every_s, lambda: pull_round(app)):
        yield
