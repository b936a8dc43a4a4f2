"""The credit settlement task: every `LECTERN_CREDIT_SETTLE_EVERY_S` seconds it settles the sessions that
ended (and the replays that completed) since the last round (catalog.credit.settle.settle_due). Runs in
the catalog app's cleanup context, cancelled and awaited on the way out; a round that fails is logged and
retried at the next one (settlement is idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from catalog.credit import settle
from catalog.db import Database
from catalog.keys import DATABASE
from infra.appkeys import SETTINGS

log = logging.getLogger(__name__)


async def run(db: Database, every_s: float) -> None:
    """Settle what is due, then wait `every_s`, until cancelled."""
    while True:
        try:
            report = await settle.settle_due(db, datetime.now(UTC))
            if report.entries or report.flags or report.sessions:
                log.info(
                    "credit settlement sessions=%d replays=%d entries=%d flags=%d",
                    report.sessions,
                    report.replays,
                    report.entries,
                    report.flags,
                )
        except Exception:
            log.exception("credit settlement round failed; retried in %.0f s", every_s)
        await asyncio.sleep(every_s)


async def settlement_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the settlement task runs while the app does (not at all when the setting is 0)."""
    every_s = app[SETTINGS].credit_settle_every_s
    if every_s <= 0:
        yield
        return
    task = asyncio.create_task(run(app[DATABASE], every_s), name="catalog-credit-settlement")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
