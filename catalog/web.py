"""Wires the catalog into an aiohttp app: its database resource, readiness check and /api routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from catalog import api
from catalog.db import Database
from catalog.keys import DATABASE
from infra.appkeys import READINESS, SETTINGS

__all__ = ["DATABASE", "setup"]


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].effective_database_url)
    app[DATABASE] = db
    app[READINESS]["database"] = db.check
    yield
    await db.close()


def setup(app: web.Application) -> None:
    """Add the catalog's resources and routes to `app` (which already holds SETTINGS and READINESS)."""
    app.cleanup_ctx.append(_database)
    api.add_routes(app)
