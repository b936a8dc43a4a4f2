"""Session state as data: every session the API returns says whether it is scheduled, live, ended or missed
(from the live server's events) and which replay it has; an ended session cannot go live again; the
expert's and the learner's homes list sessions by state; a page can ask who the caller is in a room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.domain import Role
from infra import events
from infra.appkeys import BUS
from tests.helpers import wait_until
from tests.integration.catalog.playback_support import watched_to

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def get(client: Client, path: str, world: World | None = None, actor: str = "") -> Any:
    headers = world.actors[actor].headers if world and actor else {}
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def whip(client: Client, world: World, actor: str, session_id: int) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        f"/api/sessions/{session_id}/media-token",
        headers=world.actors[actor].headers,
        json={"purpose": "whip"},
    )
    return resp.status, await resp.json()


def ids(sessions: list[dict[str, Any]]) -> list[int]:
    return [s["id"] for s in sessions]


async def status_of(client: Client, session_id: int) -> str:
    return str((await get(client, f"/api/sessions/{session_id}"))["status"])


async def reaches(client: Client, session_id: int, status: str) -> None:
    async def check() -> bool:
        return await status_of(client, session_id) == status

    await wait_until(check, timeout_s=10, message=f"session {session_id} {status}")


def recording_finalized(session_id: int, recording_id: str, duration_s: float) -> events.RecordingFinalized:
    prefix = f"hls/{session_id}/{recording_id}"
    return events.RecordingFinalized(
        session_id=session_id,
        recording_id=recording_id,
        segment_count=int(duration_s),
        duration_s=duration_s,
        playlist_key=f"{prefix}/camera/index.m3u8",
        mp4_key=f"{prefix}/camera.mp4",
        at=datetime.now(UTC),
        size_bytes=1000,
        master_key=f"{prefix}/master.m3u8",
    )


async def test_a_session_is_scheduled_then_live_then_ended_with_its_replay_wherever_it_is_listed(
    client: Client, world: World
) -> None:
    bus, sid, course = client.app[BUS], world.session_id, world.course_id
    session = await get(client, f"/api/sessions/{sid}")
    assert (session["status"], session["replay"]) == ("scheduled", None)

    await events.publish(bus, events.SessionStarted(session_id=sid, at=datetime.now(UTC)))
    await reaches(client, sid, "live")
    (listed,) = (await get(client, f"/api/courses/{course}"))["sessions"]
    assert (listed["status"], listed["replay"]) == ("live", None)
    learning = await get(client, "/api/me/learning", world, "learner")
    assert [(s["id"], s["status"]) for s in learning["upcoming"]] == [(sid, "live")]
    assert [s["status"] for s in learning["items"][0]["upcoming_sessions"]] == ["live"]
    assert learning["past"] == []
    teaching = await get(client, "/api/me/teaching", world, "expert")
    assert [(s["id"], s["status"], s["course_title"]) for s in teaching["upcoming"]] == [
        (sid, "live", "建筑工程新技术")
    ]

    await events.publish(
        bus, events.SessionEnded(session_id=sid, at=datetime.now(UTC), reason="ended_by_expert")
    )
    await events.publish(bus, recording_finalized(sid, "rec-lecture", 754.0))

    async def replay() -> Any:
        return (await get(client, f"/api/sessions/{sid}", world, "learner"))["replay"]

    assert await wait_until(replay, timeout_s=10, message="the replay") == {
        "id": "rec-lecture",
        "duration_s": 754.0,
    }
    assert await status_of(client, sid) == "ended"
    (listed,) = (await get(client, f"/api/courses/{course}", world, "learner"))["sessions"]
    assert (listed["status"], listed["replay"]) == ("ended", {"id": "rec-lecture", "duration_s": 754.0})
    (anonymous,) = (await get(client, f"/api/courses/{course}"))["sessions"]
    assert anonymous["replay"] == {"id": None, "duration_s": 754.0}
    # Ended a day before its scheduled start: no longer "to come" for the learner, but past, with the replay.
    learning = await get(client, "/api/me/learning", world, "learner")
    assert learning["upcoming"] == []
    assert learning["items"][0]["upcoming_sessions"] == []
    assert [(s["id"], s["status"], s["replay"]["id"]) for s in learning["past"]] == [
        (sid, "ended", "rec-lecture")
    ]
    teaching = await get(client, "/api/me/teaching", world, "expert")
    assert (teaching["upcoming"], ids(teaching["past"])) == ([], [sid])


async def test_a_lecture_never_started_is_missed_after_its_scheduled_end_and_live_once_started_late(
    client: Client, world: World
) -> None:
    expert = world.actors["expert"].person_id
    late = await world.session(
        world.course_id, start=datetime.now(UTC) - timedelta(hours=3), experts=(expert,)
    )
    assert await status_of(client, late) == "missed"
    learning = await get(client, "/api/me/learning", world, "learner")
    assert ids(learning["upcoming"]) == [world.session_id]
    assert [(s["id"], s["status"]) for s in learning["past"]] == [(late, "missed")]
    # The expert may still go live after the scheduled end: the session is live then, and to come again.
    assert (await whip(client, world, "expert", late))[0] == 201
    await events.publish(client.app[BUS], events.SessionStarted(session_id=late, at=datetime.now(UTC)))
    await reaches(client, late, "live")
    learning = await get(client, "/api/me/learning", world, "learner")
    assert ids(learning["upcoming"]) == [late, world.session_id]
    assert learning["past"] == []


async def test_the_expert_cannot_go_live_again_once_the_session_has_ended(
    client: Client, world: World
) -> None:
    expert = world.actors["expert"].person_id
    sid = await world.session(
        world.course_id, start=datetime.now(UTC) + timedelta(minutes=10), experts=(expert,)
    )
    assert (await whip(client, world, "expert", sid))[0] == 201
    at = datetime.now(UTC)
    await events.publish(
        client.app[BUS], events.SessionStarted(session_id=sid, at=at - timedelta(minutes=30))
    )
    await events.publish(
        client.app[BUS], events.SessionEnded(session_id=sid, at=at, reason="ended_by_expert")
    )
    await reaches(client, sid, "ended")
    status, body = await whip(client, world, "expert", sid)
    assert status == 409
    assert body["error"]["code"] == "session_ended"
    assert body["error"]["field"] == "session_id"
    # Others are still refused for who they are, not told about the session's state.
    assert (await whip(client, world, "learner", sid))[0] == 403
    # Its live room is closed too: no watching or room tokens (the replay is what there is to watch).
    for purpose in ("whep", "room"):
        resp = await client.post(
            f"/api/sessions/{sid}/media-token",
            headers=world.actors["learner"].headers,
            json={"purpose": purpose},
        )
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "session_ended"


async def test_a_page_learns_who_the_caller_is_in_the_room_before_it_turns_on_a_camera(
    client: Client, world: World
) -> None:
    url = f"/api/sessions/{world.session_id}/access"
    expected = {
        "expert": ("expert", False, "too_early", True),  # tomorrow's: publishing opens 30 min before
        "learner": ("learner", False, "not_expert", True),
        "provider_admin": ("staff", False, "not_expert", True),
        "staff": (None, False, "not_expert", False),  # an employee of the employer, not enrolled
        "admin": (None, False, "not_expert", False),
    }
    for actor, (role, publish, refused, watch) in expected.items():
        body = await get(client, url, world, actor)
        assert (body["role"], body["publish"], body["publish_refused"], body["watch"]) == (
            role,
            publish,
            refused,
            watch,
        ), actor
        assert (body["session_id"], body["status"]) == (world.session_id, "scheduled")
    assert (await client.get(url)).status == 401
    assert (
        await client.get("/api/sessions/999999/access", headers=world.actors["expert"].headers)
    ).status == 404

    now = datetime.now(UTC)
    await events.publish(client.app[BUS], events.SessionStarted(session_id=world.session_id, at=now))
    await events.publish(
        client.app[BUS],
        events.SessionEnded(session_id=world.session_id, at=now + timedelta(seconds=1), reason="x"),
    )
    await reaches(client, world.session_id, "ended")
    body = await get(client, url, world, "expert")
    assert (body["status"], body["publish"], body["publish_refused"]) == ("ended", False, "session_ended")


async def test_my_teaching_lists_only_the_callers_sessions_of_published_courses(
    client: Client, world: World
) -> None:
    other = await world.person("expert2", [(Role.EXPERT, None)])
    theirs = await world.session(world.course_id, experts=(other.person_id,))
    draft = await world.session(world.draft_course_id, experts=(world.actors["expert"].person_id,))
    mine = await get(client, "/api/me/teaching", world, "expert")
    assert (ids(mine["upcoming"]), mine["past"]) == ([world.session_id], [])
    assert draft not in ids(mine["upcoming"])
    assert ids((await get(client, "/api/me/teaching", world, "expert2"))["upcoming"]) == [theirs]
    for nobody in ("learner", "provider_admin", "admin"):
        assert await get(client, "/api/me/teaching", world, nobody) == {"upcoming": [], "past": []}
    resp = await client.get("/api/me/teaching")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_a_session_restarted_before_restarts_were_refused_offers_its_longest_recording(
    client: Client, world: World
) -> None:
    await world.recording(world.session_id, duration_s=0.4, screen=False)
    lecture = await world.recording(world.session_id, duration_s=3605.0)
    await world.recording(world.session_id, duration_s=12.0)
    session = await get(client, f"/api/sessions/{world.session_id}", world, "learner")
    assert session["replay"] == {"id": lecture, "duration_s": 3605.0}


async def test_my_learning_lists_replays_with_the_learners_progress_last_watched_first(
    client: Client, world: World
) -> None:
    first = await world.recording(world.session_id, duration_s=725.0)
    second_session = await world.session(world.course_id, start=datetime.now(UTC) - timedelta(days=2))
    second = await world.recording(second_session, duration_s=90.0)
    other_course = await world.course(world.orgs["provider"], title="未报名的课程")
    await world.recording(await world.session(other_course), duration_s=60.0)  # not enrolled: not listed
    learner = world.actors["learner"].headers
    await watched_to(client, learner, first, 300.5)
    replays = (await get(client, "/api/me/learning", world, "learner"))["replays"]
    assert [(r["id"], r["duration_s"]) for r in replays] == [(first, 725.0), (second, 90.0)]
    assert replays[0]["progress"]["position_s"] == 300.5
    assert (replays[0]["course_title"], replays[0]["session_title"]) == ("建筑工程新技术", "第一讲")
    assert replays[1]["progress"] is None
    assert (await get(client, "/api/me/learning", world, "staff"))["replays"] == []
