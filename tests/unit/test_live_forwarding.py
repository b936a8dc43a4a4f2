"""Forwarding domain: keyframe detection, bounded per-viewer queues, slots, merged keyframe requests."""

from __future__ import annotations

import asyncio

import pytest

from infra.errors import Invalid
from streaming.forwarding import H264, VP8, EncodedFrame, FrameQueue, KeyframeRequests, TrackSlot, is_keyframe
from streaming.rooms import (
    SLOT_KINDS,
    STAGE_SEATS,
    VIEWER_LAYOUT,
    publisher_labels,
    speaker_labels,
    viewer_codecs,
    viewer_labels,
)
from streaming.rtc_adapter import OfferedMedia
from tests.helpers import wait_until

IDR = b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88" + bytes(50)
P_SLICE = b"\x00\x00\x00\x01\x41\x9a" + bytes(50)
VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a" + bytes(50)
VP8_INTER = b"\x31\x02\x00" + bytes(50)


@pytest.mark.parametrize(
    ("mime", "data", "key"),
    [
        (H264, IDR, True),
        (H264, P_SLICE, False),
        (H264, b"\x00\x00\x01\x67\x42", False),  # SPS alone is no picture
        (VP8, VP8_KEY, True),
        (VP8, VP8_INTER, False),
        (VP8, b"\x10", False),
        ("audio/opus", b"\xfc\xff", True),
    ],
    ids=["h264-idr", "h264-p", "h264-sps-only", "vp8-key", "vp8-inter", "vp8-truncated", "opus"],
)
def test_keyframes_are_recognised_without_decoding(mime: str, data: bytes, key: bool) -> None:
    assert is_keyframe(mime, data) is key


def _frame(key: bool, ts: int = 0, size: int = 50, kind: str = "video") -> EncodedFrame:
    mime = H264 if kind == "video" else "audio/opus"
    return EncodedFrame(kind, mime, (IDR if key else P_SLICE)[:8] + bytes(size), ts, 90_000, key)


def test_a_new_video_queue_waits_for_a_keyframe_and_keeps_asking_for_one() -> None:
    asked: list[int] = []
    q = FrameQueue(
        "video", mime_type=H264, max_frames=4, max_bytes=10_000, on_need_keyframe=lambda: asked.append(1)
    )
    q.offer(_frame(False))
    q.offer(_frame(False, ts=1))
    assert len(q) == 0
    # A request can be lost on the way to the publisher: every frame dropped while waiting asks again
    # (the slot's KeyframeRequests merges and rate-limits them into PLIs).
    assert len(asked) == 2
    q.offer(_frame(True, ts=2))
    q.offer(_frame(False, ts=3))
    assert len(q) == 2
    assert len(asked) == 2, "no more requests once a keyframe came"


def test_an_overflowing_video_queue_drops_until_the_next_keyframe_and_asks_for_one() -> None:
    asked: list[int] = []
    q = FrameQueue(
        "video", mime_type=H264, max_frames=3, max_bytes=10_000, on_need_keyframe=lambda: asked.append(1)
    )
    for i in range(20):
        q.offer(_frame(i == 0, ts=i))
        assert len(q) <= 3
    assert len(q) == 0
    assert q.waiting_for_keyframe
    # Frames 0-2 fit; frame 3 overflows (one request), frames 4-19 are dropped waiting (one request each).
    assert len(asked) == 1 + 16
    assert q.stats.resyncs == 1
    q.offer(_frame(True, ts=99))
    q.offer(_frame(False, ts=100))
    assert len(q) == 2
    assert len(asked) == 17


def test_the_byte_bound_holds_as_well_as_the_frame_bound() -> None:
    q = FrameQueue("video", mime_type=H264, max_frames=100, max_bytes=1000)
    for i in range(50):
        q.offer(_frame(i % 10 == 0, ts=i, size=300))
        assert q.bytes_queued <= 1000


def test_audio_overflow_drops_the_oldest_frames() -> None:
    q = FrameQueue("audio", mime_type="audio/opus", max_frames=3, max_bytes=10_000)
    for i in range(10):
        q.offer(_frame(True, ts=i, kind="audio"))
    assert len(q) == 3
    assert q.stats.dropped == 7


