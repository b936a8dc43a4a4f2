"""A video file recorded through the live recorder's own pipeline (shared courseware, docs/courseware.md):
`probe` checks that a file is a decodable video with a duration; `record_file` demuxes it with PyAV and
feeds its packets to a `Recorder` as the live server feeds a room's frames, so the replay has the same
segments, playlists, MP4, manifest, summary and keys as a recorded lecture.

What is transcoded is only what the recorder's output needs: H.264 without B-frames and with keyframes at
least every MAX_COPY_GOP_S is copied (converted to Annex-B, as WebRTC delivers it); any other video is
re-encoded once by the recorder's H264Encoder (IDR every segment). Audio is decoded and handed over as
16-bit PCM, which the recorder encodes to AAC once, exactly as it does Opus.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av

from infra.objects import ObjectStore
from recorder.finalize import RecordingSummary
from recorder.frames import EncodedFrame
from recorder.layout import recording_prefix
from recorder.media import AUDIO_RATE, VIDEO_RATE, H264Encoder
from recorder.recording import Recorder

log = logging.getLogger(__name__)

TRACK = "camera"  # a file is one angle, the camera's
MAX_COPY_GOP_S = 4.0  # longer between keyframes and the video is re-encoded (segments stay short)
PROBE_GOP_S = 30.0  # how much of the file's start is read to learn its keyframe spacing
PROBE_DECODE_PACKETS = 300  # a video stream that yields no picture in this many packets is undecodable
BATCH_S = 1.0  # media handed to the recorder per batch
BATCH_BYTES = 4 * 1024 * 1024
QUEUE_BATCHES = 4


# What a file is read from: a file, or a stored object read in ranges (infra.objects_reader.ObjectReader).
Source = IO[bytes] | io.RawIOBase


class MediaRejected(Exception):
    """The file is not what it claims: the message is "中文原因 / English reason"."""

    def __init__(self, chinese: str, english: str) -> None:
        super().__init__(f"{chinese} / {english}")


@dataclass(frozen=True)
class VideoProbe:
    duration_s: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    copy_video: bool  # H.264 the recorder can take as it is


def _open(source: Source) -> Any:
    try:
        return av.open(source, "r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise MediaRejected("无法识别的视频文件", f"not a readable video file ({exc})") from exc


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(source: Source) -> VideoProbe:
    """Check a video file (blocking: run it on a worker thread). MediaRejected when it cannot be opened,
    has no video stream, none of its first packets decode, or it has no duration."""
    container = _open(source)
    try:
        if not container.streams.video:
            raise MediaRejected("文件中没有视频流", "the file has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = (container.duration / av.time_base) if container.duration else None
        duration = duration or _seconds(video.duration, video.time_base)
        if not duration or duration <= 0:
            raise MediaRejected("视频时长为零", "the video has no duration")
        decoded = None
        keyframes: list[float] = []
        reordered = False
        try:
            for i, packet in enumerate(container.demux(video)):
                if packet.size == 0:
                    continue
                t = _seconds(packet.pts, packet.time_base)
                if packet.pts is not None and packet.dts is not None and packet.pts != packet.dts:
                    reordered = True
                if packet.is_keyframe and t is not None:
                    keyframes.append(t)
                if decoded is None:
                    frames = packet.decode()
                    decoded = frames[0] if frames else None
                    if decoded is None and i >= PROBE_DECODE_PACKETS:
                        break
                if decoded is not None and t is not None and keyframes and t - keyframes[0] > PROBE_GOP_S:
                    break
        except av.error.FFmpegError as exc:
            if decoded is None:
                raise MediaRejected("视频无法解码", f"the video stream cannot be decoded ({exc})") from exc
        if decoded is None:
            raise MediaRejected("视频无法解码", "the video stream cannot be decoded")
        gaps = [b - a for a, b in itertools.pairwise(keyframes)]
        copy = (
            video.codec_context.name == "h264"
            and not reordered
            and bool(keyframes)
            and max(gaps, default=0.0) <= MAX_COPY_GOP_S
            and decoded.width % 2 == 0
            and decoded.height % 2 == 0
        )
        return VideoProbe(
            duration_s=float(duration),
            width=int(decoded.width),
            height=int(decoded.height),
            video_codec=str(video.codec_context.name),
            audio_codec=str(audio.codec_context.name) if audio is not None else None,
            copy_video=copy,
        )
    finally:
        container.close()


class _Batcher:
    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.bytes = 0
        self.first_s: float | None = None

    def add(self, frame: EncodedFrame) -> list[EncodedFrame] | None:
        self.frames.append(frame)
        self.bytes += len(frame.data)
        if self.first_s is None:
            self.first_s = frame.arrival_s
        if frame.arrival_s - self.first_s >= BATCH_S or self.bytes >= BATCH_BYTES:
            return self.take()
        return None

    def take(self) -> list[EncodedFrame]:
        out, self.frames, self.bytes, self.first_s = self.frames, [], 0, None
        return out


def file_frames(source: Source, copy_video: bool, segment_duration_s: float) -> Iterator[list[EncodedFrame]]:
    """The file's video and audio as the recorder's EncodedFrames, in demux order, in batches of about a
    second (blocking: run it on a worker thread). Times are seconds from the file's first packet."""
    container = _open(source)
    try:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        streams = [s for s in (video, audio) if s is not None]
        starts = [
            float(s.start_time * s.time_base) for s in streams if s.start_time is not None and s.time_base
        ]
        t0 = min(starts, default=0.0)
        extradata = video.codec_context.extradata or b""
        annexb = (
            av.bitstream.BitStreamFilterContext("h264_mp4toannexb", video)
            if copy_video and extradata[:1] == b"\x01"
            else None
        )
        encoder = None if copy_video else H264Encoder(segment_duration_s)
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE) if audio else None
        audio_next: int | None = None
        batch = _Batcher()
        last_video = -1

        def video_frame(data: bytes, pts_90k: int, keyframe: bool) -> EncodedFrame | None:
            nonlocal last_video
            if pts_90k <= last_video:
                return None  # the recorder's muxer takes strictly increasing times only
            last_video = pts_90k
            return EncodedFrame(
                track=TRACK,
                codec="h264",
                data=data,
                pts=pts_90k,
                time_base=Fraction(1, VIDEO_RATE),
                keyframe=keyframe,
                arrival_s=pts_90k / VIDEO_RATE,
            )

        def copied(packets: list[Any]) -> Iterator[EncodedFrame]:
            for p in packets:
                t = _seconds(p.pts if p.pts is not None else p.dts, p.time_base)
                if t is None or p.size == 0:
                    continue
                frame = video_frame(bytes(p), round((t - t0) * VIDEO_RATE), bool(p.is_keyframe))
                if frame is not None:
                    yield frame

        def encoded(out: list[tuple[bytes, int, bool]]) -> Iterator[EncodedFrame]:
            for data, pts, key in out:
                frame = video_frame(data, pts, key)
                if frame is not None:
                    yield frame

        def pictures(frames: list[Any]) -> Iterator[EncodedFrame]:
            assert encoder is not None
            for picture in frames:
                t = picture.time
                if t is None or math.isnan(t):
                    continue
                width, height = picture.width & ~1, picture.height & ~1
                if (picture.format.name, picture.width, picture.height) != ("yuv420p", width, height):
                    picture = picture.reformat(format="yuv420p", width=width, height=height)
                yield from encoded(encoder.encode(picture, round((t - t0) * VIDEO_RATE)))

        def sounds(frames: list[Any]) -> Iterator[EncodedFrame]:
            nonlocal audio_next
            assert resampler is not None
            for sound in frames:
                if audio_next is None:
                    if sound is None or sound.time is None or math.isnan(sound.time):
                        continue
                    audio_next = max(0, round((sound.time - t0) * AUDIO_RATE))
                for out in resampler.resample(sound):
                    data = bytes(out.planes[0])[: out.samples * 4]
                    yield EncodedFrame(
                        track="audio",
                        codec="pcm_s16le",
                        data=data,
                        pts=audio_next,
                        time_base=Fraction(1, AUDIO_RATE),
                        keyframe=True,
                        arrival_s=audio_next / AUDIO_RATE,
                    )
                    audio_next += out.samples

        def decode(stream: Any, packet: Any) -> list[Any]:
            try:
                return list(stream.codec_context.decode(packet))
            except av.error.InvalidDataError:
                log.debug("undecodable packet skipped stream=%s", stream.index)
                return []

        for packet in container.demux(streams):
            produced: Iterator[EncodedFrame]
            if packet.stream is video:
                if packet.size == 0:
                    continue
                if annexb is not None:
                    produced = copied(list(annexb.filter(packet)))
                elif copy_video:
                    produced = copied([packet])
                else:
                    produced = pictures(decode(video, packet))
            elif packet.size != 0:
                produced = sounds(decode(audio, packet))
            else:
                continue
            for frame in produced:
                if (full := batch.add(frame)) is not None:
                    yield full
        # Drain what the decoders, the filter and the encoder still hold.
        tail: list[EncodedFrame] = []
        if annexb is not None:
            tail += copied(list(annexb.filter(None)))
        if encoder is not None:
            tail += pictures(decode(video, None))
            tail += encoded(encoder.flush())
        if audio is not None and resampler is not None:
            tail += sounds(decode(audio, None))
        for frame in tail:
            if (full := batch.add(frame)) is not None:
                yield full
        if batch.frames:
            yield batch.take()
    finally:
        container.close()


