"""The catalog's typed application keys."""

from __future__ import annotations

from aiohttp import web

from catalog.db import Database

DATABASE = web.AppKey("database", Database)
