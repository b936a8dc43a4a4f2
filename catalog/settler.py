"""The credit settlement task: every `LECTERN_CREDIT_SETTLE_EVERY_S` seconds it settles the sessions that
ended (and the replays that completed) since the last round (catalog.credit.settle.settle_due). Runs in
the catalog app's cleanup context, cancelled and awaited on the way out; a round that fails is logged and
retried at the next one (settlement is idempotent)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from aiohttp import web

from catalog import consumer, periodic
from catalog.credit import settle
from catalog.keys import DATABASE
from infra import events
from infra.appkeys import BUS, OUTBOX, SETTINGS
from infra.bus import EventBus
from infra.outbox import Outbox

log = logging.getLogger(__name__)


async def evidence_through(bus: EventBus, outbox: Outbox | None, now: datetime) -> datetime:
    """Until when the catalog has stored every evidence event: the publish time of the oldest event its
    consumer group has not acknowledged on the evidence topics (event ids start with their publish time
    in ms), and of the oldest event still waiting in this process's outbox; `now` when nothing waits."""
    through = now
    for topic in events.KEPT_UNTIL_CONSUMED:
        oldest = await bus.oldest_unacked(topic, consumer.GROUP)
        if oldest is not None:
            ms, _seq = events.parse_event_id(oldest)
            through = min(through, datetime.fromtimestamp(ms / 1000, UTC))
    if outbox is not None and outbox.depth > 0:
        through = min(through, now - timedelta(seconds=outbox.oldest_age_s))
    return through


async def settle_round(app: web.Application) -> None:
    """One round: settle what is due, as far as the catalog has stored the evidence."""
    now = datetime.now(UTC)
    through = await evidence_through(app[BUS], app.get(OUTBOX), now)
    report = await settle.settle_due(app[DATABASE], now, evidence_through=through)
    if report.entries or report.flags or report.sessions:
        log.info(
            "credit settlement sessions=%d replays=%d entries=%d flags=%d",
            report.sessions,
            report.replays,
            report.entries,
            report.flags,
        )


async def settlement_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the settlement task runs while the app does (not at all when the setting is 0)."""
    async with periodic.every(
        "credit settlement", app[SETTINGS].credit_settle_every_s, lambda: settle_round(app)
    ):
        yield
