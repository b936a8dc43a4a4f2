"""HTTP handlers for credit (catalog.api lists them in ROUTES): parse, call one service, serialize."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit import corrections, engine, export, policies, review, views
from infra.errors import Invalid
from infra.http import json_ok, read_json

FLAG_STATUSES = ("open", "dismissed", "confirmed", "all")


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


async def get_policy(request: web.Request) -> web.Response:
    await current_person(request)
    return json_ok(await policies.current_view(database(request)))


async def policy_versions(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await policies.versions(database(request), caller))


async def create_policy(request: web.Request) -> web.Response:
    caller = await current_person(request)
    params, note = policies.parse_new(await read_json(request))
    return json_ok(await policies.create(database(request), caller, params, note, now()), status=201)


async def my_credits(request: web.Request) -> web.Response:
    caller = await current_person(request)
    at = now()
    year = f.query_int(request.query, "year", default=engine.credit_year(at), minimum=2000, maximum=2100)
    assert year is not None
    return json_ok(await views.my_credits(database(request), caller, year, at))


async def session_credits(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await views.session_credits(database(request), caller, _id(request, "session_id"), now()))


def _download(body: bytes, content_type: str, session_id: int, ext: str) -> web.Response:
    name = f"出勤与学时-课次{session_id}.{ext}"
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if ext == "csv" else None,
        headers={
            "Content-Disposition": f'attachment; filename="session-{session_id}.{ext}"; '
            f"filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


async def attendance_csv(request: web.Request) -> web.Response:
    caller = await current_person(request)
    session_id = _id(request, "session_id")
    view = await views.session_credits(database(request), caller, session_id, now())
    return _download(export.to_csv(export.table(view)), "text/csv", session_id, "csv")


async def attendance_xlsx(request: web.Request) -> web.Response:
    caller = await current_person(request)
    session_id = _id(request, "session_id")
    view = await views.session_credits(database(request), caller, session_id, now())
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return _download(export.to_xlsx(export.table(view)), xlsx, session_id, "xlsx")


async def list_flags(request: web.Request) -> web.Response:
    caller = await current_person(request)
    status = request.query.get("status", "open") or "open"
    if status not in FLAG_STATUSES:
        raise Invalid(f"status must be one of {', '.join(FLAG_STATUSES)}", field="status")
    course_id = f.query_int(request.query, "course_id", default=None, minimum=1, maximum=2**63 - 1)
    return json_ok(
        await review.list_flags(
            database(request), caller, None if status == "all" else status, course_id, f.page(request.query)
        )
    )


async def resolve_flag(request: web.Request) -> web.Response:
    caller = await current_person(request)
    status, resolution = review.parse_resolution(await read_json(request))
    return json_ok(
        await review.resolve(database(request), caller, _id(request, "flag_id"), status, resolution, now())
    )


async def create_correction(request: web.Request) -> web.Response:
    caller = await current_person(request)
    start, end, reason = corrections.parse(await read_json(request))
    return json_ok(
        await corrections.create(
            database(request), caller, _id(request, "session_id"), start, end, reason, now()
        ),
        status=201,
    )


async def list_corrections(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await corrections.list_for(database(request), caller, _id(request, "session_id")))