async def test_frames_of_another_codec_are_dropped_and_close_ends_the_reader() -> None:
    q = FrameQueue("video", mime_type=VP8, max_frames=3, max_bytes=10_000)
    q.offer(_frame(True))
    assert len(q) == 0
    reader = asyncio.ensure_future(q.get())
    q.close()
    assert await reader is None


def test_a_slot_rebases_timestamps_so_a_republish_keeps_them_increasing() -> None:
    slot = TrackSlot("camera", "video")
    q = FrameQueue("video", mime_type=H264, max_frames=100, max_bytes=1 << 20)
    asked: list[str] = []
    first, second = object(), object()
    slot.attach(first, H264, lambda: asked.append("first"))
    slot.subscribe(q)
    assert asked == ["first"]
    for ts in (1000, 4000, 7000):
        slot.push(first, _frame(ts == 1000, ts=ts))
    slot.attach(second, H264, lambda: asked.append("second"))
    assert asked == ["first", "second"]
    slot.push(first, _frame(True, ts=10_000))  # the replaced publisher's late frame is ignored
    for ts in (0, 3000):
        slot.push(second, _frame(ts == 0, ts=ts))
    stamps = [f.timestamp for f in list(q._frames)]
    assert stamps[:3] == [0, 3000, 6000]
    assert stamps[3] > 6000
    assert stamps[4] == stamps[3] + 3000
    assert len(stamps) == 5


async def test_keyframe_requests_are_merged_and_rate_limited() -> None:
    requests = KeyframeRequests(min_interval_s=0.2)
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send() -> bool:
        sent.append(loop.time())
        return True

    task = asyncio.create_task(requests.run(send))
    try:
        for _ in range(5):
            requests.request()
        await wait_until(lambda: len(sent) == 1, timeout_s=2, message="first PLI")
        for _ in range(5):
            requests.request()
        await wait_until(lambda: len(sent) == 2, timeout_s=2, message="merged second PLI")
        assert sent[1] - sent[0] >= 0.2
        requests.request()
        requests.satisfied()  # a keyframe went by before the turn came: nothing more is sent
        await wait_until(lambda: loop.time() - sent[1] > 0.3, timeout_s=2, message="a rate-limit window")
        assert len(sent) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _media(kind: str, index: int, content: str | None = None) -> OfferedMedia:
    return OfferedMedia(index, kind, str(index), "sendonly", ("video/H264",), content)


@pytest.mark.parametrize(
    ("kinds", "query", "content", "labels"),
    [
        (["video", "audio"], None, None, ("camera", "audio")),
        (["audio", "video", "video"], None, None, ("audio", "camera", "screen")),
        (["video"], ["screen"], None, ("screen",)),
        (["video", "video"], ["screen", "camera"], None, ("screen", "camera")),
        (["video", "audio"], None, "slides", ("screen", "audio")),
    ],
    ids=["camera-audio", "order", "query-screen", "query-order", "a-content-slides"],
)
def test_publisher_tracks_are_labelled(
    kinds: list[str], query: list[str] | None, content: str | None, labels: tuple[str, ...]
) -> None:
    offered = [_media(k, i, content if k == "video" else None) for i, k in enumerate(kinds)]
    assert publisher_labels(offered, query) == labels


@pytest.mark.parametrize(
    ("kinds", "query"),
    [(["video"] * 3, None), (["audio"] * 2, None), (["video"], ["mic"]), (["video", "video"], ["screen"])],
    ids=["three-videos", "two-audios", "unknown-label", "label-count"],
)
def test_bad_publisher_labelling_is_invalid(kinds: list[str], query: list[str] | None) -> None:
    with pytest.raises(Invalid):
        publisher_labels([_media(k, i) for i, k in enumerate(kinds)], query)


def test_viewer_m_lines_bind_to_camera_then_screen() -> None:
    offered = [_media("video", 0), _media("audio", 1), _media("video", 2)]
    assert viewer_labels(offered) == ("camera", "audio", "screen")


def test_the_viewer_layout_is_the_documented_contract() -> None:
    assert STAGE_SEATS == 2
    assert VIEWER_LAYOUT == (
        "camera",
        "screen",
        "audio",
        "stage1.video",
        "stage1.audio",
        "stage2.video",
        "stage2.audio",
    )
    assert set(VIEWER_LAYOUT) == set(SLOT_KINDS)


