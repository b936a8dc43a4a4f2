"""Replay playback evidence over HTTP: opening a playback (a learning client, R18), heartbeats bound to its
signed token, presence checks answered with the server's nonce. Each refusal is a 4xx JSON error and
publishes nothing; scripted clients play the fraud scenarios (forged and replayed tokens, two tabs, two
devices, wrong nonce, late answer)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog import accounts
from catalog.models import AuthSession, ClientSession, CreditEntry
from catalog.playback import (
    HEARTBEATS_PER_PERIOD_MAX,
    Grant,
    check_id,
    check_nonce,
    check_positions,
    sign_grant,
    verify_grant,
)
from infra import events
from infra.appkeys import BUS, SETTINGS
from infra.bus import EventBus
from tests.helpers import wait_until

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
OBSERVER = "test-observer"


@pytest.fixture
async def observed(client: Client) -> EventBus:
    """The app's bus, with a group of our own on the evidence topic that sees every event from now on."""
    bus = client.app[BUS]
    await bus.ensure_group(events.EVIDENCE, OBSERVER)
    return bus


async def published(bus: EventBus) -> list[events.Event]:
    """Evidence events published since the last call."""
    deliveries = await bus.consume(events.EVIDENCE, OBSERVER, "t", count=1000)
    if deliveries:
        await bus.ack(events.EVIDENCE, OBSERVER, [d.id for d in deliveries])
    return [events.decode(d) for d in deliveries]


async def open_playback(
    client: Client, world: World, recording_id: str, who: str = "learner"
) -> dict[str, Any]:
    resp = await client.post(f"/api/replays/{recording_id}/playback", headers=world.actors[who].headers)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def beat(opened: dict[str, Any], seq: int, position_s: float, **changes: Any) -> dict[str, Any]:
    return {
        "token": opened["token"],
        "seq": seq,
        "position_s": position_s,
        "rate": 1.0,
        "visible": True,
        "angle": "camera",
        **changes,
    }


async def send(
    client: Client, world: World, opened: dict[str, Any], body: Any, who: str = "learner", client_id: str = ""
) -> Any:
    cid = client_id or opened["client_id"]
    return await client.post(f"/api/playback/{cid}/heartbeats", json=body, headers=world.actors[who].headers)


def grant_of(client: Client, opened: dict[str, Any]) -> Grant:
    return verify_grant(
        client.app[SETTINGS].secret_key, opened["token"], opened["client_id"], datetime.now(UTC)
    )


async def test_opening_a_playback_records_a_replay_client_and_signs_its_token(
    client: Client, world: World, observed: EventBus
) -> None:
    recording_id = await world.recording(world.session_id, duration_s=600.0)
    opened = await open_playback(client, world, recording_id)
    assert opened["heartbeat_period_s"] == 30
    assert opened["check_window_s"] == 60
    assert opened["max_playback_rate"] == 1.0
    assert opened["position_s"] == 0.0
    assert opened["first_viewing"] is True
    grant = grant_of(client, opened)
    assert (grant.person_id, grant.recording_id, grant.angles) == (
        world.actors["learner"].person_id,
        recording_id,
        ("camera", "screen"),
    )
    # Valid for the media's length and two hours more.
    assert 600 + 7000 < grant.expires_at - datetime.now(UTC).timestamp() <= 600 + 7200
    async with world.db.sessions.begin() as s:
        row = await s.get(ClientSession, opened["client_id"])
    assert row is not None
    assert (row.kind, row.person_id, row.session_id, row.recording_id) == (
        "replay",
        world.actors["learner"].person_id,
        world.session_id,
        recording_id,
    )
    assert row.superseded_at is None
    assert row.first_viewing is True
    assert await published(observed) == []  # opening is a row, not an event


