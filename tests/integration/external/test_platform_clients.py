"""The Tencent Meeting and DingTalk clients against local fakes that check signatures and tokens as the
real services do: paging, Base64 names, recurring meetings, rejoins on several devices, dial-in rows,
retries on 5xx and timeouts, and clear errors for wrong credentials and unknown meetings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from integrations.dingtalk import DingTalkClient, DingTalkCredentials
from integrations.errors import PlatformUnavailable, UnknownMeeting, WrongCredentials
from integrations.records import Platform, Trust
from integrations.retry import Backoff
from integrations.tencent import TencentClient, TencentCredentials, phone_hash, signed_headers
from tests.fakes.dingtalk_server import FakeDingTalk, FakeMember, FakeWatcher
from tests.fakes.tencent_server import FakeMeeting, FakeParticipant, FakeTencent

AiohttpServer = Callable[..., Awaitable[TestServer]]
FAST = Backoff(attempts=3, first_delay_s=0.01)
T0 = 1_735_005_600  # 2024-12-24 02:00 UTC, the meeting's scheduled start
CREDS = TencentCredentials(
    app_id="200000001",
    secret_id="AKIDEXAMPLEsecretid0000",
    secret_key="EXAMPLEsecretkey0000000000000000",
    userid="host001",
    sdk_id="28370276340",
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def tencent() -> FakeTencent:
    return FakeTencent(
        app_id=CREDS.app_id, secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, sdk_id=CREDS.sdk_id
    )


async def _tencent_client(
    aiohttp_server: AiohttpServer,
    fake: FakeTencent,
    http: aiohttp.ClientSession,
    creds: TencentCredentials = CREDS,
    timeout_s: float = 5.0,
) -> TencentClient:
    server = await aiohttp_server(fake.app())
    return TencentClient(http, creds, base_url=str(server.make_url("")), backoff=FAST, timeout_s=timeout_s)


def _meeting(participants: list[FakeParticipant] | None = None, **kw: object) -> FakeMeeting:
    return FakeMeeting(
        meeting_id=str(kw.get("meeting_id", "13339451618278424869")),
        meeting_code=str(kw.get("meeting_code", "445999969")),
        subject="2025年度公需科目直播讲座",
        start_time=T0,
        end_time=T0 + 7200,
        creator="host001",
        participants=participants or [],
    )


def _crowd(n: int) -> list[FakeParticipant]:
    return [
        FakeParticipant(f"u{i:04d}", f"学员{i}", T0 + i, T0 + 3600 + i, ms_open_id=f"ms{i}") for i in range(n)
    ]


async def test_participants_are_read_page_by_page_until_nothing_remains(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    tencent.add(_meeting(_crowd(250)))
    client = await _tencent_client(aiohttp_server, tencent, http)
    records = await client.participants("13339451618278424869")
    assert tencent.page_requests == 3
    assert [r.external_user_id for r in records] == [f"u{i:04d}" for i in range(250)]
    assert records[0].display_name == "学员0"
    assert records[0].join_at == datetime.fromtimestamp(T0, UTC)
    assert records[249].leave_at == datetime.fromtimestamp(T0 + 3600 + 249, UTC)
    assert len({r.row_key for r in records}) == 250
    positions = [q for q in tencent.requests if "/participants" in q]
    assert [p.split("pos=")[1].split("&")[0] for p in positions] == ["0", "100", "200"]


async def test_base64_names_rejoins_on_two_devices_and_dial_in_rows_are_kept_apart(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    hashed = phone_hash("13800138000", CREDS.secret_id)
    tencent.add(
        _meeting(
            [
                FakeParticipant(
                    "u1001", "张三", T0 + 2, T0 + 3300, instanceid=1, ms_open_id="a", phone=hashed
                ),
                FakeParticipant("u1001", "张三", T0 + 3420, T0 + 5000, instanceid=3, ms_open_id="b"),
                FakeParticipant("u1001", "张三", T0 + 5100, T0 + 7150, instanceid=1, ms_open_id="c"),
                FakeParticipant("", "138****8000", T0 + 400, T0 + 7200, instanceid=0, ms_open_id="WMpstn01"),
            ]
        )
    )
    client = await _tencent_client(aiohttp_server, tencent, http)
    records = await client.participants("13339451618278424869")
    zhang = [r for r in records if r.external_user_id == "u1001"]
    assert len(zhang) == 3  # three joins kept: the union is the credit engine's job
    assert {r.instance for r in zhang} == {"1", "3"}
    assert {r.display_name for r in zhang} == {"张三"}
    assert len({r.row_key for r in zhang}) == 3
    assert zhang[0].phone == hashed
    assert zhang[0].phone_hashed
    assert not any(r.is_pstn for r in zhang)
    (dial_in,) = [r for r in records if r.external_user_id is None]
    assert dial_in.is_pstn
    assert dial_in.instance == "0"
    assert dial_in.display_name == "138****8000"


async def test_a_recurring_meeting_is_read_by_sub_meeting_id(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    meeting = tencent.add(_meeting())
    meeting.subs = {"1735005600": _crowd(2), "1735610400": _crowd(5)}
    client = await _tencent_client(aiohttp_server, tencent, http)
    info = await client.meeting_by_code("445999969")
    assert info.recurring
    assert info.sub_meeting_ids == ("1735005600", "1735610400")
    records = await client.participants(info.meeting_id, "1735610400")
    assert len(records) == 5
    assert {r.external_meeting_ref for r in records} == {"13339451618278424869:1735610400"}
    assert all("sub_meeting_id=1735610400" in q for q in tencent.requests if "/participants" in q)


async def test_a_meeting_code_resolves_to_its_meeting_id_and_an_unknown_one_is_not_found(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    tencent.add(_meeting())
    client = await _tencent_client(aiohttp_server, tencent, http)
    info = await client.meeting_by_code("445999969")
    assert (info.meeting_id, info.subject) == ("13339451618278424869", "2025年度公需科目直播讲座")
    assert info.start_at == datetime.fromtimestamp(T0, UTC)
    assert not info.recurring
    with pytest.raises(UnknownMeeting) as caught:
        await client.meeting_by_code("111222333")
    assert caught.value.details == {"platform_code": 9003, "platform_message": "MEETING NOT EXIST"}
    with pytest.raises(UnknownMeeting):
        await client.participants("999")


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"secret_key": "WRONGsecretkey00000000000000000"}, id="secret-key"),
        pytest.param({"secret_id": "AKIDwrong"}, id="secret-id"),
        pytest.param({"app_id": "999"}, id="app-id"),
    ],
)
async def test_wrong_credentials_are_a_clear_error_naming_no_secret(
    aiohttp_server: AiohttpServer,
    tencent: FakeTencent,
    http: aiohttp.ClientSession,
    wrong: dict[str, str],
) -> None:
    tencent.add(_meeting())
    creds = TencentCredentials(**{**CREDS.__dict__, **wrong})
    client = await _tencent_client(aiohttp_server, tencent, http, creds)
    with pytest.raises(WrongCredentials) as caught:
        await client.participants("13339451618278424869")
    assert "credentials" in caught.value.message
    assert creds.secret_key not in repr(caught.value.__dict__)
    assert creds.secret_key not in repr(creds)


async def test_server_errors_and_timeouts_are_retried_with_fresh_signatures(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    tencent.add(_meeting(_crowd(3)))
    client = await _tencent_client(aiohttp_server, tencent, http, timeout_s=0.3)
    tencent.fail_next(status=502)
    tencent.fail_next(delay_s=1.0)
    records = await client.participants("13339451618278424869")
    assert len(records) == 3
    assert tencent.failures == []
    tencent.fail_next(3, status=503)
    with pytest.raises(PlatformUnavailable) as caught:
        await client.participants("13339451618278424869")
    assert caught.value.details == {"platform": "Tencent Meeting", "attempts": 3}


async def test_the_fake_refuses_a_replayed_nonce_a_stale_timestamp_and_a_bad_signature(
    aiohttp_server: AiohttpServer, tencent: FakeTencent, http: aiohttp.ClientSession
) -> None:
    tencent.add(_meeting())
    server = await aiohttp_server(tencent.app())
    uri = "/v1/meetings/13339451618278424869?userid=host001&instanceid=1"
    now = str(int(time.time()))

    async def send(headers: dict[str, str]) -> tuple[int, int | None]:
        async with http.get(server.make_url(uri), headers=headers) as resp:
            body = await resp.json()
            return resp.status, (body.get("error_info") or {}).get("error_code")

    fresh = signed_headers(CREDS, "GET", uri, "", "483920117", now)
    assert await send(fresh) == (200, None)
    assert await send(fresh) == (400, 190301)
    stale = signed_headers(CREDS, "GET", uri, "", "5", str(int(time.time()) - 301))
    assert await send(stale) == (400, 200002)
    forged = {**signed_headers(CREDS, "GET", uri, "", "6", now), "X-TC-Signature": "Zm9v"}
    assert await send(forged) == (400, 200003)


# --- DingTalk ----------------------------------------------------------------------------------------------

DT = DingTalkCredentials(
    app_key="dingexampleappkey", app_secret="EXAMPLEappsecret000", operator_union_id="op1"
)
MS0 = 1_663_290_000_000


@pytest.fixture
def dingtalk() -> FakeDingTalk:
    return FakeDingTalk(app_key=DT.app_key, app_secret=DT.app_secret)


async def _dingtalk_client(
    aiohttp_server: AiohttpServer,
    fake: FakeDingTalk,
    http: aiohttp.ClientSession,
    creds: DingTalkCredentials = DT,
) -> DingTalkClient:
    server = await aiohttp_server(fake.app())
    return DingTalkClient(http, creds, base_url=str(server.make_url("")), backoff=FAST, timeout_s=5.0)


async def test_conference_members_page_by_next_token_with_millisecond_times_and_one_token(
    aiohttp_server: AiohttpServer, dingtalk: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    members = [FakeMember(f"union{i}", f"学员{i}", MS0 + i * 1000, MS0 + 3_280_000) for i in range(230)]
    members.append(FakeMember("", "电话用户", MS0, MS0 + 60_000, pstn=True))
    members.append(FakeMember("union-open", "李四", MS0 + 120_000, None))
    dingtalk.conferences["6323cd3a7b8000142ab9d10"] = members
    client = await _dingtalk_client(aiohttp_server, dingtalk, http)
    records = await client.conference_members("6323cd3a7b8000142ab9d10")
    assert len(records) == 232
    assert dingtalk.token_requests == 1
    first = records[0]
    assert first.platform is Platform.DINGTALK_CONF
    assert first.external_user_id == "union0"
    assert first.join_at == datetime(2022, 9, 16, 1, 0, tzinfo=UTC)
    assert (first.leave_at - first.join_at).total_seconds() == 3280  # type: ignore[operator]
    assert records[230].is_pstn
    assert records[230].external_user_id is None
    assert records[231].leave_at is None  # attendStatus 3: still in, closes at the session's end


async def test_an_expired_access_token_is_replaced_and_a_cached_one_reused(
    aiohttp_server: AiohttpServer, dingtalk: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    dingtalk.conferences["c1"] = [FakeMember("u", "张三", MS0, MS0 + 1000)]
    client = await _dingtalk_client(aiohttp_server, dingtalk, http)
    await client.conference_members("c1")
    await client.conference_members("c1")
    assert dingtalk.token_requests == 1
    dingtalk.expire_tokens()
    assert len(await client.conference_members("c1")) == 1
    assert dingtalk.token_requests == 2


async def test_dingtalk_wrong_secret_unknown_conference_and_retries(
    aiohttp_server: AiohttpServer, dingtalk: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    dingtalk.conferences["c1"] = [FakeMember("u", "张三", MS0, MS0 + 1000)]
    wrong = await _dingtalk_client(
        aiohttp_server, dingtalk, http, DingTalkCredentials(app_key=DT.app_key, app_secret="nope")
    )
    with pytest.raises(WrongCredentials) as caught:
        await wrong.conference_members("c1")
    assert caught.value.details == {"status": 400, "platform_code": "invalidClientIdOrSecret"}
    client = await _dingtalk_client(aiohttp_server, dingtalk, http)
    with pytest.raises(UnknownMeeting):
        await client.conference_members("missing")
    dingtalk.fail_next(2, status=500)
    assert len(await client.conference_members("c1")) == 1


async def test_live_watch_totals_are_low_trust_seconds_and_outsiders_have_no_identity(
    aiohttp_server: AiohttpServer, dingtalk: FakeDingTalk, http: aiohttp.ClientSession
) -> None:
    watchers = [FakeWatcher(f"学员{i}", 60_000 * i, union_id=f"union{i}") for i in range(1, 251)]
    watchers.append(FakeWatcher("王五", 3_605_000))
    dingtalk.lives["live-1"] = watchers
    client = await _dingtalk_client(aiohttp_server, dingtalk, http)
    records = await client.live_watchers("live-1")
    assert len(records) == 251
    by_user = {r.external_user_id: r for r in records}
    assert by_user["union2"].watched_s == 120.0  # watchLiveTime is milliseconds
    assert by_user["union2"].join_at is None
    assert by_user["union2"].trust is Trust.LOW
    outsider = by_user[None]
    assert outsider.display_name == "王五"
    assert outsider.watched_s == 3605.0
