"""Wires the catalog into an aiohttp app: its database resource, readiness check, event consumer and
/api routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from catalog import api
from catalog.certificates import routes as certificates
from catalog.consumer import consumer_context
from catalog.courseware.processing import processing_context
from catalog.db import Database
from catalog.external import PullContext
from catalog.keys import DATABASE, EXTERNAL, PLAYBACKS
from catalog.playback import Playbacks
from catalog.puller import pull_context
from catalog.settler import settlement_context
from catalog.supervision.snapshot import refresh_context
from infra.appkeys import READINESS, SETTINGS
from integrations.secrets import sealer_for

__all__ = ["DATABASE", "setup"]


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].effective_database_url, pool_size=app[SETTINGS].database_pool_size)
    app[DATABASE] = db
    app[READINESS]["database"] = db.check
    yield
    await db.close()


async def _external(app: web.Application) -> AsyncIterator[None]:
    """One HTTP client for Tencent Meeting / DingTalk calls, and the credentials key."""
    async with aiohttp.ClientSession() as http:
        app[EXTERNAL] = PullContext(http, app[SETTINGS], sealer_for(app[SETTINGS]))
        yield


def setup(app: web.Application) -> None:
    """Add the catalog's resources and routes to `app` (which already holds SETTINGS and READINESS, and
    whose cleanup contexts provide BUS before this one runs)."""
    # The consumer needs the database: it starts after it and is cancelled before it is closed.
    app.cleanup_ctx.extend([_database, _external, consumer_context, settlement_context, pull_context])
    app.cleanup_ctx.append(processing_context)  # courseware checks and renditions (needs the database)
    app.cleanup_ctx.append(refresh_context)  # the supervision view's snapshots (needs the database)
    app[PLAYBACKS] = Playbacks()
    app[certificates.CERTIFICATES] = certificates.context(app[SETTINGS])
    api.add_routes(app)
