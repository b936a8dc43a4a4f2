"""Nothing the live path tells the catalog is lost: a bus outage across a lecture's start and end, SIGTERM
mid-lecture (embedded, and on PostgreSQL + Redis), kill -9 (the session ends with its last stored media),
kill -9 while the bus is down (the outbox delivers after the restart), and a catalog that lost a replay
(reconciliation announces it again). A robot lecturer publishes over WHIP; the catalog's record is read
back from its database and through the API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from catalog import DATABASE
from catalog.models import Recording as CatalogRecording
from infra.appkeys import OUTBOX
from streaming.forwarding import H264
from streaming.reconcile import ReconcileConfig, Reconciler
from tests.helpers import wait_until
from tests.integration.live.peers import Robot
from tests.integration.recording.catalog_support import (
    DEMO_EXPERT,
    DEMO_SESSION,
    RedisDatabase,
    SessionRecord,
    embedded_database_url,
    listed_replays,
    seed_demo,
    session_record,
)
from tests.integration.recording.conftest import RecordingAppFactory
from tests.integration.recording.support import CuttableProxy, bearer, publish_http
from tests.server import TEST_SECRET_KEY, ServerFailed, running_server

SERVER_ENV = {"LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "2"}
SEGMENT_S = 2.0


def now() -> datetime:
    return datetime.now(UTC)


def stored_segments(objects: Path, session_id: int = DEMO_SESSION) -> int:
    return len(list(objects.glob(f"hls/{session_id}/*/camera/seg_*.m4s")))


def recording_ids(objects: Path, session_id: int = DEMO_SESSION) -> list[str]:
    return sorted(p.parent.name for p in objects.glob(f"hls/{session_id}/*/manifest.json"))


async def whole_record(database_url: str) -> SessionRecord | None:
    record = await session_record(database_url)
    complete = record.actual_start and record.actual_end and record.recordings
    return record if complete else None


async def readiness(client: Any) -> tuple[int, dict[str, str]]:
    resp = await client.get("/readyz")
    body = await resp.json()
    checks = body.get("checks") or body["error"]["details"]["checks"]
    return resp.status, checks


@pytest.mark.timeout(180)
async def test_a_bus_outage_across_a_lectures_start_and_end_delays_its_record_and_loses_nothing(
    recording_app: RecordingAppFactory,
    robots: list[Robot],
    tmp_path: Path,
    postgres_url: str,
    redis_database: RedisDatabase,
) -> None:
    data_dir = tmp_path / "var"
    seed_demo(data_dir, {"DATABASE_URL": postgres_url})
    proxy = CuttableProxy(redis_database.host, redis_database.port)
    await proxy.start()
    try:
        world = await recording_app(
            data_dir=data_dir, database_url=postgres_url, redis_url=redis_database.url(proxy.endpoint)
        )
        await proxy.cut()
        robot = Robot(video_codec=H264)
        robots.append(robot)
        published_at = now()
        token = await world.publish(robot, DEMO_SESSION, person_id=DEMO_EXPERT)
        await wait_until(lambda: stored_segments(world.settings.objects_dir) >= 3, timeout_s=20)

        # While the bus is down the event waits in the outbox, and the operator sees it.
        async def outbox_degraded() -> str | None:
            _status, checks = await readiness(world.client)
            return checks["outbox"] if checks["outbox"].startswith("degraded: ") else None

        message = await wait_until(outbox_degraded, timeout_s=15, interval_s=0.5, message="outbox degraded")
        assert "1 events wait for the bus" in message, message
        metrics = await (await world.client.get("/metrics")).text()
        assert "lectern_outbox_events 1.0" in metrics, metrics

        ending_at = now()
        await world.end(robot, token)
        ended_at = now()
        outbox = world.app[OUTBOX]
        # session.started, session.ended, recording.finalized: all kept, none delivered.
        await wait_until(lambda: outbox.depth == 3, timeout_s=30, message=lambda: f"depth {outbox.depth}")
        nothing = await session_record(postgres_url)
        assert nothing == SessionRecord(None, None, ()), nothing
        await wait_until(lambda: now() - ended_at > timedelta(seconds=3), timeout_s=5)

        restored_at = now()
        await proxy.restore()
        record = await wait_until(
            lambda: whole_record(postgres_url), timeout_s=60, interval_s=0.5, message="the whole record"
        )
        assert record is not None
        # The times are those of the lecture, not of the bus's return.
        assert record.actual_start is not None
        assert record.actual_end is not None
        assert published_at <= record.actual_start <= published_at + timedelta(seconds=5), record
        assert ending_at <= record.actual_end <= ended_at, record
        assert record.actual_end < restored_at
        assert list(record.recordings) == recording_ids(world.settings.objects_dir)
        replays = await listed_replays(str(world.client.make_url("")).rstrip("/"))
        assert [r["id"] for r in replays] == list(record.recordings)
        assert outbox.depth == 0
        assert (await readiness(world.client))[1]["outbox"] == "ok"
    finally:
        await proxy.close()


async def _lecture_then_sigterm(data_dir: Path, env: dict[str, str], robot: Robot) -> tuple[str, datetime]:
    """A lecture of a few segments on a server subprocess, stopped with SIGTERM while it is live;
    returns the server's log and when the stop was asked for."""
    with running_server(data_dir, env, stop_timeout_s=60) as server:
        await publish_http(
            robot,
            server.url,
            DEMO_SESSION,
            bearer(TEST_SECRET_KEY, "whip", DEMO_SESSION, person_id=DEMO_EXPERT),
        )
        await wait_until(lambda: stored_segments(data_dir / "objects") >= 3, timeout_s=20, interval_s=0.1)
        stopping_at = now()
    return server.log_text(), stopping_at


