"""Live attendance: viewer.joined / viewer.left published on a real bus (in-memory and Redis, through the
bus contract's fixture) reach the catalog's consumer, become intervals idempotently, and the console's API
counts each learner once, for the union of their connections; replay viewers are counted too."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from catalog.consumer import GROUP, EventConsumer
from catalog.models import LiveInterval, Session
from infra import events
from infra.bus import EventBus
from tests.integration.catalog.playback_support import watched_to
from tests.integration.test_event_bus_contract import MakeHarness, make_harness  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def consumer(make_harness: MakeHarness, world: World) -> EventConsumer:  # noqa: F811
    """The catalog's consumer on a bus of the implementation under test, driven by hand."""
    harness = await make_harness()
    return EventConsumer(harness.bus, world.db, "test-consumer", block_s=0)


async def drain(consumer: EventConsumer) -> None:
    """Hand every attendance event published so far to the consumer (which acknowledges them)."""
    while deliveries := await consumer.bus.consume(events.ATTENDANCE, GROUP, consumer.name, block_s=0):
        await consumer.handle(deliveries)


def joined(w: World, person: str, peer: str, at: datetime) -> events.ViewerJoined:
    return events.ViewerJoined(
        session_id=w.session_id, person_id=w.actors[person].person_id, peer_id=peer, at=at
    )


def left(w: World, person: str, peer: str, at: datetime) -> events.ViewerLeft:
    return events.ViewerLeft(
        session_id=w.session_id, person_id=w.actors[person].person_id, peer_id=peer, at=at
    )


async def publish_all(bus: EventBus, batch: list[events.Event]) -> None:
    for event in batch:
        await events.publish(bus, event)


