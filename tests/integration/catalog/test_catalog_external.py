"""External meetings through the API, against loopback fakes of Tencent Meeting and DingTalk: credentials
stored sealed and never shown or logged, linking, the idempotent pull, and Tencent webhooks (the
check_str verification, signatures, replays refused)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from catalog import puller
from catalog.keys import EXTERNAL
from catalog.models import CreditEntry, ExternalImportBatch, ExternalRecordRow, PlatformCredential, Session
from infra.settings import Settings
from integrations.tencent import phone_hash
from integrations.tencent_webhook import encrypt, webhook_signature
from tests.fakes.dingtalk_server import FakeDingTalk, FakeMember
from tests.fakes.tencent_server import FakeMeeting, FakeParticipant, FakeTencent
from tests.integration.catalog.conftest import CREDENTIALS_KEY, SECRET

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
AiohttpServer = Callable[..., Awaitable[TestServer]]

SECRET_KEY = "EXAMPLEsecretkey0000000000000000"
WEBHOOK_TOKEN = "ExampleToken0000000000000"
AES_KEY = "a" * 43
APP_SECRET = "EXAMPLEappsecret000"
TENCENT = {
    "app_id": "200000001",
    "secret_id": "AKIDEXAMPLEsecretid0000",
    "secret_key": SECRET_KEY,
    "userid": "host001",
    "webhook_token": WEBHOOK_TOKEN,
}
MEETING_ID = "13339451618278424869"
T0 = int(time.time()) - 3 * 3600


@dataclass
class Fakes:
    tencent: FakeTencent
    dingtalk: FakeDingTalk
    tencent_url: str
    dingtalk_url: str


@pytest.fixture
async def fakes(aiohttp_server: AiohttpServer) -> Fakes:
    tencent = FakeTencent(app_id=TENCENT["app_id"], secret_id=TENCENT["secret_id"], secret_key=SECRET_KEY)
    dingtalk = FakeDingTalk(app_key="dingexampleappkey", app_secret=APP_SECRET)
    t = await aiohttp_server(tencent.app())
    d = await aiohttp_server(dingtalk.app())
    return Fakes(tencent, dingtalk, str(t.make_url("")), str(d.make_url("")))


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fakes: Fakes) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        data_dir=tmp_path / "var",
        credentials_key=CREDENTIALS_KEY,
        tencent_api_url=fakes.tencent_url,
        dingtalk_api_url=fakes.dingtalk_url,
        credit_settle_every_s=0,  # these tests pull and settle by hand
        external_pull_every_s=0,
    )


async def _external_session(w: World, platform: str = "tencent", hours_ago: float = 3.0) -> int:
    start = datetime.fromtimestamp(T0, UTC)
    async with w.db.sessions.begin() as s:
        ss = Session(
            course_id=w.course_id,
            title="腾讯会议讲座",
            kind="external",
            scheduled_start=start,
            scheduled_end=start + timedelta(hours=2),
            external_platform=platform,
            external_ids={},
        )
        s.add(ss)
        await s.flush()
        return ss.id


def _h(w: World, role: str = "provider_admin") -> dict[str, str]:
    return w.actors[role].headers


async def _set_tencent(client: Client, w: World, **extra: str) -> dict[str, Any]:
    resp = await client.put(
        f"/api/organizations/{w.orgs['provider']}/integrations/tencent",
        json={**TENCENT, **extra},
        headers=_h(w),
    )
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def _meeting(fakes: Fakes, learner_phone: str) -> FakeMeeting:
    crowd = [
        FakeParticipant(f"u{i:04d}", f"学员{i}", T0 + i, T0 + 3600, ms_open_id=f"m{i}") for i in range(240)
    ]
    hashed = phone_hash(learner_phone, TENCENT["secret_id"])
    zhang = [
        FakeParticipant("u-zhang", "张三", T0 + 10, T0 + 1800, instanceid=1, ms_open_id="z1", phone=hashed),
        FakeParticipant("u-zhang", "张三", T0 + 1900, T0 + 3000, instanceid=3, ms_open_id="z2", phone=hashed),
        FakeParticipant("u-zhang", "张三", T0 + 3100, T0 + 7000, instanceid=1, ms_open_id="z3", phone=hashed),
    ]
    pstn = [FakeParticipant("", "138****8000", T0 + 60, T0 + 7200, instanceid=0, ms_open_id="p1")]
    return fakes.tencent.add(
        FakeMeeting(MEETING_ID, "445999969", "讲座", T0, T0 + 7200, "host001", crowd + zhang + pstn)
    )


async def test_credentials_are_sealed_shown_only_as_set_and_replaceable(client: Client, world: World) -> None:
    org = world.orgs["provider"]
    resp = await client.get(f"/api/organizations/{org}/integrations/tencent", headers=_h(world))
    assert await resp.json() == {"platform": "tencent", "set": False, "set_at": None, "hint": None}
    first = await _set_tencent(client, world)
    assert first["set"] is True
    assert first["hint"] == "…0000"
    assert first["replaced"] is False
    second = await _set_tencent(client, world, secret_key="ANOTHERsecretkey000000000000000")
    assert second["replaced"] is True
    shown = await (
        await client.get(f"/api/organizations/{org}/integrations/tencent", headers=_h(world))
    ).text()
    assert SECRET_KEY not in shown
    assert "ANOTHERsecretkey" not in shown
    async with world.db.sessions.begin() as s:
        rows = (await s.scalars(select(PlatformCredential).order_by(PlatformCredential.id))).all()
    assert [r.replaced_at is None for r in rows] == [False, True]
    assert all(SECRET_KEY not in r.ciphertext and WEBHOOK_TOKEN not in r.ciphertext for r in rows)
    other = await client.put(
        f"/api/organizations/{org}/integrations/tencent",
        json=TENCENT,
        headers=_h(world, "other_provider_admin"),
    )
    assert other.status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({k: v for k, v in TENCENT.items() if k != "secret_key"}, "secret_key", id="missing"),
        pytest.param({**TENCENT, "app_id": "not digits " + SECRET_KEY}, "app_id", id="bad-form"),
        pytest.param({**TENCENT, "password": "x"}, "password", id="unknown"),
    ],
)
async def test_bad_credentials_bodies_are_refused_without_echoing_values(
    client: Client, world: World, body: dict[str, str], field: str
) -> None:
    resp = await client.put(
        f"/api/organizations/{world.orgs['provider']}/integrations/tencent", json=body, headers=_h(world)
    )
    assert resp.status == 400
    text = await resp.text()
    assert json.loads(text)["error"]["field"] == field
    assert SECRET_KEY not in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"platform": "tencent", "meeting_code": "44599996"}, "meeting_code", id="8-digit-code"),
        pytest.param({"platform": "tencent"}, "meeting_code", id="no-meeting"),
        pytest.param({"platform": "dingtalk_conf"}, "conference_id", id="no-conference"),
        pytest.param({"platform": "dingtalk_live", "meeting_code": "445999969"}, "meeting_code", id="mixed"),
        pytest.param({"platform": "zoom", "meeting_id": "1"}, "platform", id="unknown-platform"),
    ],
)
async def test_links_are_validated(client: Client, world: World, body: dict[str, str], field: str) -> None:
    session = await _external_session(world)
    resp = await client.put(f"/api/sessions/{session}/external", json=body, headers=_h(world))
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == field


async def test_only_external_sessions_are_linked(client: Client, world: World) -> None:
    resp = await client.put(
        f"/api/sessions/{world.session_id}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    assert resp.status == 409


async def test_a_pull_stores_every_page_once_and_a_second_pull_adds_nothing(
    client: Client, world: World, fakes: Fakes
) -> None:
    _meeting(fakes, world.actors["learner"].phone)
    await _set_tencent(client, world)
    session = await _external_session(world)
    link = await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_code": "445999969"},
        headers=_h(world),
    )
    assert (await link.json())["meeting_code"] == "445999969"
    fakes.tencent.fail_next(status=502)  # retried
    first = await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))
    assert first.status == 201, await first.text()
    report = await first.json()
    assert report["counts"] == {"rows": 244, "matched": 3, "needs_review": 241, "skipped": 0}
    # 张三's first row is found by phone and links his account; his other two rows then by that link.
    assert report["reasons"] == {"phone": 1, "linked_account": 2, "account_not_linked": 240, "dial_in": 1}
    assert report["already_imported"] is False
    assert fakes.tencent.page_requests == 3
    again = await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).json()
    assert (again["already_imported"], again["batch_id"]) == (True, report["batch_id"])
    async with world.db.sessions.begin() as s:
        rows = (
            await s.scalars(select(ExternalRecordRow).where(ExternalRecordRow.session_id == session))
        ).all()
        linked = await s.get(Session, session)
    assert len(rows) == 244
    assert linked is not None
    assert linked.external_ids["meeting_id"] == MEETING_ID  # the code was resolved once
    zhang = [r for r in rows if r.external_user_id == "u-zhang"]
    assert {r.person_id for r in zhang} == {world.actors["learner"].person_id}
    assert sorted(r.instance or "" for r in zhang) == ["1", "1", "3"]
    (pstn,) = [r for r in rows if r.is_pstn]
    assert pstn.match == "pstn"
    assert pstn.person_id is None
    view = await (await client.get(f"/api/sessions/{session}/external", headers=_h(world))).json()
    assert [b["status"] for b in view["batches"]] == ["unchanged", "done"]  # the same payload: no rows


async def test_a_later_pull_closes_an_open_join_and_adds_only_new_rows(
    client: Client, world: World, fakes: Fakes
) -> None:
    meeting = _meeting(fakes, world.actors["learner"].phone)
    still_in = FakeParticipant("u-late", "李四", T0 + 300, None, ms_open_id="l1")
    meeting.participants.append(still_in)
    await _set_tencent(client, world)
    session = await _external_session(world)
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    first = await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).json()
    assert first["counts"]["rows"] == 245
    still_in.left_time = T0 + 5000
    meeting.participants.append(FakeParticipant("u-new", "王五", T0 + 400, T0 + 900, ms_open_id="w1"))
    second = await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).json()
    assert second["batch_id"] != first["batch_id"]
    assert second["reasons"] == {"duplicate": 244, "leave_time_added": 1, "account_not_linked": 1}
    async with world.db.sessions.begin() as s:
        rows = (
            await s.scalars(select(ExternalRecordRow).where(ExternalRecordRow.session_id == session))
        ).all()
    assert len(rows) == 246
    (late,) = [r for r in rows if r.external_user_id == "u-late"]
    assert late.leave_at == datetime.fromtimestamp(T0 + 5000, UTC)


async def test_wrong_credentials_answer_a_clear_error_and_leave_a_failed_batch(
    client: Client, world: World, fakes: Fakes
) -> None:
    _meeting(fakes, world.actors["learner"].phone)
    await _set_tencent(client, world, secret_key="WRONGsecretkey00000000000000000")
    session = await _external_session(world)
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    resp = await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "platform_credentials_rejected"
    assert body["error"]["details"]["platform_code"] == 200003
    unknown = await _external_session(world)
    await client.put(
        f"/api/sessions/{unknown}/external",
        json={"platform": "tencent", "meeting_id": "42"},
        headers=_h(world),
    )
    await _set_tencent(client, world)
    missing = await client.post(f"/api/sessions/{unknown}/external/pull", headers=_h(world))
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "platform_meeting_not_found"
    async with world.db.sessions.begin() as s:
        batches = (await s.scalars(select(ExternalImportBatch))).all()
    assert {b.status for b in batches} == {"failed"}


async def test_a_dingtalk_conference_pull_uses_one_token_and_millisecond_times(
    client: Client, world: World, fakes: Fakes
) -> None:
    ms0 = T0 * 1000
    fakes.dingtalk.conferences["conf-1"] = [
        FakeMember(f"union{i}", f"学员{i}", ms0 + i, ms0 + 3_600_000) for i in range(150)
    ]
    resp = await client.put(
        f"/api/organizations/{world.orgs['provider']}/integrations/dingtalk",
        json={"app_key": "dingexampleappkey", "app_secret": APP_SECRET},
        headers=_h(world),
    )
    assert resp.status == 200
    session = await _external_session(world, "dingtalk_conf")
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "dingtalk_conf", "conference_id": "conf-1"},
        headers=_h(world),
    )
    report = await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).json()
    assert report["counts"]["rows"] == 150
    assert fakes.dingtalk.token_requests == 1
    async with world.db.sessions.begin() as s:
        row = (
            await s.scalars(select(ExternalRecordRow).where(ExternalRecordRow.external_user_id == "union0"))
        ).one()
    assert row.join_at == datetime.fromtimestamp(T0, UTC)
    assert row.leave_at == datetime.fromtimestamp(T0 + 3600, UTC)


# --- webhooks ----------------------------------------------------------------------------------------------


def _event(kind: str, ms_open_id: str, at_ms: int) -> str:
    event = {
        "event": f"meeting.participant-{kind}",
        "trace_id": "trace-1",
        "payload": [
            {
                "operate_time": at_ms,
                "operator": {
                    "userid": "u-zhang",
                    "uuid": "WMzhang",
                    "ms_open_id": ms_open_id,
                    "user_name": "张三",
                    "instance_id": "1",
                },
                "meeting_info": {"meeting_id": MEETING_ID, "meeting_code": "445999969", "subject": "讲座"},
            }
        ],
    }
    return base64.b64encode(json.dumps(event, ensure_ascii=False).encode()).decode()


def _signed(data: str, nonce: str, ts_ms: int | None = None, token: str = WEBHOOK_TOKEN) -> dict[str, str]:
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    return {"timestamp": ts, "nonce": nonce, "signature": webhook_signature(token, ts, nonce, data)}


async def test_webhook_url_verification_answers_the_plaintext_only_when_signed(
    client: Client, world: World
) -> None:
    await _set_tencent(client, world, webhook_aes_key=AES_KEY)
    url = f"/api/integrations/tencent/webhook/{world.orgs['provider']}"
    check = encrypt("hello-lectern", AES_KEY)
    ok = await client.get(url, params={"check_str": check}, headers=_signed(check, "1"))
    assert ok.status == 200
    assert await ok.text() == "hello-lectern"
    forged = await client.get(url, params={"check_str": check}, headers=_signed(check, "2", token="x" * 25))
    assert forged.status == 400
    assert (await forged.json())["error"]["code"] == "webhook_signature_invalid"
    elsewhere = await client.get(
        f"/api/integrations/tencent/webhook/{world.orgs['other_provider']}",
        params={"check_str": check},
        headers=_signed(check, "3"),
    )
    assert elsewhere.status == 400  # an organization without a webhook token: the same refusal


async def test_webhook_joins_and_leaves_are_stored_and_replays_refused(client: Client, world: World) -> None:
    await _set_tencent(client, world)
    session = await _external_session(world)
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    url = f"/api/integrations/tencent/webhook/{world.orgs['provider']}"
    joined_at = (T0 + 100) * 1000
    joined = _event("joined", "ms-1", joined_at)
    headers = _signed(joined, "14964161")
    resp = await client.post(url, json={"data": joined}, headers=headers)
    assert resp.status == 200, await resp.text()
    replay = await client.post(url, json={"data": joined}, headers=headers)
    assert replay.status == 400
    assert (await replay.json())["error"]["code"] == "webhook_replayed"
    stale = await client.post(
        url, json={"data": joined}, headers=_signed(joined, "7", int(time.time() * 1000) - 301_000)
    )
    assert stale.status == 400
    tampered = _event("joined", "ms-evil", joined_at)
    bad = await client.post(url, json={"data": tampered}, headers={**_signed(joined, "8")})
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "webhook_signature_invalid"
    left = _event("left", "ms-1", (T0 + 2000) * 1000)
    assert (await client.post(url, json={"data": left}, headers=_signed(left, "9"))).status == 200
    async with world.db.sessions.begin() as s:
        rows = (
            await s.scalars(select(ExternalRecordRow).where(ExternalRecordRow.session_id == session))
        ).all()
    assert len(rows) == 1
    assert rows[0].join_at == datetime.fromtimestamp(T0 + 100, UTC)
    assert rows[0].leave_at == datetime.fromtimestamp(T0 + 2000, UTC)
    assert rows[0].connection_id == "ms-1"


async def test_no_credential_ever_reaches_a_log_line_or_an_answer(
    client: Client, world: World, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _meeting(fakes, world.actors["learner"].phone)
    answers = [json.dumps(await _set_tencent(client, world))]
    session = await _external_session(world)
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    fakes.tencent.fail_next(status=503)
    for _ in range(2):
        answers.append(
            await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).text()
        )
    await _set_tencent(client, world, secret_key="WRONGsecretkey00000000000000000")
    answers.append(
        await (await client.post(f"/api/sessions/{session}/external/pull", headers=_h(world))).text()
    )
    answers.append(await (await client.get(f"/api/sessions/{session}/external", headers=_h(world))).text())
    joined = _event("joined", "ms-2", (T0 + 5) * 1000)
    url = f"/api/integrations/tencent/webhook/{world.orgs['provider']}"
    answers.append(
        await (await client.post(url, json={"data": joined}, headers=_signed(joined, "77"))).text()
    )
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("external pull" in line for line in logged)  # the pull did log
    secrets = (SECRET_KEY, "WRONGsecretkey", WEBHOOK_TOKEN, CREDENTIALS_KEY)
    for secret in secrets:
        assert not [line for line in logged if secret in line], secret
        assert not [a for a in answers if secret in a], secret


# --- the automatic pull ------------------------------------------------------------------------------------


async def test_linked_sessions_are_pulled_after_their_end_retried_with_backoff_and_settled(
    client: Client, world: World, fakes: Fakes
) -> None:
    _meeting(fakes, world.actors["learner"].phone)
    await _set_tencent(client, world, secret_key="WRONGsecretkey00000000000000000")
    session = await _external_session(world)  # scheduled T0 .. T0 + 2 h, an hour ago
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    assert client.app is not None
    ctx = client.app[EXTERNAL]
    now = datetime.now(UTC)
    assert [d.session_id for d in await puller.due_pulls(world.db, now)] == [session]
    assert await puller.pull_due(world.db, ctx, now) == {"pulled": 0, "failed": 1, "entries": 0}
    assert await puller.due_pulls(world.db, now + timedelta(seconds=59)) == []  # backing off
    later = now + timedelta(seconds=61)
    assert [d.reason for d in await puller.due_pulls(world.db, later)] == ["retry"]
    assert (await puller.pull_due(world.db, ctx, later))["failed"] == 1
    assert await puller.due_pulls(world.db, later + timedelta(seconds=119)) == []  # twice as long
    await _set_tencent(client, world)  # the right credentials
    fixed = later + timedelta(seconds=121)
    counts = await puller.pull_due(world.db, ctx, fixed)
    assert (counts["pulled"], counts["failed"]) == (1, 0)
    assert counts["entries"] == 1  # the learner matched by phone, settled right after the pull
    assert await puller.due_pulls(world.db, fixed) == []  # pulled: nothing until the next round
    again = await puller.pull_due(world.db, ctx, fixed + timedelta(hours=3))  # the round for overruns
    assert again == {"pulled": 1, "failed": 0, "entries": 0}  # the same records: nothing changes
    async with world.db.sessions.begin() as s:
        statuses = [
            b.status
            for b in await s.scalars(
                select(ExternalImportBatch)
                .where(ExternalImportBatch.session_id == session)
                .order_by(ExternalImportBatch.id)
            )
        ]
        entry = (await s.scalars(select(CreditEntry).where(CreditEntry.session_id == session))).one()
    assert statuses == ["failed", "failed", "done", "unchanged"]  # the second round's payload was the same
    assert (entry.kind, entry.person_id) == ("external", world.actors["learner"].person_id)


async def test_sessions_without_credentials_or_link_are_not_pulled(client: Client, world: World) -> None:
    session = await _external_session(world)
    await client.put(
        f"/api/sessions/{session}/external",
        json={"platform": "tencent", "meeting_id": MEETING_ID},
        headers=_h(world),
    )
    assert await puller.due_pulls(world.db, datetime.now(UTC)) == []