async def test_opening_follows_the_replays_access_rules(client: Client, world: World) -> None:
    recording_id = await world.recording(world.session_id)
    for who, status in [("staff", 403), ("other_provider_admin", 403), ("expert", 201), ("bureau", 201)]:
        resp = await client.post(f"/api/replays/{recording_id}/playback", headers=world.actors[who].headers)
        assert resp.status == status, (who, await resp.text())
    assert (await client.post(f"/api/replays/{recording_id}/playback")).status == 401
    resp = await client.post("/api/replays/no-such/playback", headers=world.actors["learner"].headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["field"] == "recording_id"


async def test_a_person_who_completed_the_replay_is_not_on_first_viewing(
    client: Client, world: World
) -> None:
    recording_id = await world.recording(world.session_id)
    async with world.db.sessions.begin() as s:
        s.add(
            CreditEntry(
                person_id=world.actors["learner"].person_id,
                course_id=world.course_id,
                session_id=world.session_id,
                credit_year=2026,
                credit_day="2026-03-01",
                category="professional",
                kind="replay",
                minutes=2.0,
                xueshi=Decimal("0"),
                policy_version=0,
                computed_at=datetime.now(UTC),
                evidence={},
            )
        )
    opened = await open_playback(client, world, recording_id)
    assert opened["first_viewing"] is False
    assert (await open_playback(client, world, recording_id, "expert"))["first_viewing"] is True


async def test_a_heartbeat_is_published_with_the_servers_time_and_no_check_before_one_is_due(
    client: Client, world: World, observed: EventBus
) -> None:
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    before = datetime.now(UTC)
    resp = await send(client, world, opened, beat(opened, 0, 5.5, rate=1.25, visible=False, angle="screen"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": True, "check": None}
    [event] = await published(observed)
    assert isinstance(event, events.PlaybackHeartbeat)
    assert (event.client_id, event.person_id, event.recording_id, event.seq) == (
        opened["client_id"],
        world.actors["learner"].person_id,
        recording_id,
        0,
    )
    assert (event.position_s, event.rate, event.visible, event.angle) == (5.5, 1.25, False, "screen")
    assert before <= event.at <= datetime.now(UTC)


async def test_the_heartbeat_position_is_resumed_by_the_next_playback(client: Client, world: World) -> None:
    """The catalog keeps the last heartbeat's position (replay_progress) as the resume point."""
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    assert (await send(client, world, opened, beat(opened, 0, 42.5, angle="screen"))).status == 200

    async def resumed() -> dict[str, Any] | None:
        got = await open_playback(client, world, recording_id)
        return got if got["position_s"] == 42.5 else None

    await wait_until(resumed, timeout_s=10, message="the resume point kept from the heartbeat")
    replay = await (
        await client.get(f"/api/replays/{recording_id}", headers=world.actors["learner"].headers)
    ).json()
    assert replay["progress"]["position_s"] == 42.5
    assert replay["progress"]["angle"] == "screen"
    expert = await (
        await client.get(f"/api/replays/{recording_id}", headers=world.actors["expert"].headers)
    ).json()
    assert expert["progress"] is None  # the learner's progress is their own


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"seq": "1"}, "seq", id="seq-as-string"),
        pytest.param({"seq": 1.5}, "seq", id="seq-not-int"),
        pytest.param({"seq": -1}, "seq", id="negative-seq"),
        pytest.param({"seq": True}, "seq", id="seq-bool"),
        pytest.param({"position_s": -1}, "position_s", id="negative-position"),
        pytest.param({"position_s": 122.5}, "position_s", id="past-the-end"),
        pytest.param({"position_s": "10"}, "position_s", id="position-as-string"),
        pytest.param({"rate": 0.2}, "rate", id="rate-too-slow"),
        pytest.param({"rate": 4.5}, "rate", id="rate-too-fast"),
        pytest.param({"visible": "yes"}, "visible", id="visible-not-bool"),
        pytest.param({"angle": "balcony"}, "angle", id="unknown-angle"),
        pytest.param({"angle": ""}, "angle", id="empty-angle"),
        pytest.param({"extra": 1}, "extra", id="unknown-key"),
        pytest.param({"token": 5}, "token", id="token-not-string"),
    ],
)
async def test_a_malformed_heartbeat_is_400_naming_the_field_and_publishes_nothing(
    client: Client, world: World, observed: EventBus, change: dict[str, Any], field: str
) -> None:
    recording_id = await world.recording(world.session_id)  # 120 s
    opened = await open_playback(client, world, recording_id)
    resp = await send(client, world, opened, beat(opened, 1, 10.0) | change)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["field"] == field
    assert await published(observed) == []


@pytest.mark.parametrize("missing", ["token", "seq", "position_s", "rate", "visible", "angle"])
async def test_a_heartbeat_missing_a_field_is_400_naming_it(
    client: Client, world: World, observed: EventBus, missing: str
) -> None:
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    body = beat(opened, 1, 10.0)
    del body[missing]
    resp = await send(client, world, opened, body)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["field"] == missing
    assert await published(observed) == []


