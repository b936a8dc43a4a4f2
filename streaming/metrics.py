"""Prometheus metrics: a registry per app (no globals), request counters and latency, /metrics."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from infra.appkeys import METRICS
from infra.http import Handler
from infra.outbox import Outbox

REQUESTS = web.AppKey("metric_requests", Counter)
LATENCY = web.AppKey("metric_latency", Histogram)


def install(app: web.Application) -> None:
    registry = CollectorRegistry()
    app[METRICS] = registry
    app[REQUESTS] = Counter(
        "lectern_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    app[LATENCY] = Histogram(
        "lectern_http_request_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        registry=registry,
    )
    app.router.add_get("/metrics", metrics)


def track_outbox(registry: CollectorRegistry, outbox: Outbox) -> None:
    """The outbox's depth and oldest age (read at scrape time), and its delivered/refused counts."""
    gauges = {
        "lectern_outbox_events": ("events waiting in the outbox for the bus", lambda: outbox.depth),
        "lectern_outbox_oldest_age_seconds": (
            "how long the oldest event in the outbox has waited (0 when empty)",
            lambda: outbox.oldest_age_s,
        ),
        "lectern_outbox_delivered": (
            "events the outbox handed to the bus since start",
            lambda: outbox.delivered,
        ),
        "lectern_outbox_refused": ("events refused because the outbox was full", lambda: outbox.dropped),
    }
    for name, (doc, read) in gauges.items():
        Gauge(name, doc, registry=registry).set_function(read)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_name(request)
        request.app[REQUESTS].labels(request.method, route, str(status)).inc()
        request.app[LATENCY].labels(request.method, route).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
