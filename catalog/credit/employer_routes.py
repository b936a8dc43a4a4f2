"""HTTP routes of the employer's 学时台账 (catalog.credit.employer): the staff overview and the study record
as a streamed XLSX or CSV download. Handlers parse, call the service, serialize."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit import employer, engine, export
from catalog.routing import ORG, Route
from infra.errors import Invalid
from infra.http import json_ok

log = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ACCESS = "employer_admin of the employer, HR bureau, admin"


def _org(request: web.Request) -> int:
    value = int(request.match_info["org_id"])
    return value if value < 2**63 else 0


def _year(request: web.Request) -> int:
    year = f.query_int(request.query, "year", default=engine.credit_year(now()), minimum=2000, maximum=2100)
    assert year is not None
    return year


async def staff(request: web.Request) -> web.Response:
    caller = await current_person(request)
    sort = request.query.get("sort") or "shortfall"
    if sort not in employer.SORTS:
        raise Invalid(f"sort must be one of {', '.join(employer.SORTS)}", field="sort")
    short = f.query_int(request.query, "short", default=0, minimum=0, maximum=1)
    view = await employer.staff_overview(
        database(request),
        caller,
        _org(request),
        _year(request),
        f.page(request.query),
        sort=sort,
        short_only=short == 1,
    )
    return json_ok(view)


async def _stream_record(request: web.Request, ext: str) -> web.StreamResponse:
    """Check the caller, then send the study record batch by batch (XLSX compression off the loop)."""
    caller = await current_person(request)
    org_id, year = _org(request), _year(request)
    db = database(request)
    name = await employer.check_reader(db, caller, org_id)
    title = f"学习记录-{name}-{year}年.{ext}"
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="study-record-{org_id}-{year}.{ext}"; '
            f"filename*=UTF-8''{quote(title)}",
            "Cache-Control": "no-store",
        }
    )
    sheet = export.XlsxStream("学习记录") if ext == "xlsx" else None
    response.content_type = XLSX if sheet else "text/csv"
    if sheet is None:
        response.charset = "utf-8"
    await response.prepare(request)
    header = [list(employer.RECORD_HEADER)]
    rows = 0
    try:
        await response.write(sheet.write(header) if sheet else export.csv_chunk(header, first=True))
        async for batch in employer.study_record(db, org_id, year):
            chunk = await asyncio.to_thread(sheet.write, batch) if sheet else export.csv_chunk(batch)
            rows += len(batch)
            if chunk:
                await response.write(chunk)
        if sheet is not None:
            await response.write(await asyncio.to_thread(sheet.close))
        await response.write_eof()
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one: a closed tab, not an error
        log.info("study record org=%s year=%s: client went away after %d rows", org_id, year, rows)
    finally:
        if sheet is not None:
            sheet.close()  # after a client went away too (idempotent)
    return response


async def study_record_xlsx(request: web.Request) -> web.StreamResponse:
    return await _stream_record(request, "xlsx")


async def study_record_csv(request: web.Request) -> web.StreamResponse:
    return await _stream_record(request, "csv")


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"/api/employers/{ORG}/staff",
        staff,
        "The employer's staff with their registered 学时 of the year by 公需/专业 against the requirement,"
        " who is short and by how much, pending 学时 apart, and the enrolments the employer arranged",
        ACCESS,
        "employer",
        query=("year", "sort", "short", "page", "page_size"),
    ),
    Route(
        "GET",
        f"/api/employers/{ORG}/study-record.xlsx",
        study_record_xlsx,
        "The study record of the employer's staff for the year (25号令): one row per ledger entry (name,"
        " masked phone, course, category, form, day, 学时, status, decision date, reason), streamed XLSX",
        ACCESS,
        "employer",
        query=("year",),
        content_type=XLSX,
    ),
    Route(
        "GET",
        f"/api/employers/{ORG}/study-record.csv",
        study_record_csv,
        "The same study record as CSV (UTF-8 with BOM), streamed",
        ACCESS,
        "employer",
        query=("year",),
        content_type="text/csv",
    ),
)
