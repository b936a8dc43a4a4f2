"""Handlers for external meetings (Tencent Meeting, DingTalk): credentials, a session's link, the pull,
and the Tencent webhook. Thin: parse, call catalog.external, serialize. Listed in catalog.api.ROUTES."""

from __future__ import annotations

from aiohttp import web

from catalog import external
from catalog.auth import current_person, database, now
from catalog.keys import EXTERNAL
from infra.errors import Invalid
from infra.http import json_ok, read_json


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


async def get_credentials(request: web.Request) -> web.Response:
    caller = await current_person(request)
    vendor = external.vendor_of_path(request.match_info["platform"])
    return json_ok(
        await external.credential_status(database(request), caller, _id(request, "org_id"), vendor)
    )


async def put_credentials(request: web.Request) -> web.Response:
    caller = await current_person(request)
    vendor = external.vendor_of_path(request.match_info["platform"])
    body = await read_json(request)
    ctx = request.app[EXTERNAL]
    status = await external.put_credentials(
        database(request), ctx.sealer, caller, _id(request, "org_id"), vendor, body, now()
    )
    return json_ok(status)


async def get_link(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await external.get_link(database(request), caller, _id(request, "session_id")))


async def put_link(request: web.Request) -> web.Response:
    caller = await current_person(request)
    draft = external.link_draft(await read_json(request))
    return json_ok(await external.link(database(request), caller, _id(request, "session_id"), draft, now()))


async def pull(request: web.Request) -> web.Response:
    caller = await current_person(request)
    ctx = request.app[EXTERNAL]
    result = await external.pull(database(request), ctx, caller, _id(request, "session_id"), now())
    return json_ok(result, status=201)


def _delivery(request: web.Request, data: str) -> external.Delivery:
    headers = request.headers
    for name in ("timestamp", "nonce", "signature"):
        value = headers.get(name, "")
        if not value or len(value) > 128:
            raise Invalid(f"missing or oversized {name} header", field=name)
    return external.Delivery(headers["timestamp"], headers["nonce"], headers["signature"], data)


async def tencent_webhook_check(request: web.Request) -> web.Response:
    check_str = request.query.get("check_str", "")
    if not check_str or len(check_str) > 512:
        raise Invalid("check_str is required", field="check_str")
    ctx = request.app[EXTERNAL]
    answer = await external.webhook_check(
        database(request), ctx.sealer, _id(request, "org_id"), _delivery(request, check_str), now()
    )
    return web.Response(text=answer, content_type="text/plain")


async def tencent_webhook(request: web.Request) -> web.Response:
    body = await read_json(request)
    data = body.get("data")
    if not isinstance(data, str) or not data:
        raise Invalid("data is required", field="data")
    ctx = request.app[EXTERNAL]
    await external.webhook_event(
        database(request), ctx.sealer, _id(request, "org_id"), _delivery(request, data), now()
    )
    return web.Response(text=external.WEBHOOK_ACK, content_type="text/plain")
