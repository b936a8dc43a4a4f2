"""Certificates anyone can verify (R28, fraud 18), on SQLite and PostgreSQL: issued from registered ledger
entries only (built through the real evidence path and settlement, then approved), the PDF read back
(pypdf's text; the QR code rendered by pypdfium2 and decoded by zxing-cpp), public verification without a
login, revocation showing at once (of an entry, a reversal, the certificate itself), forged and guessed
serials and codes finding nothing alike, the rate limit, and who may download and revoke."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2  # type: ignore[import-untyped]
import pytest
import zxingcpp
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog.certificates import rules
from catalog.credit import ledger, settle
from catalog.domain import OrgType, Role
from catalog.models import AuditEntry, Certificate, Course, CreditEntry, Organization
from infra.settings import Settings, replace_settings
from tests.integration.catalog import conftest as catalog_fixtures
from tests.integration.catalog.conftest import SECRET, AiohttpClient, World, make_app
from tests.integration.catalog.credit_support import T0, at, ended_session, live, live_checks

Client = TestClient[web.Request, web.Application]

# The catalog's fixtures (catalog/conftest.py): each test runs on SQLite and on PostgreSQL.
sqlite_template = catalog_fixtures.sqlite_template
postgres_template = catalog_fixtures.postgres_template
engine_template = catalog_fixtures.engine_template
database_url = catalog_fixtures.database_url
client = catalog_fixtures.client
world = catalog_fixtures.world

YEAR = 2026  # T0's credit year
SETTLED = T0 + timedelta(days=1)
SERIAL = re.compile(r"^QDCE-2026-[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{10}$")
PUBLIC_KEYS = {
    "serial", "status", "reason", "name", "scope", "year", "course_title", "total_xueshi", "public_xueshi",
    "professional_xueshi", "issuer", "issued_at", "issued_on",
}  # fmt: skip


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The catalog without its settlement task: these tests settle by hand."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


# -- building credit through the evidence path --------------------------------------------------------------


async def earn(w: World, course_id: int, people: Sequence[int], day: int = 0) -> dict[int, int]:
    """A 90-minute live session of the course on T0 + `day` days that the people watched throughout,
    answering every check, settled: {person id: their (pending) entry id}, 2 学时 each."""
    start = T0 + timedelta(days=day)
    session_id = await ended_session(w, course_id, start, 90)
    for person in people:
        await live(w.db, session_id, person, start, at(90, start))
    await live_checks(
        w.db, session_id, [at(10, start), at(40, start), at(70, start)], dict.fromkeys(people, 3000)
    )
    report = await settle.settle_session(w.db, session_id, SETTLED + timedelta(days=day))
    assert report.entries == len(people)
    async with w.db.sessions.begin() as s:
        rows = await s.execute(
            select(CreditEntry.person_id, CreditEntry.id).where(CreditEntry.session_id == session_id)
        )
        return {person: entry for person, entry in rows}


async def decide(c: Client, w: World, entry_id: int, action: str, by: str, reason: str = "") -> None:
    """Approve or revoke an entry as the employer's administrator does it: through the approval API
    (catalog.credit.approval: the status, a CreditDecision row and an audit row, in one transaction)."""
    if action == "approve":
        body: dict[str, Any] = {"entry_ids": [entry_id], "action": "approve", "reason": reason}
        r = await c.post("/api/credit-entries/decisions", json=body, headers=me(w, by))
    else:
        r = await c.post(
            f"/api/credit-entries/{entry_id}/{action}", json={"reason": reason}, headers=me(w, by)
        )
    assert r.status == 200, await r.text()


async def roomy(w: World) -> None:
    """Let the seeded course credit more than one session (its cap is its credit_hours, 2 学时)."""
    async with w.db.sessions.begin() as s:
        course = await s.get(Course, w.course_id)
        assert course is not None
        course.credit_hours = Decimal(10)


def me(w: World, key: str = "learner") -> dict[str, str]:
    return w.actors[key].headers


async def certify(
    c: Client, w: World, status: int = 201, who: str = "learner", **body: Any
) -> dict[str, Any]:
    r = await c.post("/api/me/certificates", json={"year": YEAR, **body}, headers=me(w, who))
    assert r.status == status, await r.text()
    data: dict[str, Any] = await r.json()
    return data


async def verify(c: Client, serial: str, code: str) -> tuple[int, dict[str, Any]]:
    r = await c.get("/api/certificates/verify", params={"serial": serial, "code": code})
    return r.status, await r.json()


async def stored(w: World, serial: str) -> Certificate:
    async with w.db.sessions.begin() as s:
        cert = (await s.scalars(select(Certificate).where(Certificate.serial == serial))).one()
        return cert


async def audit_rows(w: World, action: str) -> list[AuditEntry]:
    async with w.db.sessions.begin() as s:
        return list(await s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def qr_codes(data: bytes) -> list[str]:
    """The QR codes seen on the PDF's first page, rendered at 144 dpi as a phone camera would see it."""
    page = pypdfium2.PdfDocument(data)[0]
    image = page.render(scale=2).to_pil()
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


