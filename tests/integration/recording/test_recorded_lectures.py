"""A robot lecturer (a real aiortc peer) publishes through WHIP to the whole app; when the session ends
the recording is in the object store, whole, and announced as recording.finalized for the catalog.
While it is live, learners turned away by a full room get the recording's live playlist."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from infra import media_access
from streaming.forwarding import H264, VP8
from tests.helpers import wait_until
from tests.integration.live.peers import Robot, WatchingPeer, sdp_headers
from tests.integration.recorder.recorder_testkit import FFPROBE, probe, run_ffmpeg_check, stream
from tests.integration.recording.conftest import RecordingAppFactory
from tests.integration.recording.support import (
    EDGE_FRAMES,
    FPS,
    SEGMENT_FRAMES,
    SEGMENT_S,
    RecordingWorld,
    assert_continuous,
    check_angle,
    sent_frames,
)

LECTURE_S = 60.0


async def _finalized(world: RecordingWorld, session_id: int, timeout_s: float = 30.0) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for data in await world.events("recordings", "recording.finalized"):
            if data["session_id"] == session_id:
                return data
        return None

    event = await wait_until(found, timeout_s=timeout_s, message=f"finalized {session_id}")
    assert event is not None
    found_event: dict[str, Any] = event
    return found_event


async def _check_live_playlist_is_offered_to_overflow_learners(
    world: RecordingWorld, session_id: int, robots: list[Any]
) -> None:
    """The room seats nobody (limit 0): WHEP answers 409 naming the recording's live playlist, which the
    app serves under /hls/ while the lecture goes on: a live playlist whose init and segments load."""
    learner = WatchingPeer()
    robots.append(learner)
    resp = await world.client.post(
        f"/whep/sessions/{session_id}",
        data=await learner.offer(),
        headers=sdp_headers(world.token("whep", session_id, "learner", person_id=50)),
    )
    assert resp.status == 409, await resp.text()
    hls_url = (await resp.json())["error"]["details"]["hls_url"]
    assert hls_url.startswith(f"/hls/{session_id}/"), hls_url
    assert hls_url.endswith("/camera/index.m3u8"), hls_url

    # The learner's media grant (the catalog sets it with the room_full answer's page, hls-access).
    grant = media_access.issue(world.settings.secret_key, 50, session_id, "learner", time.time())
    cookie = {"Cookie": f"{media_access.COOKIE}={grant}"}

    async def playlist() -> str | None:
        got = await world.client.get(hls_url, headers=cookie)
        text = await got.text()
        return text if got.status == 200 and text.count("seg_") >= 2 else None

    text = await wait_until(playlist, timeout_s=15, interval_s=0.25, message="live playlist")
    assert text is not None
    assert "#EXT-X-ENDLIST" not in text, text
    assert "#EXT-X-PLAYLIST-TYPE" not in text, text
    assert '#EXT-X-MAP:URI="init.mp4"' in text, text
    base = hls_url.rsplit("/", 1)[0]
    for name in ["init.mp4", *[line for line in text.splitlines() if line.startswith("seg_")][:2]]:
        got = await world.client.get(f"{base}/{name}", headers=cookie)
        assert got.status == 200, (name, got.status)
        assert len(await got.read()) > 0


@pytest.mark.timeout(180)
async def test_h264_and_vp8_lectures_of_a_minute_are_stored_whole_as_h264_aac_and_announced(
    recording_app: RecordingAppFactory, robots: list[Any]
) -> None:
    world = await recording_app(room_seat_limit=0)
    lecturers = {101: Robot(video_codec=H264), 102: Robot(video_codec=VP8)}
    robots.extend(lecturers.values())
    tokens = {sid: await world.publish(robot, sid) for sid, robot in lecturers.items()}
    started = time.monotonic()

    async def both_started() -> bool:
        started = {d["session_id"] for d in await world.events("sessions", "session.started")}
        return started >= set(lecturers)

    await wait_until(both_started, timeout_s=15, message="session.started of both")

    await _check_live_playlist_is_offered_to_overflow_learners(world, 101, robots)
    await _check_live_playlist_is_offered_to_overflow_learners(world, 102, robots)

    await wait_until(
        lambda: time.monotonic() - started >= LECTURE_S,
        timeout_s=LECTURE_S + 5,
        interval_s=0.5,
        message="the lecture's minute",
    )
    sent: dict[int, int] = {}
    for sid, robot in lecturers.items():
        sent[sid] = sent_frames(robot)
        await world.end(robot, tokens[sid])

    for sid, codec in ((101, "H.264"), (102, "VP8")):
        event = await _finalized(world, sid)
        assert [a["angle"] for a in event["angles"]] == ["camera"], event
        angle = event["angles"][0]
        assert event["master_key"].endswith("/master.m3u8"), event
        assert event["size_bytes"] > 0, event
        assert (angle["width"], angle["height"]) == (320, 240), event
        checked = await check_angle(world.settings.objects_dir, angle["playlist_key"], angle["mp4_key"])
        assert_continuous(checked.playlist)
        sent_s = sent[sid] / FPS
        missing = sent[sid] - checked.video_packets
        assert -EDGE_FRAMES <= missing <= SEGMENT_FRAMES, (codec, sent[sid], checked.video_packets)
        assert abs(checked.duration_s - sent_s) <= 0.5, (codec, checked.duration_s, sent_s)
        assert abs(event["duration_s"] - sent_s) <= 0.5, (codec, event["duration_s"], sent_s)
        # AAC-LC at 48 kHz: 1024 samples a packet; the audio covers the video's time.
        assert abs(checked.audio_packets * 1024 / 48_000 - checked.duration_s) <= 0.5, (codec, checked)
        hls = await asyncio.to_thread(probe, world.settings.objects_dir / angle["playlist_key"])
        assert stream(hls, "video")["codec_name"] == "h264"


async def test_a_screen_share_started_mid_lecture_is_recorded_as_a_second_angle_on_the_same_timeline(
    recording_app: RecordingAppFactory, robots: list[Any]
) -> None:
    world = await recording_app()
    camera, screen = Robot(video_codec=H264), Robot(video_codec=H264, audio=False)
    robots.extend([camera, screen])
    camera_token = await world.publish(camera, 201, "?video=camera")
    await wait_until(lambda: sent_frames(camera) >= 3 * FPS, timeout_s=10, message="3 s of camera")
    screen_token = await world.publish(screen, 201, "?video=screen")
    await wait_until(lambda: sent_frames(screen) > 0, timeout_s=10, message="screen frames")
    # The offset the recording should show: how much later the screen's frames began than the camera's.
    offset_s = (sent_frames(camera) - sent_frames(screen)) / FPS
    await wait_until(lambda: sent_frames(screen) >= 5 * FPS, timeout_s=10, message="5 s of screen")
    await world.end(screen, screen_token)
    await world.end(camera, camera_token)  # the expert's last publisher: the session ends

    event = await _finalized(world, 201)
    angles = {a["angle"]: a for a in event["angles"]}
    assert set(angles) == {"camera", "screen"}, event
    checked = {
        name: await check_angle(world.settings.objects_dir, a["playlist_key"], a["mp4_key"])
        for name, a in angles.items()
    }
    cam, scr = angles["camera"], angles["screen"]
    assert cam["start_s"] <= 0.2, cam
    assert abs((scr["start_s"] - cam["start_s"]) - offset_s) <= 0.3, (offset_s, cam, scr)
    # Both end together: the screen angle covers the camera's time after its own start.
    cam_end = cam["start_s"] + checked["camera"].duration_s
    scr_end = scr["start_s"] + checked["screen"].duration_s
    assert abs(cam_end - scr_end) <= 0.5, (cam_end, scr_end)
    assert abs(event["duration_s"] - max(cam_end, scr_end) + min(cam["start_s"], scr["start_s"])) <= 0.5
    master = (world.settings.objects_dir / event["master_key"]).read_text()
    assert 'NAME="camera"' in master, master
    assert 'NAME="screen"' in master, master


def packet_times(path: Path, kind: str) -> list[float]:
    """Presentation times of every packet of the `kind` ("v" or "a") stream, in order."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", kind, "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return sorted(float(line.strip().rstrip(",")) for line in out.stdout.splitlines() if line.strip())


