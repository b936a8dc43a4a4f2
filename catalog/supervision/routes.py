"""HTTP routes of the bureau's supervision view (catalog.supervision): parse, call one service, serialize.
The export streams its file as the walk makes it."""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit import engine
from catalog.routing import ORG, SESSION, Route
from catalog.supervision import export, sectors, views
from catalog.supervision.snapshot import SNAPSHOTS
from infra.http import json_ok, read_json

log = logging.getLogger(__name__)
ACCESS = "HR&SS bureau and admins: every provider; an industry department: providers of its sector"
YEAR_BODY = {
    "type": "object",
    "properties": {"year": {"type": "integer", "minimum": 2000, "maximum": 2100}},
    "additionalProperties": False,
}
SECTOR_BODY = {
    "type": "object",
    "properties": {"sector": {"type": ["string", "null"], "maxLength": f.SECTOR_MAX}},
    "required": ["sector"],
    "additionalProperties": False,
}


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


def _year(request: web.Request) -> int:
    year = f.query_int(request.query, "year", default=engine.credit_year(now()), minimum=2000, maximum=2100)
    assert year is not None
    return year


def _sector(request: web.Request) -> str | None:
    return f.query_text(request.query, "sector", max_len=f.SECTOR_MAX) or None


async def providers(request: web.Request) -> web.Response:
    caller = await current_person(request)
    year, sector = _year(request), _sector(request)
    snapshots = request.app[SNAPSHOTS]
    return json_ok(await views.providers(database(request), snapshots, caller, year, sector, now()))


async def provider_sessions(request: web.Request) -> web.Response:
    caller = await current_person(request)
    year = _year(request)
    over = f.query_int(request.query, "over", default=0, minimum=0, maximum=1)
    page = f.page(request.query, default_size=50)
    return json_ok(
        await views.sessions(
            database(request),
            request.app[SNAPSHOTS],
            caller,
            _id(request, "org_id"),
            year,
            over == 1,
            page,
            now(),
        )
    )


async def session_entries(request: web.Request) -> web.Response:
    caller = await current_person(request)
    year = f.query_int(request.query, "year", default=None, minimum=2000, maximum=2100)
    page = f.page(request.query, default_size=50)
    return json_ok(await views.entries(database(request), caller, _id(request, "session_id"), year, page))


async def refresh(request: web.Request) -> web.Response:
    caller = await current_person(request)
    body = await read_json(request)
    f.reject_unknown(body, {"year"})
    year = f.integer(body, "year", minimum=2000, maximum=2100, required=False)
    year = engine.credit_year(now()) if year is None else year
    await views.check_supervisor(database(request), caller)
    snapshots = request.app[SNAPSHOTS]
    info = await snapshots.refresh(year, min_age_s=10)
    return json_ok({"snapshot": info.to_dict(now(), snapshots.max_age_s)})


async def _export(request: web.Request, fmt: str) -> web.StreamResponse:
    """Check the caller and the parameters (JSON errors), then stream the report as the walk makes it."""
    caller = await current_person(request)
    year = _year(request)
    provider_id = f.query_int(request.query, "provider", default=None, minimum=1, maximum=f.BIGINT_MAX)
    db = database(request)
    covered = await views.export_providers(db, caller, provider_id)
    suffix = f"-{provider_id}" if provider_id is not None else ""
    title = f"监管报表-{year}年{'-' + covered[0].name if provider_id is not None else ''}.{fmt}"
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="supervision-{year}{suffix}.{fmt}"; '
            f"filename*=UTF-8''{quote(title)}",
            "Cache-Control": "no-store",
        }
    )
    response.content_type = export.CONTENT_TYPES[fmt]
    if fmt == "csv":
        response.charset = "utf-8"
    await response.prepare(request)
    sink = export.Chunks()

    async def send() -> None:
        data = sink.take()
        if data:
            await response.write(data)

    try:
        written = await export.write_report(db, covered, year, fmt, sink, flush=send)
        await response.write_eof()
    except ConnectionResetError:  # a closed tab, not an error
        log.info("supervision export year=%s: the client went away", year)
        return response
    log.info(
        "supervision export year=%s providers=%d sessions=%d entries=%d format=%s person=%s",
        year,
        written.providers,
        written.sessions,
        written.entries,
        fmt,
        caller.person_id,
    )
    return response


async def export_xlsx(request: web.Request) -> web.StreamResponse:
    return await _export(request, "xlsx")


async def export_csv(request: web.Request) -> web.StreamResponse:
    return await _export(request, "csv")


async def set_sector(request: web.Request) -> web.Response:
    caller = await current_person(request)
    sector = sectors.parse(await read_json(request))
    return json_ok(await sectors.set_sector(database(request), caller, _id(request, "org_id"), sector, now()))


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/supervision/providers",
        providers,
        "Providers the caller supervises with their credit year: courses, sessions held, attendees, 学时"
        " by status (net of reversals), approval latency (median, p90), fraud flags, sessions marked 超额;"
        " totals per sector; from the year's snapshot (its time and age in `snapshot`)",
        ACCESS,
        "supervision",
        query=("year", "sector"),
        responses={200: "OK", 403: "Not a supervisor, or a sector not supervised"},
    ),
    Route(
        "GET",
        f"/api/supervision/providers/{ORG}/sessions",
        provider_sessions,
        "One provider's sessions of the year with their figures and reconciliation (fraud 17: 学时 beyond the"
        " session's length, credit without attendance, more people than enrolled or capacity), newest first",
        ACCESS,
        "supervision",
        query=("year", "over", "page", "page_size"),
        responses={200: "OK", 403: "A provider outside the caller's sectors", 404: "No such provider"},
    ),
    Route(
        "GET",
        f"/api/supervision/sessions/{SESSION}/entries",
        session_entries,
        "One session's ledger entries (people masked) with their status, evidence summary and approval"
        " latency, and the session's figures computed now",
        ACCESS,
        "supervision",
        query=("year", "page", "page_size"),
        responses={
            200: "OK",
            403: "A session of a provider outside the caller's sectors",
            404: "No such session",
        },
    ),
    Route(
        "GET",
        "/api/supervision/export.xlsx",
        export_xlsx,
        "The year's supervision report (机构汇总, 课次核对, 学时明细: one row per ledger entry), streamed"
        " XLSX; `provider` narrows it to one provider",
        ACCESS,
        "supervision",
        query=("year", "provider"),
        content_type=export.CONTENT_TYPES["xlsx"],
        responses={200: "OK", 403: "A provider outside the caller's sectors", 404: "No such provider"},
    ),
    Route(
        "GET",
        "/api/supervision/export.csv",
        export_csv,
        "The report's 学时明细 rows as CSV (UTF-8 with BOM), streamed",
        ACCESS,
        "supervision",
        query=("year", "provider"),
        content_type=export.CONTENT_TYPES["csv"],
        responses={200: "OK", 403: "A provider outside the caller's sectors", 404: "No such provider"},
    ),
    Route(
        "POST",
        "/api/supervision/refresh",
        refresh,
        "Recompute the year's snapshot now (a snapshot younger than 10 s is returned as it is)",
        ACCESS,
        "supervision",
        body=YEAR_BODY,
    ),
    Route(
        "PUT",
        f"/api/organizations/{ORG}/sector",
        set_sector,
        "Set (or clear, null) the sector (行业) of a provider or an industry department (audited)",
        "admin",
        "organizations",
        body=SECTOR_BODY,
        responses={200: "Set"},
    ),
)
