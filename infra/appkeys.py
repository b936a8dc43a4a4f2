"""Typed application keys for the resources every package shares, set by the composition root."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from infra.bus import EventBus, EventSink
from infra.objects import ObjectStore
from infra.outbox import Outbox
from infra.readiness import ReadinessCheck
from infra.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
OBJECTS = web.AppKey("objects", ObjectStore)
BUS = web.AppKey("bus", EventBus)
# Where the live path hands its events: kept on disk until the bus takes them (infra/outbox.py).
OUTBOX = web.AppKey("outbox", Outbox)
METRICS = web.AppKey("metrics", CollectorRegistry)
# name -> check; /readyz runs each and names the ones that fail.
READINESS = web.AppKey("readiness", dict[str, ReadinessCheck])


def event_sink(app: web.Application) -> EventSink | None:
    """Where a live-path component publishes: the outbox (create_app always has one), else the bus
    itself (tests that assemble a part of the live path alone), else nowhere."""
    outbox = app.get(OUTBOX)
    return outbox if outbox is not None else app.get(BUS)
