"""Typed application keys for the resources every package shares, set by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from infra.bus import EventBus
from infra.objects import ObjectStore
from infra.settings import Settings

ReadinessCheck = Callable[[], Awaitable[None]]

SETTINGS = web.AppKey("settings", Settings)
OBJECTS = web.AppKey("objects", ObjectStore)
BUS = web.AppKey("bus", EventBus)
METRICS = web.AppKey("metrics", CollectorRegistry)
# name -> check; /readyz runs each and names the ones that fail.
READINESS = web.AppKey("readiness", dict[str, ReadinessCheck])