# -- issue ------------------------------------------------------------------------------------------------


async def test_a_course_certificate_certifies_registered_entries_only_and_its_pdf_reads_back(
    client: Client, world: World, settings: Settings
) -> None:
    learner = world.actors["learner"].person_id
    first = await earn(world, world.course_id, [learner])
    await earn(world, world.course_id, [learner], day=1)  # a second session, still pending
    await decide(client, world, first[learner], "approve", "employer_admin")

    cert = await certify(client, world, scope="course", course_id=world.course_id)
    assert SERIAL.match(cert["serial"]), cert["serial"]
    assert rules.is_code(cert["verify_code"])
    assert (cert["scope"], cert["year"], cert["course_id"]) == ("course", YEAR, world.course_id)
    assert cert["course_title"] == "建筑工程新技术"
    assert (cert["total_xueshi"], cert["professional_xueshi"], cert["public_xueshi"]) == (
        "2.00",
        "2.00",
        "0.00",
    )
    assert cert["issuer"] == "青岛继续教育基地"  # the course's provider
    assert cert["status"] == "valid"
    verify_url = f"{settings.base_url}/verify?serial={cert['serial']}&code={cert['verify_code']}"
    assert cert["verify_url"] == verify_url
    row = await stored(world, cert["serial"])
    assert row.entry_ids == [first[learner]]  # the pending entry is not certified

    r = await client.get(cert["pdf_url"], headers=me(world))
    assert r.status == 200
    assert r.content_type == "application/pdf"
    data = await r.read()
    assert hashlib.sha256(data).hexdigest() == row.pdf_sha256  # rendered again, byte for byte
    text = pdf_text(data)
    expected = [
        "专业技术人员继续教育学时证明",
        "测试learner",
        cert["serial"],
        cert["verify_code"],
        "建筑工程新技术",
    ]
    expected += ["专业科目：", "2 学时", "公需科目：", "0 学时", "青岛继续教育基地"]
    for expected_text in expected:
        assert expected_text in text, (expected_text, text)
    assert qr_codes(data) == [verify_url]

    (issued,) = await audit_rows(world, "certificate.issued")
    assert issued.subject_id == cert["serial"]
    assert issued.actor_person_id == learner
    assert issued.detail["entry_ids"] == [first[learner]]


async def test_with_nothing_registered_there_is_nothing_to_certify(client: Client, world: World) -> None:
    learner = world.actors["learner"].person_id
    await earn(world, world.course_id, [learner])  # pending only
    for body in ({"scope": "course", "course_id": world.course_id}, {"scope": "annual"}):
        r = await client.post("/api/me/certificates", json={"year": YEAR, **body}, headers=me(world))
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "conflict"
    r = await client.get("/api/me/certificates", headers=me(world))
    assert (await r.json())["items"] == []
    assert await audit_rows(world, "certificate.issued") == []


