"""The composition root: `create_app(settings)` builds the whole Lectern HTTP application."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

import catalog
from infra import security_headers
from infra.appkeys import BUS, METRICS, OBJECTS, OUTBOX, READINESS, SETTINGS
from infra.client_address import client_address
from infra.factories import make_bus, make_object_store
from infra.http import Handler, error_middleware, input_boundary_middleware
from infra.outbox import Outbox, OutboxConfig
from infra.settings import Settings
from infra.text import for_log
from streaming import (
    channel,
    courseware_media,
    health,
    hls_evidence,
    hls_routes,
    live,
    metrics,
    objects_routes,
    pages,
    reconcile,
    recording,
)

# How long shutdown waits for the outbox to hand its events to the bus (the rest waits on disk).
OUTBOX_FLUSH_S = 10.0

log = logging.getLogger(__name__)

# A request id we keep from X-Request-Id: what proxies and tracing systems write (hex, UUIDs, base64url).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,64}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag each request with an id (kept from X-Request-Id when it looks like one) and log one line per
    request, with what the client wrote escaped (a `%0a` in the path cannot start a forged line)."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex[:16]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        log.info(
            "request=%s %s %s status=%s ms=%.1f client=%s",
            rid,
            for_log(request.method, 20),
            for_log(request.path),
            status,
            (time.perf_counter() - started) * 1000,
            client_address(request.remote, request.headers, request.app[SETTINGS].trusted_proxies),
        )


async def _objects(app: web.Application) -> AsyncIterator[None]:
    store = make_object_store(app[SETTINGS])
    app[OBJECTS] = store
    app[READINESS]["objects"] = store.check
    yield
    await store.close()


async def _bus(app: web.Application) -> AsyncIterator[None]:
    bus = make_bus(app[SETTINGS])
    app[BUS] = bus
    app[READINESS]["bus"] = bus.check
    yield
    await bus.close()


async def _outbox(app: web.Application) -> AsyncIterator[None]:
    """Events of the live path wait here (on disk) for the bus. Torn down after the rooms and recordings
    (which emit their last events while they close) and before the catalog's consumer (which then handles
    what the outbox delivered: in embedded mode the bus dies with the process)."""
    outbox = await Outbox.open(app[BUS], OutboxConfig(app[SETTINGS].data_dir / "outbox"))
    app[OUTBOX] = outbox
    app[READINESS]["outbox"] = outbox.check
    metrics.track_outbox(app[METRICS], outbox)
    outbox.start()
    yield
    await outbox.close(timeout_s=OUTBOX_FLUSH_S)


def create_app(settings: Settings) -> web.Application:
    # error_middleware sits inside metrics so that mapped errors are counted with their real status;
    # the Chinese error pages inside it, so that a page URL's 404 never reaches the JSON shape; the input
    # boundary innermost, so that what it refuses gets both.
    app = web.Application(
        middlewares=[
            request_id_middleware,
            metrics.metrics_middleware,
            error_middleware,
            pages.error_pages_middleware(),
            input_boundary_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[READINESS] = {}
    # Pages may PUT courseware parts to the S3 server when browsers reach it at another origin.
    uploads = (settings.s3_browser_origin,) if settings.s3_browser_origin else ()
    security_headers.install(app, settings.trusted_proxies, uploads)
    app.cleanup_ctx.extend([_objects, _bus])
    catalog.setup(app)
    courseware_media.setup(app)  # the catalog's courseware checks and renditions, on the recorder
    app.cleanup_ctx.append(_outbox)  # after the catalog's consumer, so it is flushed before that stops
    metrics.install(app)
    health.add_routes(app)
    pages.add_routes(app)
    objects_routes.add_routes(app)
    hls_routes.add_routes(app)
    hls_evidence.add_routes(app)
    channel.setup(app)
    recording.setup(app)  # before live: the rooms end (and recordings finalize) before it closes
    reconcile.setup(app)
    live.setup(app)
    live.use_catalog(app)  # tokens checked against the catalog when used; withdrawals close connections
    return app
