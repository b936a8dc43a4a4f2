"""A synthetic lecture (H.264 or VP8 + Opus) through the Recorder into a real local object store, checked
with ffmpeg/ffprobe: playable HLS, packet counts, duration, MP4 codecs, upload order, angles, faults."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from recorder_testkit import SpyStore, SyntheticLecture, probe, run_ffmpeg_check, stream

from recorder import Recorder, RecordingSummary, finalized_recordings, read_summary, recover
from tests.helpers import wait_until

SEGMENT_S = 1.0
PREFIX = "hls/7/r1"


def make_recorder(store: SpyStore, tmp_path: Path, lecture: SyntheticLecture, **kw: object) -> Recorder:
    return Recorder(
        store,
        session_id=7,
        recording_id="r1",
        spool_dir=tmp_path / "spool",
        request_keyframe=lecture.request_keyframe,
        segment_duration_s=SEGMENT_S,
        retry_initial_s=0.02,
        retry_max_s=0.1,
        **kw,  # type: ignore[arg-type]
    )


async def feed(recorder: Recorder, lecture: SyntheticLecture, start_s: float, end_s: float) -> None:
    for i, frame in enumerate(lecture.frames(start_s, end_s)):
        recorder.push(frame)
        if i % 20 == 0:
            # A live publisher sends in real time, so the recorder's keyframe requests (made once the
            # worker has seen the frames) reach it before the segment is due. Generated faster than
            # real time, the frames must wait for the worker, or segments grow past their target.
            await wait_until(lambda: recorder.health["queued_frame_bytes"] == 0, interval_s=0.002)


def check_playable(path: Path) -> None:
    result = run_ffmpeg_check(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def check_uploaded_before_playlists(store: SpyStore) -> None:
    stored: set[str] = set()
    playlists = 0
    for key, data in store.puts:
        if key.endswith("index.m3u8"):
            assert data is not None
            base = key.rsplit("/", 1)[0]
            for name in re.findall(r"^(seg_\d+\.m4s)$|URI=\"(init[^\"]*)\"", data.decode(), re.M):
                named = f"{base}/{name[0] or name[1]}"
                assert named in stored, f"{key} names {named} before it was stored"
            playlists += 1
        stored.add(key)
    assert playlists > 0


async def test_h264_lecture_becomes_playable_hls_and_mp4_with_both_angles(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture(video={"camera": "h264", "screen": "h264"}, screen_start_s=1.0)
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 6.0)
    summary = await recorder.finish()

    assert {a.angle for a in summary.angles} == {"camera", "screen"}
    for angle in ("camera", "screen"):
        playlist = store.path(f"{PREFIX}/{angle}/index.m3u8")
        text = playlist.read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        check_playable(playlist)
        doc = probe(playlist)
        video = stream(doc, "video")
        assert int(video["nb_read_packets"]) == lecture.sent(angle)
        expected_s = 6.0 - (1.0 if angle == "screen" else 0.0)
        assert abs(float(doc["format"]["duration"]) - expected_s) < 0.5
        aac = int(stream(doc, "audio")["nb_read_packets"])
        assert abs(aac - expected_s * 48_000 / 1024) <= SEGMENT_S * 48_000 / 1024
        mp4 = probe(store.path(f"{PREFIX}/{angle}.mp4"))
        assert {s["codec_name"] for s in mp4["streams"]} == {"h264", "aac"}
        assert int(stream(mp4, "video")["nb_read_packets"]) == lecture.sent(angle)
    # One timeline: the screen starts 1 s after the camera, in the media timestamps as in the summary.
    camera = float(stream(probe(store.path(f"{PREFIX}/camera/index.m3u8")), "video")["start_time"])
    screen = float(stream(probe(store.path(f"{PREFIX}/screen/index.m3u8")), "video")["start_time"])
    assert abs((screen - camera) - 1.0) < 1.5 / lecture.fps
    angles = {a.angle: a for a in summary.angles}
    assert abs(angles["screen"].start_s - angles["camera"].start_s - 1.0) < 1.5 / lecture.fps
    assert abs(summary.duration_s - 6.0) < 0.5
    master = store.path(f"{PREFIX}/master.m3u8").read_text()
    assert 'URI="camera/index.m3u8"' in master
    assert 'URI="screen/index.m3u8"' in master
    check_uploaded_before_playlists(store)
    assert store.puts[-1][0] == f"{PREFIX}/manifest.json"
    assert b'"state": "finalized"' in (store.path(f"{PREFIX}/manifest.json")).read_bytes()
    assert lecture.requests, "the recorder never asked for a keyframe"
    assert not (tmp_path / "spool" / "7" / "r1").exists()


async def test_segments_follow_the_keyframe_cadence_the_recorder_requests(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture()  # GOP of 300 frames: only requested keyframes can cut segments
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 5.0)
    summary = await recorder.finish()
    (camera,) = summary.angles
    assert camera.segments >= 4
    text = store.path(f"{PREFIX}/camera/index.m3u8").read_text()
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    assert all(d <= SEGMENT_S + 0.25 for d in durations[:-1]), durations


async def test_resolution_change_starts_a_new_init_segment_and_still_plays(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture(resize_camera_at_s=2.5)
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 5.0)
    await recorder.finish()
    playlist = store.path(f"{PREFIX}/camera/index.m3u8")
    text = playlist.read_text()
    assert text.count("#EXT-X-MAP:") == 2
    assert "#EXT-X-DISCONTINUITY" in text
    assert store.path(f"{PREFIX}/camera/init_002.mp4").exists()
    check_playable(playlist)
    assert int(stream(probe(playlist), "video")["nb_read_packets"]) == lecture.sent("camera")
    mp4 = probe(store.path(f"{PREFIX}/camera.mp4"))
    assert int(stream(mp4, "video")["nb_read_packets"]) == lecture.sent("camera")


async def test_vp8_publisher_is_transcoded_once_to_h264_and_plays(store: SpyStore, tmp_path: Path) -> None:
    lecture = SyntheticLecture(video={"camera": "vp8"})
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 4.0)
    await recorder.finish()
    playlist = store.path(f"{PREFIX}/camera/index.m3u8")
    check_playable(playlist)
    doc = probe(playlist)
    assert stream(doc, "video")["codec_name"] == "h264"
    assert int(stream(doc, "video")["nb_read_packets"]) == lecture.sent("camera")
    assert abs(float(doc["format"]["duration"]) - 4.0) < 0.5
    mp4 = probe(store.path(f"{PREFIX}/camera.mp4"))
    assert {s["codec_name"] for s in mp4["streams"]} == {"h264", "aac"}


async def test_store_outage_spools_segments_and_completes_without_a_gap(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture()
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 2.0)
    store.down = True
    await feed(recorder, lecture, 2.0, 5.0)
    await wait_until(
        lambda: recorder.health["spool_bytes"] > 0 and not recorder.health["store_available"],
        message="segments spooled during the outage",
    )
    health = recorder.health
    assert health["upload_backlog"] > 0
    assert health["last_error"]
    store.down = False
    await feed(recorder, lecture, 5.0, 7.0)
    summary = await recorder.finish()

    assert store.refused > 0
    playlist = store.path(f"{PREFIX}/camera/index.m3u8")
    text = playlist.read_text()
    assert "#EXT-X-DISCONTINUITY" not in text
    seqs = [int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", text, re.M)]
    assert seqs == list(range(1, len(seqs) + 1))
    check_playable(playlist)
    doc = probe(playlist)
    assert int(stream(doc, "video")["nb_read_packets"]) == lecture.sent("camera")
    assert abs(float(doc["format"]["duration"]) - 7.0) < 0.5
    assert summary.angles[0].segments == len(seqs)
    check_uploaded_before_playlists(store)


async def test_a_full_spool_drops_new_segments_visibly_and_the_rest_still_plays(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture()
    recorder = make_recorder(store, tmp_path, lecture, spool_limit_bytes=60_000)
    await recorder.start()
    store.down = True
    await feed(recorder, lecture, 0.0, 6.0)
    await wait_until(lambda: recorder.health["spool_over_limit"], message="spool full")
    assert recorder.health["spool_dropped_segments"] > 0
    store.down = False
    await wait_until(lambda: recorder.health["spool_bytes"] == 0, message="spool drained")
    await feed(recorder, lecture, 6.0, 8.0)
    await recorder.finish()
    playlist = store.path(f"{PREFIX}/camera/index.m3u8")
    text = playlist.read_text()
    assert "#EXT-X-DISCONTINUITY" in text
    assert 0 < len(re.findall(r"^seg_", text, re.M)) < recorder.health["segments"] + 1
    check_playable(playlist)
    doc = probe(playlist)
    assert 0 < int(stream(doc, "video")["nb_read_packets"]) < lecture.sent("camera")  # dropped part is gone


async def test_abandoned_recording_is_recovered_missing_at_most_the_open_segment(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture(video={"camera": "h264", "screen": "h264"})
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 5.0)
    await wait_until(lambda: settled(recorder))
    await recorder.abandon()  # what a kill -9 leaves: an open manifest, no VOD playlist, no MP4

    summaries = await recover(store, tmp_path / "spool")

    (summary,) = summaries
    assert_recovered(store, lecture, summary)
    assert await recover(store, tmp_path / "spool") == []  # finalized recordings are left alone


async def test_recording_is_recovered_from_the_store_alone_when_the_spool_is_gone(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture(video={"camera": "h264", "screen": "h264"})
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 5.0)
    await wait_until(lambda: settled(recorder))
    await recorder.abandon()
    shutil.rmtree(tmp_path / "spool")

    (summary,) = await recover(store, tmp_path / "spool")
    assert_recovered(store, lecture, summary)


def settled(recorder: Recorder) -> bool:
    """Every pushed frame processed by the worker and every closed segment uploaded: what a crash
    then loses is only each angle's segment in progress (frames still queued would be lost too)."""
    health = recorder.health
    return bool(
        health["queued_frame_bytes"] == 0 and health["upload_backlog"] == 0 and health["segments"] >= 6
    )


