"""Wires the catalog into an aiohttp app: its database resource, readiness check, event consumer and
/api routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from catalog import api
from catalog.consumer import consumer_context
from catalog.db import Database
from catalog.keys import DATABASE, PLAYBACKS
from catalog.playback import Playbacks
from catalog.settler import settlement_context
from infra.appkeys import READINESS, SETTINGS

__all__ = ["DATABASE", "setup"]


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].effective_database_url, pool_size=app[SETTINGS].database_pool_size)
    app[DATABASE] = db
    app[READINESS]["database"] = db.check
    yield
    await db.close()


def setup(app: web.Application) -> None:
    """Add the catalog's resources and routes to `app` (which already holds SETTINGS and READINESS, and
    whose cleanup contexts provide BUS before this one runs)."""
    # The consumer needs the database: it starts after it and is cancelled before it is closed.
    app.cleanup_ctx.extend([_database, consumer_context, settlement_context])
    app[PLAYBACKS] = Playbacks()
    api.add_routes(app)
