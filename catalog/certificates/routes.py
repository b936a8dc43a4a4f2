"""HTTP handlers and routes of certificates (added to catalog.api.ROUTES): parse, call one service,
serialize. The public verification route needs no login; everything else does."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from catalog import fields as f
from catalog.auth import client_address, current_person, database, now
from catalog.certificates import issue, records, revoke, rules, verify
from catalog.certificates.pdf import Renderer
from catalog.routing import Route
from infra.http import json_ok, read_json
from infra.settings import Settings

CERTIFICATES = web.AppKey("catalog_certificates", records.Context)
# A serial as it may appear in a path (any case; anything else is not a route: 404).
SERIAL = r"{serial:[A-Za-z0-9-]{1,40}}"


def context(settings: Settings) -> records.Context:
    return records.Context(settings.base_url, settings.platform_name, Renderer(settings.certificate_font))


def _ctx(request: web.Request) -> records.Context:
    return request.app[CERTIFICATES]


def _serial(request: web.Request) -> str:
    return rules.normalise(request.match_info["serial"])


async def my_certificates(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await issue.mine(database(request), _ctx(request), caller))


async def issue_certificate(request: web.Request) -> web.Response:
    caller = await current_person(request)
    req = issue.parse(await read_json(request))
    view, created = await issue.issue(database(request), _ctx(request), caller, req, now())
    if not created:
        return json_ok(view)
    return json_ok(view, status=201, headers={"Location": view["pdf_url"]})


async def certificate_pdf(request: web.Request) -> web.Response:
    caller = await current_person(request)
    serial = _serial(request)
    body = await records.download(database(request), _ctx(request), caller, serial)
    name = f"学时证明-{serial}.pdf"
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f"attachment; filename=\"{serial}.pdf\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, no-store",
        },
    )


async def verify_certificate(request: web.Request) -> web.Response:
    serial, code = verify.parse(request.query)
    answer = await verify.verify(database(request), client_address(request), serial, code, now())
    return json_ok(answer, headers={"Cache-Control": "no-store"})


async def revoke_certificate(request: web.Request) -> web.Response:
    caller = await current_person(request)
    reason = revoke.parse_reason(await read_json(request))
    return json_ok(
        await revoke.revoke(database(request), _ctx(request), caller, _serial(request), reason, now())
    )


ISSUE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "scope": {
            "type": "string",
            "enum": list(rules.SCOPES),
            "description": "course: one course's 学时 in the year; annual: the year's transcript",
        },
        "year": {"type": "integer", "minimum": issue.YEAR_MIN, "maximum": issue.YEAR_MAX},
        "course_id": {"type": "integer", "minimum": 1, "maximum": f.BIGINT_MAX},
    },
    "required": ["scope", "year"],
    "additionalProperties": False,
}
REVOKE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": revoke.REASON_MAX}},
    "required": ["reason"],
    "additionalProperties": False,
}

READERS = "the holder, their employer's employer_admin, bureau (an industry department: its sector), admin"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/me/certificates",
        my_certificates,
        "The caller's certificates, newest first, each with its status now (valid, revoked, replaced), its"
        " PDF and verification URLs",
        "logged in",
        "certificates",
    ),
    Route(
        "POST",
        "/api/me/certificates",
        issue_certificate,
        "Issue a certificate of the caller's registered 学时 (one course in a year, or the year's"
        " transcript), computed from the ledger; the current one when it already certifies exactly these"
        " entries, else a new one that replaces it (audited)",
        "logged in (for oneself)",
        "certificates",
        body=ISSUE_BODY,
        responses={
            201: "Issued (Location: its PDF)",
            200: "Nothing changed: the current certificate",
            404: "No such course",
            409: "No registered 学时 to certify",
            503: "The certificate font is not installed (LECTERN_CERTIFICATE_FONT)",
        },
    ),
    Route(
        "GET",
        f"/api/certificates/{SERIAL}.pdf",
        certificate_pdf,
        "A certificate's PDF (Chinese, A4: the figures, serial, verification code and a QR code of the"
        " verification URL), rendered again from its row",
        READERS,
        "certificates",
        responses={
            200: "The PDF",
            404: "No such certificate, or not one the caller may read",
            503: "The certificate font is not installed (LECTERN_CERTIFICATE_FONT)",
        },
        content_type="application/pdf",
    ),
    Route(
        "GET",
        "/api/certificates/verify",
        verify_certificate,
        "Verify a certificate by its serial and verification code: the holder's masked name, 学时 by"
        " category, issuer, date and status now. An unknown serial and a wrong code answer the same 404;"
        " rate-limited per client address",
        "anyone",
        "certificates",
        query=("serial", "code"),
        responses={
            200: "The certificate as the public may see it",
            404: "未找到该证书，请核对编号和验证码 (unknown serial or wrong code, alike)",
            429: "Too many verifications from this address (Retry-After)",
        },
        login=False,
    ),
    Route(
        "POST",
        f"/api/certificates/{SERIAL}/revoke",
        revoke_certificate,
        "Revoke a certificate with a reason (audited); its verification shows revoked from then on",
        "bureau (an industry department: its sector), admin, or provider_admin of the issuing provider;"
        " never the holder",
        "certificates",
        body=REVOKE_BODY,
        responses={
            200: "Revoked",
            403: "May read it but not revoke it (e.g. one's own)",
            404: "No such certificate, or not one the caller may see",
            409: "Already revoked",
        },
    ),
)