async def test_heartbeats_without_a_token_or_a_login_or_with_a_forged_or_expired_one_are_refused(
    client: Client, world: World, observed: EventBus
) -> None:
    """Fraud 4: heartbeats forged without a playback the server opened."""
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    cid = opened["client_id"]
    url = f"/api/playback/{cid}/heartbeats"
    learner = world.actors["learner"].headers
    payload, _, mac = opened["token"].partition(".")
    grant = grant_of(client, opened)
    secret = client.app[SETTINGS].secret_key
    cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
        ({**beat(opened, 1, 1.0), "token": "not-a-token"}, learner, 401, "unauthenticated"),
        ({**beat(opened, 1, 1.0), "token": f"{payload}.{mac[:-2]}AA"}, learner, 401, "unauthenticated"),
        (
            {**beat(opened, 1, 1.0), "token": sign_grant("another-key", grant)},
            learner,
            401,
            "unauthenticated",
        ),
        (
            {**beat(opened, 1, 1.0), "token": sign_grant(secret, replace(grant, expires_at=1.0))},
            learner,
            401,
            "unauthenticated",
        ),
        (beat(opened, 1, 1.0), {}, 401, "unauthenticated"),  # no login at all
        (beat(opened, 1, 1.0), {"Cookie": learner["Cookie"]}, 403, "forbidden"),  # no CSRF header
        (beat(opened, 1, 1.0), {**learner, "X-CSRF-Token": "wrong"}, 403, "forbidden"),
        (beat(opened, 1, 1.0), world.actors["expert"].headers, 403, "forbidden"),  # another person
    ]
    for body, headers, status, code in cases:
        client.session.cookie_jar.clear()
        resp = await client.post(url, json=body, headers=headers)
        assert resp.status == status, (body, headers, await resp.text())
        assert (await resp.json())["error"]["code"] == code
    assert (await client.post(url, data=b"{", headers=learner)).status == 400
    assert await published(observed) == []


async def test_a_token_replayed_on_another_client_is_refused(
    client: Client, world: World, observed: EventBus
) -> None:
    """Fraud 4: one playback's token sent as another's (e.g. to feed a second client's evidence)."""
    recording_id = await world.recording(world.session_id)
    mine = await open_playback(client, world, recording_id, "expert")
    theirs = await open_playback(client, world, recording_id, "learner")
    resp = await send(client, world, mine, beat(mine, 0, 1.0), who="expert", client_id=theirs["client_id"])
    assert resp.status == 403
    assert (await resp.json())["error"]["field"] == "token"
    # The learner's own token with the learner's client, sent by the expert's login: another login.
    resp = await send(client, world, theirs, beat(theirs, 0, 1.0), who="expert")
    assert resp.status == 403
    assert await published(observed) == []


async def test_a_second_tab_supersedes_the_first_which_is_told_so_and_records_nothing(
    client: Client, world: World, observed: EventBus
) -> None:
    """R18 / fraud 7: two tabs of one person; the newer one is the learning client."""
    recording_id = await world.recording(world.session_id)
    other = await world.recording(world.session_id)
    first = await open_playback(client, world, recording_id)
    assert (await send(client, world, first, beat(first, 0, 1.0))).status == 200
    second = await open_playback(client, world, other)  # any replay (or HLS, or live) client supersedes
    resp = await send(client, world, first, beat(first, 1, 2.0))
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "superseded"
    assert error["details"] == {"superseded_by": second["client_id"]}
    assert (await send(client, world, second, beat(second, 0, 1.0))).status == 200
    assert [(e.type, getattr(e, "client_id", None)) for e in await published(observed)] == [
        ("playback.heartbeat", first["client_id"]),
        ("playback.heartbeat", second["client_id"]),
    ]
    async with world.db.sessions.begin() as s:
        rows = {c.id: c for c in await s.scalars(select(ClientSession))}
    assert rows[first["client_id"]].superseded_by == second["client_id"]
    assert rows[first["client_id"]].superseded_at is not None
    assert rows[second["client_id"]].superseded_at is None