@pytest.fixture(params=["embedded", "postgres+redis"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Where the server keeps its data: embedded (SQLite, in-process bus) or PostgreSQL + Redis; the
    server's settings, with the demo world seeded."""
    env = dict(SERVER_ENV)
    if request.param != "embedded":
        redis_database: RedisDatabase = request.getfixturevalue("redis_database")
        env["REDIS_URL"] = redis_database.url()
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    seed_demo(tmp_path / "var", {k: v for k, v in env.items() if k == "DATABASE_URL"})
    return env


@pytest.mark.timeout(180)
async def test_sigterm_mid_lecture_lists_the_replay_before_the_process_exits(
    services: dict[str, str], tmp_path: Path, robots: list[Robot]
) -> None:
    data_dir = tmp_path / "var"
    env = services
    database_url = env.get("DATABASE_URL") or embedded_database_url(data_dir)
    robot = Robot(video_codec=H264)
    robots.append(robot)

    log, stopping_at = await _lecture_then_sigterm(data_dir, env, robot)

    # Drained on the way out, in order: the room ended, its recording finalized, the outbox flushed
    # to the bus, the catalog's consumer handled it; so the catalog lists the replay already.
    for line in ("room ended: server_shutdown", "recording finalized", "outbox:", "drained"):
        assert line in log, f"{line!r} not in the log:\n{log}"
    assert log.index("recording finalized") < log.index("catalog consumer stopped"), log
    record = await session_record(database_url)
    assert list(record.recordings) == recording_ids(data_dir / "objects"), (record, log)
    assert record.actual_end is not None
    assert stopping_at <= record.actual_end <= now(), record

    with running_server(data_dir, env) as server:
        replays = await wait_until(lambda: listed_replays(server.url), timeout_s=5, message="the replay")
        assert [r["id"] for r in replays] == list(record.recordings)


@pytest.mark.timeout(180)
async def test_after_kill_9_the_session_ends_at_its_last_stored_media_not_at_the_restart(
    tmp_path: Path, robots: list[Robot]
) -> None:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    robot = Robot(video_codec=H264)
    robots.append(robot)
    with pytest.raises(ServerFailed, match="exited with -9"), running_server(data_dir, SERVER_ENV) as server:  # noqa: PT012
        await publish_http(
            robot,
            server.url,
            DEMO_SESSION,
            bearer(TEST_SECRET_KEY, "whip", DEMO_SESSION, person_id=DEMO_EXPERT),
        )
        await wait_until(lambda: stored_segments(data_dir / "objects") >= 4, timeout_s=20, interval_s=0.1)
        kill_sent_at = now()
        os.kill(server.process.pid, signal.SIGKILL)
        await asyncio.to_thread(server.process.wait)
        # The process may store a last segment between the clock read and the signal landing: the end is
        # bounded by when it was seen dead.
        killed_at = now()
    await robot.close()
    database_url = embedded_database_url(data_dir)
    assert (await session_record(database_url)).actual_end is None
    await wait_until(lambda: now() - killed_at > timedelta(seconds=5), timeout_s=8)

    restarted_at = now()
    with running_server(data_dir, SERVER_ENV) as server:
        record = await wait_until(lambda: whole_record(database_url), timeout_s=15, message="session closed")
        assert record is not None
        assert record.actual_end is not None
        # At most the segment being written (plus its upload) is lost: the end is within a segment
        # and a bit of the kill, and well before the restart. The end is dated on the media timeline from
        # the first frame's arrival (recorder.finalize.media_end_at), so a first frame that arrived a
        # little late puts it that much after the wall clock (36 ms seen in a loaded run): 0.5 s slack.
        assert (
            kill_sent_at - timedelta(seconds=SEGMENT_S + 1.5)
            <= record.actual_end
            <= killed_at + timedelta(seconds=0.5)
        ), record
        assert record.actual_end < restarted_at - timedelta(seconds=4)
        replays = await wait_until(lambda: listed_replays(server.url), timeout_s=5, message="the replay")
        assert [r["id"] for r in replays] == list(record.recordings)


@pytest.mark.timeout(180)
async def test_the_outbox_survives_kill_9_while_the_bus_is_down_and_delivers_after_the_restart(
    tmp_path: Path, robots: list[Robot], postgres_url: str, redis_database: RedisDatabase
) -> None:
    data_dir = tmp_path / "var"
    journal = data_dir / "outbox" / "journal.jsonl"
    seed_demo(data_dir, {"DATABASE_URL": postgres_url})
    proxy = CuttableProxy(redis_database.host, redis_database.port)
    await proxy.start()
    env = {**SERVER_ENV, "DATABASE_URL": postgres_url, "REDIS_URL": redis_database.url(proxy.endpoint)}
    robot = Robot(video_codec=H264)
    robots.append(robot)
    try:
        with pytest.raises(ServerFailed, match="exited with -9"), running_server(data_dir, env) as server:  # noqa: PT012
            await proxy.cut()
            published_at = now()
            await publish_http(
                robot,
                server.url,
                DEMO_SESSION,
                bearer(TEST_SECRET_KEY, "whip", DEMO_SESSION, person_id=DEMO_EXPERT),
            )
            await wait_until(lambda: "session.started" in journal.read_text(), timeout_s=15, interval_s=0.1)
            await wait_until(lambda: stored_segments(data_dir / "objects") >= 2, timeout_s=20, interval_s=0.1)
            os.kill(server.process.pid, signal.SIGKILL)
            await asyncio.to_thread(server.process.wait)
        await robot.close()
        [kept] = [json.loads(line) for line in journal.read_text().splitlines()]
        assert kept["type"] == "session.started"
        assert (await session_record(postgres_url)).actual_start is None

        # The bus is back (straight to Redis: running_server stops the server synchronously, which
        # would stall a proxy served by this test's event loop).
        with running_server(data_dir, {**env, "REDIS_URL": redis_database.url()}):
            record = await wait_until(
                lambda: whole_record(postgres_url), timeout_s=30, interval_s=0.5, message="delivered"
            )
        assert record is not None
        assert record.actual_start == datetime.fromisoformat(kept["data"]["at"])
        assert published_at <= record.actual_start <= published_at + timedelta(seconds=5)
        assert record.actual_end is not None
        assert record.actual_end > record.actual_start
        assert list(record.recordings) == recording_ids(data_dir / "objects")
    finally:
        await proxy.close()


async def test_a_finalized_recording_the_catalog_lost_is_announced_again_by_reconciliation(
    recording_app: RecordingAppFactory, robots: list[Robot], tmp_path: Path
) -> None:
    """The catalog restored from a backup older than the lecture: the recording is in the store, not in
    the catalog. Reconciliation announces it again (once), from the summary written at finalization."""
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    database_url = embedded_database_url(data_dir)
    world = await recording_app(data_dir=data_dir)
    robot = Robot(video_codec=H264)
    robots.append(robot)
    token = await world.publish(robot, DEMO_SESSION, person_id=DEMO_EXPERT)
    await wait_until(lambda: stored_segments(world.settings.objects_dir) >= 2, timeout_s=20)
    await world.end(robot, token)
    record = await wait_until(lambda: whole_record(database_url), timeout_s=30, message="listed")
    assert record is not None
    [recording_id] = record.recordings
    summary = world.settings.objects_dir / "recordings" / str(DEMO_SESSION) / f"{recording_id}.json"
    assert json.loads(summary.read_text())["recording_id"] == recording_id

    db = world.app[DATABASE]
    async with db.sessions.begin() as s:
        await s.execute(delete(CatalogRecording).where(CatalogRecording.id == recording_id))
    assert (await session_record(database_url)).recordings == ()

    reconciler = Reconciler(
        world.store, db, world.app[OUTBOX], ReconcileConfig(settle_s=0), wall_clock=lambda: now()
    )
    assert await reconciler.run_once() == [(DEMO_SESSION, recording_id)]
    relisted = await wait_until(
        lambda: listed_replays(str(world.client.make_url("")).rstrip("/")), timeout_s=15, message="relisted"
    )
    assert [r["id"] for r in relisted] == [recording_id]
    assert relisted[0]["angles"] == ["camera"]
    assert await reconciler.run_once() == []  # listed now: nothing more to announce