async def test_asking_again_gives_the_current_one_and_new_credit_replaces_it(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"].person_id
    first = await earn(world, world.course_id, [learner])
    await decide(client, world, first[learner], "approve", "employer_admin")
    old = await certify(client, world, scope="course", course_id=world.course_id)
    again = await certify(client, world, 200, scope="course", course_id=world.course_id)
    assert again["serial"] == old["serial"]

    await roomy(world)
    second = await earn(world, world.course_id, [learner], day=1)
    await decide(client, world, second[learner], "approve", "employer_admin")
    new = await certify(client, world, scope="course", course_id=world.course_id)
    assert new["serial"] != old["serial"]
    assert new["total_xueshi"] == "4.00"
    assert (await stored(world, old["serial"])).replaced_by_id == (await stored(world, new["serial"])).id

    r = await client.get("/api/me/certificates", headers=me(world))
    items = {i["serial"]: i["status"] for i in (await r.json())["items"]}
    assert items == {new["serial"]: "valid", old["serial"]: "replaced"}
    assert (await verify(client, old["serial"], old["verify_code"]))[1]["status"] == "replaced"
    (replacing,) = [a for a in await audit_rows(world, "certificate.issued") if a.subject_id == new["serial"]]
    assert replacing.detail["replaces"] == old["serial"]


async def test_the_annual_transcript_sums_by_category_and_names_the_platform(
    client: Client, world: World, settings: Settings
) -> None:
    learner = world.actors["learner"].person_id
    public = await world.course(world.orgs["other_provider"], title="职业道德与法规", category="public")
    await world.enroll(learner, public)
    for course, day in ((world.course_id, 0), (public, 1)):
        entries = await earn(world, course, [learner], day=day)
        await decide(client, world, entries[learner], "approve", "employer_admin")
    cert = await certify(client, world, scope="annual")
    assert (cert["public_xueshi"], cert["professional_xueshi"], cert["total_xueshi"]) == (
        "2.00",
        "2.00",
        "4.00",
    )
    assert cert["course_id"] is None
    assert cert["issuer"] == settings.platform_name == "青岛市专业技术人员继续教育平台"
    r = await client.get(cert["pdf_url"], headers=me(world))
    text = pdf_text(await r.read())
    assert "2026 年度学时证明" in text
    assert "4 学时" in text
    assert settings.platform_name in text


# -- verify -----------------------------------------------------------------------------------------------


async def _certified(client: Client, world: World, key: str = "learner") -> tuple[dict[str, Any], int]:
    person = world.actors[key].person_id
    if key != "learner":  # the seeded learner is enrolled already
        await world.enroll(person, world.course_id)
    entries = await earn(world, world.course_id, [person])
    await decide(client, world, entries[person], "approve", "employer_admin")
    return await certify(client, world, who=key, scope="course", course_id=world.course_id), entries[person]


async def test_anyone_verifies_without_logging_in_and_sees_a_masked_name(
    client: Client, world: World
) -> None:
    cert, _ = await _certified(client, world)
    status, body = await verify(client, cert["serial"], cert["verify_code"])
    assert status == 200
    assert set(body) == PUBLIC_KEYS
    assert body["status"] == "valid"
    assert body["reason"] is None
    assert body["name"] == "测***r"  # 测试learner
    assert (body["total_xueshi"], body["issuer"]) == ("2.00", "青岛继续教育基地")
    assert world.actors["learner"].phone not in str(body)
    # What a person types: lower case, spaces in the code.
    code = cert["verify_code"]
    status, body = await verify(client, cert["serial"].lower(), f"{code[:4]} {code[4:].lower()}")
    assert (status, body["serial"]) == (200, cert["serial"])


async def test_revoking_a_certified_entry_shows_the_certificate_revoked_at_once(
    client: Client, world: World
) -> None:
    cert, entry = await _certified(client, world)
    await decide(client, world, entry, "revoke", "employer_admin", reason="单位核查：未实际参加")
    status, body = await verify(client, cert["serial"], cert["verify_code"])
    assert (status, body["status"], body["reason"]) == (200, "revoked", "credit_revoked")
    assert "未实际参加" not in str(body)  # the reason's text is not for the public
    r = await client.get("/api/me/certificates", headers=me(world))
    assert [i["status"] for i in (await r.json())["items"]] == ["revoked"]
    # Nothing registered is left to certify.
    await certify(client, world, 409, scope="course", course_id=world.course_id)


async def test_reversing_a_certified_entry_shows_the_certificate_revoked(
    client: Client, world: World
) -> None:
    cert, entry = await _certified(client, world)
    await ledger.reverse(world.db, entry, world.actors["admin"].person_id, "重复计入", datetime.now(UTC))
    _, body = await verify(client, cert["serial"], cert["verify_code"])
    assert (body["status"], body["reason"]) == ("revoked", "credit_reversed")


async def test_a_revoked_certificate_verifies_as_revoked_and_the_act_is_audited(
    client: Client, world: World
) -> None:
    cert, _ = await _certified(client, world)
    path = f"/api/certificates/{cert['serial']}/revoke"
    reason = {"reason": "证书信息有误，作废"}
    # The holder may read it but not revoke it; another learner and another provider learn nothing.
    for who, expected in (
        ("learner", 403),
        ("employer_admin", 403),
        ("staff", 404),
        ("other_provider_admin", 404),
    ):
        r = await client.post(path, json=reason, headers=me(world, who))
        assert r.status == expected, (who, await r.text())
    r = await client.post(path, json={}, headers=me(world, "bureau"))
    assert r.status == 400
    r = await client.post(path, json=reason, headers=me(world, "bureau"))
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "revoked"
    r = await client.post(path, json=reason, headers=me(world, "admin"))
    assert r.status == 409

    _, body = await verify(client, cert["serial"], cert["verify_code"])
    assert (body["status"], body["reason"]) == ("revoked", "certificate_revoked")
    assert "作废" not in str(body)
    r = await client.get("/api/me/certificates", headers=me(world))
    (mine,) = (await r.json())["items"]
    assert (mine["status"], mine["revoked_reason"]) == ("revoked", reason["reason"])  # the holder is told why
    (row,) = await audit_rows(world, "certificate.revoked")
    assert (row.subject_id, row.actor_person_id) == (cert["serial"], world.actors["bureau"].person_id)
    assert row.detail["reason"] == reason["reason"]
    assert row.detail["as"] == "bureau"


async def test_the_issuing_provider_and_the_industry_department_of_its_sector_may_revoke(
    client: Client, world: World
) -> None:
    cert, _ = await _certified(client, world)
    staffs, _ = await _certified(client, world, "staff")
    r = await client.post(
        f"/api/certificates/{staffs['serial']}/revoke",
        json={"reason": "课程学时核减"},
        headers=me(world, "provider_admin"),
    )
    assert r.status == 200, await r.text()
    (row,) = await audit_rows(world, "certificate.revoked")
    assert row.detail["as"] == "provider_admin"

    health = await world.org("health_dept", OrgType.INDUSTRY_DEPT, "青岛市卫生健康委员会")
    construction = await world.org("construction_dept", OrgType.INDUSTRY_DEPT, "青岛市住房和城乡建设局")
    async with world.db.sessions.begin() as s:
        for org, sector in (
            (world.orgs["provider"], "construction"),
            (health, "health"),
            (construction, "construction"),
        ):
            o = await s.get(Organization, org)
            assert o is not None
            o.sector = sector
    await world.person("health", [(Role.BUREAU, health)])
    await world.person("construction", [(Role.BUREAU, construction)])
    path = f"/api/certificates/{cert['serial']}/revoke"
    r = await client.post(path, json={"reason": "核查"}, headers=me(world, "health"))
    assert r.status == 404  # another sector's certificate: not theirs to see
    r = await client.post(path, json={"reason": "核查"}, headers=me(world, "construction"))
    assert r.status == 200, await r.text()


async def test_forged_tampered_and_guessed_serials_and_codes_all_find_nothing_alike(
    client: Client, world: World
) -> None:
    cert, _ = await _certified(client, world)
    other, _ = await _certified(client, world, "staff")
    serial, code = cert["serial"], cert["verify_code"]
    tampered = code[:-1] + ("2" if code[-1] != "2" else "3")
    forged = rules.new_serial(YEAR)
    answers = []
    for s, c in (
        (serial, tampered),  # one character of the code changed
        (forged, code),  # a well-formed serial that was never issued, with a real code
        (serial, other["verify_code"]),  # someone else's code
        (serial[:-1] + ("2" if serial[-1] != "2" else "3"), code),  # a neighbouring serial
        ("QDCE-2026-00000001", code),  # a sequential guess, not even of the alphabet
    ):
        status, body = await verify(client, s, c)
        answers.append((status, body))
    assert all(a == (404, answers[0][1]) for a in answers), answers
    assert answers[0][1]["error"]["message"] == "未找到该证书，请核对编号和验证码"
    assert answers[0][1]["error"]["field"] is None  # no hint of which part was wrong
    # Bad input is a 400 naming the field.
    for params, field in (
        ({"serial": serial}, "code"),
        ({"code": code}, "serial"),
        ({"serial": "Q" * 41, "code": code}, "serial"),
    ):
        r = await client.get("/api/certificates/verify", params=params)
        assert r.status == 400
        assert (await r.json())["error"]["field"] == field


async def test_verification_is_rate_limited_per_address(client: Client, world: World) -> None:
    cert, _ = await _certified(client, world)
    # Successes take their failure count back: checking real certificates is never slowed by it.
    for _ in range(3):
        assert (await verify(client, cert["serial"], cert["verify_code"]))[0] == 200
    for _ in range(10):
        assert (await verify(client, rules.new_serial(YEAR), rules.new_code()))[0] == 404
    r = await client.get("/api/certificates/verify", params={"serial": cert["serial"], "code": "WRONGCOD"})
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1
    body = await r.json()
    assert body["error"]["code"] == "too_many_requests"
    assert body["error"]["details"]["retry_after_s"] == int(r.headers["Retry-After"])
    # Throttled attempts are refused before any lookup, the right code included.
    assert (await verify(client, cert["serial"], cert["verify_code"]))[0] == 429


# -- who may download --------------------------------------------------------------------------------------


async def test_only_the_holder_their_employer_and_supervisors_download_the_pdf(
    client: Client, world: World
) -> None:
    cert, _ = await _certified(client, world)
    expected = {
        "learner": 200, "employer_admin": 200, "bureau": 200, "admin": 200,
        "staff": 404, "other_provider_admin": 404, "expert": 404, "reviewer": 404,
    }  # fmt: skip
    for who, status in expected.items():
        r = await client.get(cert["pdf_url"], headers=me(world, who))
        assert r.status == status, who
        if status == 404:
            assert (await r.json())["error"]["code"] == "not_found"
    r = await client.get(cert["pdf_url"])
    assert r.status == 401
    r = await client.get(f"/api/certificates/{rules.new_serial(YEAR)}.pdf", headers=me(world))
    assert r.status == 404


# -- bad input, missing font --------------------------------------------------------------------------------


BAD_ISSUES: list[tuple[dict[str, Any], int, str]] = [
    ({"year": YEAR}, 400, "scope"),
    ({"scope": "lifetime", "year": YEAR}, 400, "scope"),
    ({"scope": "annual", "year": "2026"}, 400, "year"),
    ({"scope": "annual", "year": 1999}, 400, "year"),
    ({"scope": "course", "year": YEAR}, 400, "course_id"),
    ({"scope": "annual", "year": YEAR, "course_id": 1}, 400, "course_id"),
    ({"scope": "annual", "year": YEAR, "name": "改名"}, 400, "name"),
    ({"scope": "course", "year": YEAR, "course_id": 999_999}, 404, "course_id"),
]


async def test_bad_issue_requests_are_4xx_naming_the_field(client: Client, world: World) -> None:
    for body, status, field in BAD_ISSUES:
        r = await client.post("/api/me/certificates", json=body, headers=me(world))
        assert r.status == status, body
        assert (await r.json())["error"]["field"] == field, body
    r = await client.post("/api/me/certificates", data="scope=annual", headers=me(world))
    assert r.status == 400
    r = await client.post("/api/me/certificates", json={"scope": "annual", "year": YEAR})
    assert r.status == 401


async def test_without_the_font_issue_and_download_answer_503_never_an_empty_pdf(
    client: Client, world: World, settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    cert, _ = await _certified(client, world)
    no_font = await aiohttp_client(
        make_app(replace_settings(settings, certificate_font=Path("/no/such/font.ttc")))
    )
    r = await no_font.get(cert["pdf_url"], headers=me(world))
    assert r.status == 503
    error = (await r.json())["error"]
    assert error["code"] == "unavailable"
    assert "LECTERN_CERTIFICATE_FONT" in error["message"]
    learner = world.actors["learner"].person_id
    await roomy(world)
    second = await earn(world, world.course_id, [learner], day=1)
    await decide(client, world, second[learner], "approve", "employer_admin")
    r = await no_font.post(
        "/api/me/certificates",
        json={"scope": "course", "year": YEAR, "course_id": world.course_id},
        headers=me(world),
    )
    assert r.status == 503
    async with world.db.sessions.begin() as s:
        assert len(list(await s.scalars(select(Certificate)))) == 1  # nothing half-issued