async def test_a_second_device_supersedes_the_first_and_an_hls_client_too(
    client: Client, world: World, observed: EventBus
) -> None:
    """Fraud 8: the same account on two devices (two logins); R18 across kinds of client."""
    recording_id = await world.recording(world.session_id)
    learner = world.actors["learner"]
    now = datetime.now(UTC)
    token, csrf = f"token-{uuid.uuid4().hex}", f"csrf-{uuid.uuid4().hex}"
    async with world.db.sessions.begin() as s:
        s.add(
            AuthSession(
                token_hash=accounts.token_hash(token),
                person_id=learner.person_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
        s.add(
            ClientSession(
                id="hls-" + uuid.uuid4().hex, person_id=learner.person_id, kind="hls", opened_at=now
            )
        )
    phone = await open_playback(client, world, recording_id)
    laptop_headers = {"Cookie": f"lectern_session={token}", "X-CSRF-Token": csrf}
    resp = await client.post(f"/api/replays/{recording_id}/playback", headers=laptop_headers)
    assert resp.status == 201
    laptop = await resp.json()
    assert (await send(client, world, phone, beat(phone, 0, 1.0))).status == 409
    # The phone's token does not work from the laptop's login either.
    resp = await client.post(
        f"/api/playback/{phone['client_id']}/heartbeats", json=beat(phone, 0, 1.0), headers=laptop_headers
    )
    assert resp.status in (403, 409)
    resp = await client.post(
        f"/api/playback/{laptop['client_id']}/heartbeats", json=beat(laptop, 0, 1.0), headers=laptop_headers
    )
    assert resp.status == 200
    assert [e.type for e in await published(observed)] == ["playback.heartbeat"]
    async with world.db.sessions.begin() as s:
        active = list(
            await s.scalars(
                select(ClientSession.id).where(
                    ClientSession.person_id == learner.person_id, ClientSession.superseded_at.is_(None)
                )
            )
        )
    assert active == [laptop["client_id"]]


async def test_too_many_heartbeats_in_one_period_are_429(
    client: Client, world: World, observed: EventBus
) -> None:
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    for seq in range(HEARTBEATS_PER_PERIOD_MAX):
        assert (await send(client, world, opened, beat(opened, seq, 1.0))).status == 200
    resp = await send(client, world, opened, beat(opened, HEARTBEATS_PER_PERIOD_MAX, 1.0))
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 30
    assert len(await published(observed)) == HEARTBEATS_PER_PERIOD_MAX


# -- presence checks ---------------------------------------------------------------------------------


def test_check_positions_are_spread_over_the_media_away_from_its_ends() -> None:
    cases = [(2700.0, 3, 3), (5400.0, 3, 6), (2701.0, 3, 4), (120.0, 3, 1), (600.0, 1, 1), (119.0, 3, 0)]
    for duration_s, per_45, n in cases:
        positions = check_positions("seed", duration_s, per_45)
        assert len(positions) == n
        assert all(30.0 <= p <= duration_s - 30.0 for p in positions)
        assert list(positions) == sorted(positions)
    assert check_positions("a", 2700.0, 3) != check_positions("b", 2700.0, 3)  # random per playback
    assert check_positions("a", 2700.0, 3) == check_positions("a", 2700.0, 3)  # the same in any process
    assert check_positions("a", 2700.0, 0) == ()


async def test_a_check_is_issued_once_when_playback_crosses_its_position_and_answered_with_its_nonce(
    client: Client, world: World, observed: EventBus
) -> None:
    recording_id = await world.recording(world.session_id)  # 120 s: one check, between 30 s and 90 s
    opened = await open_playback(client, world, recording_id)
    [at] = check_positions(grant_of(client, opened).seed, 120.0, 3)
    assert 30 <= at <= 90
    assert (await (await send(client, world, opened, beat(opened, 0, at - 20))).json())["check"] is None
    resp = await send(client, world, opened, beat(opened, 1, at + 1))
    check = (await resp.json())["check"]
    assert check is not None
    assert check["check_id"] == check_id(opened["client_id"], 0)
    assert check["window_s"] in (59, 60)
    # Shown again with the next heartbeat until answered, but issued (published) once.
    again = (await (await send(client, world, opened, beat(opened, 2, at + 2))).json())["check"]
    assert again["check_id"] == check["check_id"]
    assert again["nonce"] == check["nonce"]
    url = f"/api/playback/{opened['client_id']}/checks/{check['check_id']}"
    headers = world.actors["learner"].headers
    resp = await client.post(url, json={"token": opened["token"], "nonce": check["nonce"]}, headers=headers)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["answered"] is True
    assert answer["latency_ms"] >= 0
    # Answered once only; and after it, heartbeats carry no check.
    resp = await client.post(url, json={"token": opened["token"], "nonce": check["nonce"]}, headers=headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "check_answered"
    assert (await (await send(client, world, opened, beat(opened, 3, at + 3))).json())["check"] is None
    got = await published(observed)
    assert [e.type for e in got] == [
        "playback.heartbeat",
        "playback.heartbeat",
        "replay_check.issued",
        "playback.heartbeat",
        "replay_check.answered",
        "playback.heartbeat",
    ]
    issued, answered = got[2], got[4]
    assert isinstance(issued, events.ReplayCheckIssued)
    assert isinstance(answered, events.ReplayCheckAnswered)
    assert issued.check_id == answered.check_id == check["check_id"]
    assert issued.position_s == at
    assert issued.deadline_at - issued.issued_at == timedelta(seconds=60)
    assert answered.latency_ms == answer["latency_ms"]
    assert answered.answered_at >= issued.issued_at


async def test_a_check_crossed_while_the_page_is_hidden_is_shown_when_it_is_seen_again(
    client: Client, world: World
) -> None:
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    [at] = check_positions(grant_of(client, opened).seed, 120.0, 3)
    await send(client, world, opened, beat(opened, 0, at - 5))
    hidden = await send(client, world, opened, beat(opened, 1, at + 5, visible=False))
    assert (await hidden.json())["check"] is None
    seen = await send(client, world, opened, beat(opened, 2, at + 6))
    assert (await seen.json())["check"] is not None


async def test_answers_with_a_wrong_nonce_for_an_unissued_check_or_too_late_are_refused(
    client: Client, world: World, observed: EventBus
) -> None:
    """Fraud 3: a script confirming checks it never saw; and an answer after the window."""
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    secret = client.app[SETTINGS].secret_key
    # The same playback with a one-second window (the grant carries the policy's window).
    grant = replace(grant_of(client, opened), check_window_s=1)
    quick = {**opened, "token": sign_grant(secret, grant)}
    [at] = check_positions(grant.seed, 120.0, 3)
    await send(client, world, quick, beat(quick, 0, at - 5))
    check = (await (await send(client, world, quick, beat(quick, 1, at + 1))).json())["check"]
    assert check is not None
    await published(observed)
    headers = world.actors["learner"].headers
    url = f"/api/playback/{opened['client_id']}/checks/{check['check_id']}"

    resp = await client.post(url, json={"token": quick["token"], "nonce": "x" * 24}, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["field"] == "nonce"
    unissued = check_id(opened["client_id"], 7)
    nonce = check_nonce(secret, opened["client_id"], unissued)
    resp = await client.post(
        f"/api/playback/{opened['client_id']}/checks/{unissued}",
        json={"token": quick["token"], "nonce": nonce},
        headers=headers,
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "check_not_issued"
    for body in (
        {"token": quick["token"]},
        {"nonce": check["nonce"]},
        {**{"token": quick["token"]}, "nonce": 5},
    ):
        assert (await client.post(url, json=body, headers=headers)).status == 400
    assert await published(observed) == []

    deadline = datetime.now(UTC) + timedelta(seconds=1.05)
    await wait_until(lambda: datetime.now(UTC) > deadline, timeout_s=5, message="the check's window to pass")
    resp = await client.post(url, json={"token": quick["token"], "nonce": check["nonce"]}, headers=headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "check_expired"
    assert await published(observed) == []


async def test_a_superseded_client_cannot_answer_its_check(
    client: Client, world: World, observed: EventBus
) -> None:
    recording_id = await world.recording(world.session_id)
    opened = await open_playback(client, world, recording_id)
    [at] = check_positions(grant_of(client, opened).seed, 120.0, 3)
    await send(client, world, opened, beat(opened, 0, at - 5))
    check = (await (await send(client, world, opened, beat(opened, 1, at + 1))).json())["check"]
    await open_playback(client, world, recording_id)
    await published(observed)
    resp = await client.post(
        f"/api/playback/{opened['client_id']}/checks/{check['check_id']}",
        json={"token": opened["token"], "nonce": check["nonce"]},
        headers=world.actors["learner"].headers,
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "superseded"
    assert await published(observed) == []