async def session_attendance(client: Client, world: World) -> dict[str, Any]:
    resp = await client.get(
        f"/api/sessions/{world.session_id}/attendance", headers=world.actors["provider_admin"].headers
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def interval_rows(w: World) -> int:
    async with w.db.sessions.begin() as s:
        return int(await s.scalar(select(func.count()).select_from(LiveInterval)) or 0)


def by_name(people: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in people}


async def test_a_learner_with_two_connections_is_counted_once_for_the_union_of_their_time(
    client: Client, world: World, consumer: EventConsumer
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=2)
    minutes = [t0 + timedelta(minutes=m) for m in range(61)]
    batch: list[events.Event] = [
        # 测试learner: one connection, 10 minutes.
        joined(world, "learner", "whep-a", minutes[0]),
        left(world, "learner", "whep-a", minutes[10]),
        # 测试staff: a phone and a laptop overlapping (0–20 and 5–30), then back for 40–45: 35 minutes.
        joined(world, "staff", "whep-b1", minutes[0]),
        joined(world, "staff", "whep-b2", minutes[5]),
        left(world, "staff", "whep-b1", minutes[20]),
        left(world, "staff", "whep-b2", minutes[30]),
        joined(world, "staff", "whep-b3", minutes[40]),
        left(world, "staff", "whep-b3", minutes[45]),
    ]
    await publish_all(consumer.bus, batch)
    await drain(consumer)
    assert await interval_rows(world) == 4
    assert await consumer.bus.pending_count(events.ATTENDANCE, GROUP) == 0

    # Delivered again (a restarted producer, a claim after a crash): nothing changes.
    await publish_all(consumer.bus, batch)
    await drain(consumer)
    assert await interval_rows(world) == 4

    report = await session_attendance(client, world)
    assert report["live_learners"] == 2
    people = by_name(report["live"])
    assert people["测试staff"]["present_s"] == 35 * 60
    assert people["测试staff"]["connections"] == 3
    assert people["测试staff"]["first_joined_at"] == minutes[0].isoformat()
    assert people["测试staff"]["last_left_at"] == minutes[45].isoformat()
    assert people["测试learner"]["present_s"] == 10 * 60
    assert people["测试learner"]["watching_now"] is False
    assert people["测试learner"]["phone"].count("*") == 4  # masked, as in the enrollment list
    assert [p["name"] for p in report["live"]] == ["测试staff", "测试learner"]  # longest first


async def test_a_left_delivered_before_its_join_pairs_up_when_the_join_arrives(
    client: Client, world: World, consumer: EventConsumer
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await events.publish(consumer.bus, left(world, "learner", "whep-late", t0 + timedelta(minutes=25)))
    await drain(consumer)
    assert (await session_attendance(client, world))["live_learners"] == 0  # no start known yet
    await events.publish(consumer.bus, joined(world, "learner", "whep-late", t0 + timedelta(minutes=5)))
    await drain(consumer)
    assert await interval_rows(world) == 1
    (learner,) = (await session_attendance(client, world))["live"]
    assert learner["present_s"] == 20 * 60


async def test_a_viewer_still_connected_counts_until_now_and_until_the_end_once_the_session_ended(
    client: Client, world: World, consumer: EventConsumer
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    await events.publish(consumer.bus, joined(world, "learner", "whep-open", t0))
    await drain(consumer)
    (learner,) = (await session_attendance(client, world))["live"]
    assert learner["watching_now"] is True
    assert learner["last_left_at"] is None
    assert 30 * 60 <= learner["present_s"] < 31 * 60
    course = await (
        await client.get(f"/api/courses/{world.course_id}/attendance", headers=world.actors["admin"].headers)
    ).json()
    assert course["sessions"] == [
        {"session_id": world.session_id, "live_learners": 1, "watching_now": 1, "replay_learners": 0}
    ]

    # The session ended (session.ended sets its actual end) and the viewer.left never came.
    async with world.db.sessions.begin() as s:
        row = await s.get(Session, world.session_id)
        assert row is not None
        row.actual_start, row.actual_end = t0 - timedelta(minutes=1), t0 + timedelta(minutes=12)
    (learner,) = (await session_attendance(client, world))["live"]
    assert (learner["present_s"], learner["watching_now"]) == (12 * 60, False)


async def test_events_naming_an_unknown_session_or_person_are_acknowledged_and_logged(
    world: World, consumer: EventConsumer, caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime.now(UTC)
    await events.publish(
        consumer.bus, events.ViewerJoined(session_id=999_999, person_id=1, peer_id="p", at=at)
    )
    await events.publish(
        consumer.bus, events.ViewerLeft(session_id=world.session_id, person_id=999_999, peer_id="p", at=at)
    )
    await consumer.bus.publish(events.ATTENDANCE, "viewer.joined", {"session_id": world.session_id})
    with caplog.at_level(logging.ERROR, logger="catalog.consumer"):
        await drain(consumer)
    assert await consumer.bus.pending_count(events.ATTENDANCE, GROUP) == 0
    assert await interval_rows(world) == 0
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3


async def test_replay_viewers_are_the_course_learners_with_progress_on_the_sessions_replay(
    client: Client, world: World
) -> None:
    recording_id = await world.recording(world.session_id)
    for who in ("learner", "provider_admin"):  # the provider previewing its replay is not its audience
        await watched_to(client, world.actors[who].headers, recording_id, 42.0)
    report = await session_attendance(client, world)
    assert report["replay_learners"] == 1
    (viewer,) = report["replay"]
    assert (viewer["name"], viewer["position_s"]) == ("测试learner", 42.0)
    course = await (
        await client.get(
            f"/api/courses/{world.course_id}/attendance", headers=world.actors["provider_admin"].headers
        )
    ).json()
    assert course["sessions"][0]["replay_learners"] == 1
    assert course["sessions"][0]["live_learners"] == 0


async def test_another_providers_admin_and_the_bureau_see_no_attendance(client: Client, world: World) -> None:
    for who in ("other_provider_admin", "bureau", "expert", "learner"):
        resp = await client.get(
            f"/api/sessions/{world.session_id}/attendance", headers=world.actors[who].headers
        )
        assert resp.status == 403, who
        assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.get(
        f"/api/courses/{world.draft_course_id}/attendance",
        headers=world.actors["other_provider_admin"].headers,
    )
    assert resp.status == 404
    resp = await client.get("/api/sessions/999999/attendance", headers=world.actors["admin"].headers)
    assert (resp.status, (await resp.json())["error"]["field"]) == (404, "session_id")