GAP_S = 4.0


@pytest.mark.timeout(120)
async def test_a_publisher_reconnecting_after_a_gap_makes_a_discontinuity_not_a_long_segment(
    recording_app: RecordingAppFactory, robots: list[Any]
) -> None:
    """The expert's connection drops and they publish again 4 s later, into the same room and recording:
    the gap becomes a period boundary (EXT-X-DISCONTINUITY, a new init), every segment stays at the
    target, ffmpeg reads it all without error, and the MP4 keeps the gap with its audio filled."""
    world = await recording_app()
    first = Robot(video_codec=H264)
    robots.append(first)
    await world.publish(first, 601)
    await wait_until(lambda: sent_frames(first) >= 4 * FPS, timeout_s=10, message="4 s of video")
    await first.close()  # the connection drops: no goodbye, no WHIP DELETE
    gone_at = time.monotonic()
    await wait_until(lambda: time.monotonic() - gone_at >= GAP_S, timeout_s=GAP_S + 2, interval_s=0.1)
    second = Robot(video_codec=H264)
    robots.append(second)
    token = await world.publish(second, 601)  # the same expert again
    await wait_until(lambda: sent_frames(second) >= 5 * FPS, timeout_s=10, message="5 s more")
    await world.end(second, token)

    event = await _finalized(world, 601)
    [angle] = event["angles"]
    root = world.settings.objects_dir
    playlist = (root / angle["playlist_key"]).read_text()
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1, playlist
    assert '#EXT-X-MAP:URI="init.mp4"' in playlist, playlist
    assert '#EXT-X-MAP:URI="init_002.mp4"' in playlist, playlist
    assert "#EXT-X-TARGETDURATION:2\n" in playlist, playlist
    durations = [float(line.split(":")[1].rstrip(",")) for line in playlist.splitlines() if "#EXTINF" in line]
    assert max(durations) <= SEGMENT_S + 0.5, durations
    assert_continuous(playlist)  # numbered on across the boundary
    spool = world.settings.data_dir / "spool"
    assert list(spool.iterdir()) == [], "finalized: no folder is left in the spool"
    for path in (root / angle["playlist_key"], root / angle["mp4_key"]):
        result = await asyncio.to_thread(run_ffmpeg_check, path)
        assert result.returncode == 0, result.stderr
        assert not result.stderr.strip(), result.stderr

    # The MP4 keeps the gap on its timeline; sound and picture stay aligned across it.
    mp4 = root / angle["mp4_key"]
    video = await asyncio.to_thread(packet_times, mp4, "v")
    audio = await asyncio.to_thread(packet_times, mp4, "a")
    gaps = [b - a for a, b in itertools.pairwise(video)]
    assert GAP_S - 1.0 <= max(gaps) <= GAP_S + 2.5, max(gaps)
    assert sorted(gaps)[-2] < 0.5, "one gap only"
    audio_steps = [b - a for a, b in itertools.pairwise(audio)]
    assert max(audio_steps) <= 0.05, max(audio_steps)  # silence fills the gap: no hole in the audio
    assert abs(audio[-1] - video[-1]) <= 0.3, (audio[-1], video[-1])
    assert abs(audio[0] - video[0]) <= 0.3, (audio[0], video[0])