def assert_recovered(store: SpyStore, lecture: SyntheticLecture, summary: RecordingSummary) -> None:
    assert {a.angle for a in summary.angles} == {"camera", "screen"}
    for angle in ("camera", "screen"):
        playlist = store.path(f"{PREFIX}/{angle}/index.m3u8")
        assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
        check_playable(playlist)
        got = int(stream(probe(playlist), "video")["nb_read_packets"])
        # At most the segment in progress is lost (requested keyframes keep segments near SEGMENT_S).
        assert lecture.sent(angle) - 1.5 * SEGMENT_S * lecture.fps <= got <= lecture.sent(angle)
        mp4 = probe(store.path(f"{PREFIX}/{angle}.mp4"))
        assert {s["codec_name"] for s in mp4["streams"]} == {"h264", "aac"}
        assert int(stream(mp4, "video")["nb_read_packets"]) == got
    assert b'"state": "finalized"' in store.path(f"{PREFIX}/manifest.json").read_bytes()


async def test_finalized_recordings_are_indexed_and_one_from_before_the_index_is_added_at_recovery(
    store: SpyStore, tmp_path: Path
) -> None:
    lecture = SyntheticLecture(video={"camera": "h264"})
    recorder = make_recorder(store, tmp_path, lecture)
    await recorder.start()
    await feed(recorder, lecture, 0.0, 4.0)
    summary = await recorder.finish()
    assert await finalized_recordings(store) == [(7, "r1")]
    assert await read_summary(store, 7, "r1") == summary
    assert summary.media_end_at is not None
    assert summary.finalized_at is not None

    await store.delete("recordings/7/r1.json")  # a recording finalized before the index existed
    assert await finalized_recordings(store) == []
    assert await recover(store, tmp_path / "spool") == []  # nothing to finalize ...
    indexed = await read_summary(store, 7, "r1")  # ... but the index has it again
    assert [(a.angle, a.segments, a.mp4_key, a.mp4_bytes) for a in indexed.angles] == [
        (a.angle, a.segments, a.mp4_key, a.mp4_bytes) for a in summary.angles
    ]
    assert indexed.media_end_at == summary.media_end_at
    assert indexed.bytes == summary.bytes