async def record_file(
    store: ObjectStore,
    open_source: Callable[[], Source],
    copy_video: bool,
    *,
    session_id: int,
    recording_id: str,
    spool_dir: Path,
    segment_duration_s: float = 2.0,
) -> RecordingSummary:
    """Record the file `open_source()` gives (opened and read on a worker thread) as recording
    `recording_id` of session `session_id`, through a `Recorder`; its summary once finalized. On failure
    nothing of it stays (no open manifest for recover() to find): MediaRejected when the file turns out
    undecodable, or the store's error."""
    recorder = Recorder(
        store,
        session_id=session_id,
        recording_id=recording_id,
        spool_dir=spool_dir,
        request_keyframe=lambda _track: None,  # a file's keyframes are where they are (or re-encoded)
        segment_duration_s=segment_duration_s,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[EncodedFrame] | BaseException | None] = asyncio.Queue(QUEUE_BATCHES)
    stop = False

    def demux() -> None:
        def put(item: list[EncodedFrame] | BaseException | None) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        try:
            source = open_source()
            with contextlib.closing(source):
                for frames in file_frames(source, copy_video, segment_duration_s):
                    if stop:
                        return
                    put(frames)
            put(None)
        except BaseException as exc:  # handed to the event loop, which raises it
            put(exc)

    await recorder.start()
    worker = loop.run_in_executor(None, demux)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                if isinstance(item, MediaRejected):
                    raise item
                raise MediaRejected("视频处理失败", f"the video could not be recorded ({item})") from item
            await recorder.feed(item)
        summary = await recorder.finish()
    except BaseException:
        stop = True
        while not worker.done():  # let the demuxer see `stop` (it may be waiting to put a batch)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)
        await recorder.abandon()
        await discard(store, recorder.local_dir, session_id, recording_id)
        raise
    await worker
    if not summary.angles:
        await discard(store, recorder.local_dir, session_id, recording_id)
        raise MediaRejected("视频中没有可播放的画面", "no playable video came out of the file")
    return summary


async def discard(store: ObjectStore, local_dir: Path, session_id: int, recording_id: str) -> None:
    """Remove what a failed recording of a file left: its spool folder and its objects."""
    await asyncio.to_thread(shutil.rmtree, local_dir, True)
    for info in await store.list(recording_prefix(session_id, recording_id) + "/"):
        await store.delete(info.key)