@pytest.mark.parametrize("length", range(1, len(VIEWER_LAYOUT) + 1))
def test_a_viewer_offering_a_prefix_of_the_layout_gets_it_position_by_position(length: int) -> None:
    offered = [_media(SLOT_KINDS[label], i) for i, label in enumerate(VIEWER_LAYOUT[:length])]
    assert viewer_labels(offered) == VIEWER_LAYOUT[:length]


@pytest.mark.parametrize(
    "kinds",
    [["video"] * 5, ["audio"] * 4, [SLOT_KINDS[label] for label in VIEWER_LAYOUT] + ["video"]],
    ids=["five-videos", "four-audios", "layout-plus-one"],
)
def test_a_viewer_offering_more_than_the_layout_is_invalid(kinds: list[str]) -> None:
    with pytest.raises(Invalid, match="at most 4 video and 3 audio"):
        viewer_labels([_media(k, i) for i, k in enumerate(kinds)])


@pytest.mark.parametrize(
    ("kinds", "query", "seat", "labels"),
    [
        (["video", "audio"], None, 1, ("stage1.video", "stage1.audio")),
        (["audio", "video"], None, 2, ("stage2.audio", "stage2.video")),
        (["video"], ["camera"], 2, ("stage2.video",)),
        (["audio"], None, 1, ("stage1.audio",)),
    ],
    ids=["camera-audio-seat1", "order-seat2", "query-camera", "audio-only"],
)
def test_a_speakers_tracks_feed_their_stage_seat(
    kinds: list[str], query: list[str] | None, seat: int, labels: tuple[str, ...]
) -> None:
    assert speaker_labels([_media(k, i) for i, k in enumerate(kinds)], query, seat) == labels


@pytest.mark.parametrize(
    ("kinds", "query", "field"),
    [
        (["video", "video"], None, "sdp"),
        (["audio", "audio"], None, "sdp"),
        (["video"], ["screen"], "video"),
        (["video", "audio"], ["camera", "screen"], "video"),
    ],
    ids=["two-videos", "two-audios", "screen-label", "two-labels"],
)
def test_a_speaker_publishes_at_most_one_camera_and_one_microphone(
    kinds: list[str], query: list[str] | None, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        speaker_labels([_media(k, i) for i, k in enumerate(kinds)], query, 1)
    assert refused.value.field == field


def _slot(label: str, mime: str | None, live: bool) -> TrackSlot:
    """A video slot that carries (live) or carried (not live) `mime`; never published if None."""
    slot, publisher = TrackSlot(label, "video"), object()
    if mime is not None:
        slot.attach(publisher, mime, lambda: None)
    if not live:
        slot.detach(publisher)
    return slot


@pytest.mark.parametrize(
    ("label", "mime", "live", "codecs"),
    [
        ("camera", None, False, [H264, VP8]),
        ("camera", VP8, True, [VP8]),
        ("camera", VP8, False, [VP8]),
        ("stage1.video", None, False, [H264, VP8]),
        ("stage1.video", VP8, True, [VP8, H264]),
        ("stage2.video", H264, True, [H264, VP8]),
        ("stage1.video", VP8, False, [H264, VP8]),
    ],
    ids=[
        "camera-never-published",
        "camera-live",
        "camera-last-codec",
        "stage-free",
        "stage-live-vp8",
        "stage-live-h264",
        "stage-freed-after-vp8",
    ],
)
def test_viewer_codecs_per_slot(label: str, mime: str | None, live: bool, codecs: list[str]) -> None:
    assert viewer_codecs(_slot(label, mime, live)) == codecs


async def test_a_keyframe_request_waits_for_a_publisher_that_cannot_be_asked_yet() -> None:
    requests = KeyframeRequests(min_interval_s=0.05)
    attempts: list[bool] = []

    async def send() -> bool:
        attempts.append(len(attempts) >= 2)  # no RTP source known for the first two turns
        return attempts[-1]

    task = asyncio.create_task(requests.run(send))
    try:
        requests.request()
        await wait_until(lambda: requests.sent == 1, timeout_s=2, message="the request finally sent")
        assert attempts == [False, False, True]
        assert not requests.pending
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_channel_promotes_no_more_speakers_than_the_room_has_stage_seats() -> None:
    from streaming.channel_state import Limits
    from streaming.rooms import STAGE_SEATS

    assert Limits().max_speakers == STAGE_SEATS
