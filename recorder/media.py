"""The PyAV side of a recording: Opus (or raw PCM from a file) → AAC once, VP8 → H.264 once, and one
fragmenting mp4 muxer per angle whose fragments become HLS segments. Everything here runs on the
recording's single worker thread."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.fmp4 import Fragment, FragmentSplitter
from recorder.frames import EncodedFrame
from recorder.h264 import SpsInfo, find_sps, parse_sps
from recorder.layout import Segment, init_name, segment_name
from recorder.timeline import Timeline

log = logging.getLogger(__name__)

VIDEO_RATE = 90_000
AUDIO_RATE = 48_000
AAC_FRAME = 1024
VIDEO_TRACK_ID = 1  # the mp4 muxer numbers tracks from 1 in stream order; video is added first
AUDIO_BACKLOG = 64  # AAC packets (~1.4 s) kept to seed an angle that opens after its audio was encoded
SILENCE_AFTER_S = 1.0  # no audio for this long behind the video: fill silence so the muxer is not starved
# No video on an angle for longer than this (a publisher reconnecting, a network stall, a screen share
# stopped) ends its period: the gap becomes a segment boundary with EXT-X-DISCONTINUITY instead of a long
# frozen frame inside one segment. Above 1 s: a static screen share still sends about a frame a second.
GAP_S = 1.5
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+delay_moov+frag_discont"


@dataclass(frozen=True)
class ClosedSegment:
    """A segment the worker has written to the spool, plus the init it needs when it opens a period."""

    angle: str
    segment: Segment
    path: Path
    init_path: Path | None
    width: int
    height: int
    codecs: str


@dataclass(frozen=True)
class AacPacket:
    data: bytes
    pts: int  # 1/48000
    duration: int


class _Sink:
    """The file object the mp4 muxer writes to: bytes go straight into a FragmentSplitter."""

    def __init__(self) -> None:
        self.splitter = FragmentSplitter()
        self.fragments: list[Fragment] = []

    def write(self, data: bytes) -> int:
        self.fragments.extend(self.splitter.feed(bytes(data)))
        return len(data)

    def seekable(self) -> bool:
        return False


class AudioTranscoder:
    """Decodes Opus and encodes AAC-LC exactly once per recording; keeps the audio sample clock continuous
    (gaps become silence, duplicates and late packets are dropped) so AAC packets sit on the timeline."""

    def __init__(self) -> None:
        self._decoder: Any = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = AUDIO_RATE
        self._decoder.layout = "stereo"
        self._encoder: Any = av.CodecContext.create("aac", "w")
        self._encoder.sample_rate = AUDIO_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "fltp"
        self._encoder.bit_rate = 96_000
        self._encoder.time_base = Fraction(1, AUDIO_RATE)
        self._encoder.open()
        self.next_pts: int | None = None
        self.late_packets = 0
        self._to_fltp: Any = None

    def opus(self, data: bytes, pts: int) -> list[AacPacket]:
        out: list[AacPacket] = []
        if self.next_pts is not None:
            if pts < self.next_pts - AAC_FRAME // 2:
                self.late_packets += 1
                return out
            if pts > self.next_pts + AAC_FRAME:
                out += self.silence_until(pts)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = Fraction(1, AUDIO_RATE)
        try:
            frames = self._decoder.decode(packet)
        except av.error.InvalidDataError:
            log.debug("undecodable opus packet at pts=%d", pts)
            return out
        for frame in frames:
            out += self._encode(frame, pts)
        return out

    def pcm(self, data: bytes, pts: int) -> list[AacPacket]:
        """Raw audio (16-bit interleaved stereo at 48 kHz: `pcm_s16le` frames of a file being recorded,
        recorder.ingest) → AAC, on the same continuous sample clock as Opus."""
        out: list[AacPacket] = []
        if self.next_pts is not None:
            if pts < self.next_pts - AAC_FRAME // 2:
                self.late_packets += 1
                return out
            if pts > self.next_pts + AAC_FRAME:
                out += self.silence_until(pts)
        samples = len(data) // 4
        if samples == 0:
            return out
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        plane = frame.planes[0]
        raw = data[: samples * 4]
        plane.update(raw + bytes(plane.buffer_size - len(raw)))  # the plane may be padded for alignment
        frame.sample_rate = AUDIO_RATE
        # The encoder takes one sample format (silence and Opus come as fltp): convert, same rate.
        if self._to_fltp is None:
            self._to_fltp = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        for converted in self._to_fltp.resample(frame):
            out += self._encode(converted, pts)
        return out

    def silence_until(self, pts: int) -> list[AacPacket]:
        # With no audio yet (no microphone at all, a file without sound) the silence starts at 0: from
        # `pts` it never started, the muxer waited for audio forever and the angle was one segment.
        start = self.next_pts if self.next_pts is not None else 0
        out: list[AacPacket] = []
        while start < pts:
            samples = min(960, pts - start)
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = AUDIO_RATE
            out += self._encode(frame, start)
            start += samples
        return out

    def _encode(self, frame: Any, pts: int) -> list[AacPacket]:
        frame.pts = self.next_pts if self.next_pts is not None else pts
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.next_pts = frame.pts + frame.samples
        return [self._packet(p) for p in self._encoder.encode(frame)]

    def flush(self) -> list[AacPacket]:
        if self.next_pts is None:
            return []
        return [self._packet(p) for p in self._encoder.encode(None)]

    @staticmethod
    def _packet(p: Any) -> AacPacket:
        return AacPacket(bytes(p), int(p.pts), int(p.duration or AAC_FRAME))


class H264Encoder:
    """Decoded pictures → H.264 (libx264 ultrafast/zerolatency, constrained baseline: no B-frames, so pts
    is dts), with an IDR forced every `keyframe_interval_s`, so the segmenter never waits for a keyframe.
    A new picture size opens a new encoder (a new SPS: the angle writer starts a new period)."""

    def __init__(self, keyframe_interval_s: float) -> None:
        self._encoder: Any = None
        self._interval = round(keyframe_interval_s * VIDEO_RATE)
        self._last_idr: int | None = None

    def _open(self, width: int, height: int) -> Any:
        enc: Any = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = width, height
        enc.pix_fmt = "yuv420p"
        enc.time_base = Fraction(1, VIDEO_RATE)
        enc.framerate = 30
        enc.options = {
            "profile": "baseline",
            "preset": "ultrafast",
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": "repeat-headers=1:scenecut=0:keyint=600",
        }
        return enc

    def encode(self, frame: Any, pts: int) -> list[tuple[bytes, int, bool]]:
        """One yuv420p picture at `pts` (90 kHz) → (Annex-B access unit, pts, keyframe) of what the
        encoder gives back."""
        out: list[tuple[bytes, int, bool]] = []
        if self._encoder is None or (frame.width, frame.height) != (
            self._encoder.width,
            self._encoder.height,
        ):
            out += self.flush()
            self._encoder = self._open(frame.width, frame.height)
            self._last_idr = None
        frame.pts = pts
        frame.time_base = Fraction(1, VIDEO_RATE)
        if self._last_idr is None or pts - self._last_idr >= self._interval:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_idr = pts
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        out += [(bytes(p), int(p.pts), bool(p.is_keyframe)) for p in self._encoder.encode(frame)]
        return out

    def flush(self) -> list[tuple[bytes, int, bool]]:
        if self._encoder is None:
            return []
        out = [(bytes(p), int(p.pts), bool(p.is_keyframe)) for p in self._encoder.encode(None)]
        self._encoder = None
        return out


class Vp8Transcoder:
    """VP8 → H.264 through `H264Encoder`, once per lecture."""

    def __init__(self, keyframe_interval_s: float) -> None:
        self._decoder: Any = av.CodecContext.create("vp8", "r")
        self._h264 = H264Encoder(keyframe_interval_s)
        self._started = False

    def frame(self, data: bytes, pts: int, keyframe: bool) -> list[tuple[bytes, int, bool]]:
        if not self._started and not keyframe:
            return []
        self._started = True
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = Fraction(1, VIDEO_RATE)
        out: list[tuple[bytes, int, bool]] = []
        try:
            frames = self._decoder.decode(packet)
        except av.error.InvalidDataError:
            log.debug("undecodable vp8 frame at pts=%d", pts)
            return out
        for frame in frames:
            out += self._h264.encode(frame, pts)
        return out

    def flush(self) -> list[tuple[bytes, int, bool]]:
        return self._h264.flush()


class AngleWriter:
    """One angle (camera or screen): H.264 access units + the shared AAC packets → init + .m4s files.

    A period is one mp4 muxer with one init segment; the muxer cuts a fragment at the first video keyframe
    after `min_fragment_s`, and each fragment is one HLS segment. A new SPS size or profile starts a new
    period (new init, EXT-X-DISCONTINUITY), and so does the first keyframe after a gap: `end_if_gap` ends
    the period when the angle's video has been missing for more than `gap_s`."""

    def __init__(self, angle: str, out_dir: Path, min_fragment_s: float, gap_s: float = GAP_S) -> None:
        self.angle = angle
        self._dir = out_dir / angle
        self._dir.mkdir(parents=True, exist_ok=True)
        self._min_fragment_us = int(min_fragment_s * 1_000_000)
        self._gap_ticks = round(gap_s * VIDEO_RATE)
        self.gaps = 0
        self._container: Any = None
        self._sink: _Sink | None = None
        self._video: Any = None
        self._audio: Any = None
        self._sps: SpsInfo | None = None
        self._period = 0
        self._seq = 0
        self._period_seq = 0  # segments closed in the current period; the first one carries the init
        self._last_dts: int | None = None
        self._last_audio_pts: int | None = None
        self._frame_ticks = VIDEO_RATE // 30
        self.start_ticks: int | None = None
        self.dropped_frames = 0

    @property
    def is_open(self) -> bool:
        return self._container is not None

    def end_if_gap(self, position: int) -> list[ClosedSegment]:
        """Media at `position` (90 kHz) is arriving: if this angle's video stopped more than `gap_s` before
        it, end the period now, so that its last segment ends with the last frame before the gap and no
        audio of the gap (or after it) goes into it. The next keyframe opens a new period."""
        if self._container is None or self._last_dts is None or position - self._last_dts <= self._gap_ticks:
            return []
        self.gaps += 1
        log.info(
            "angle=%s no video for %.1f s: period %d ends, the next keyframe starts a new one",
            self.angle,
            (position - self._last_dts) / VIDEO_RATE,
            self._period,
        )
        return self.close()

    def video(
        self, access_unit: bytes, dts: int, keyframe: bool, audio_backlog: Sequence[AacPacket]
    ) -> list[ClosedSegment]:
        out = self.end_if_gap(dts)
        if keyframe:
            sps = find_sps(access_unit)
            info = _sps_info(sps) if sps else None
            # A period opens at the first keyframe, after a gap, and when the picture format changes.
            if info is not None and (
                self._container is None or self._sps is None or _period_key(info) != _period_key(self._sps)
            ):
                out += self.close()
                self._open(info, dts, audio_backlog)
        if self._container is None:
            self.dropped_frames += 1  # nothing decodable before the first IDR with its SPS
            return out
        if self._last_dts is not None:
            if dts <= self._last_dts:
                self.dropped_frames += 1
                return out
            self._frame_ticks = dts - self._last_dts
        self._last_dts = dts
        packet = av.Packet(access_unit)
        packet.pts = packet.dts = dts
        packet.duration = self._frame_ticks
        packet.time_base = Fraction(1, VIDEO_RATE)
        packet.is_keyframe = keyframe
        packet.stream = self._video
        self._container.mux(packet)
        return out + self._collect()

    def audio(self, packets: Sequence[AacPacket]) -> list[ClosedSegment]:
        if self._container is None:
            return []
        for p in packets:
            self._mux_audio(p)
        return self._collect()

    def _mux_audio(self, p: AacPacket) -> None:
        if self._last_audio_pts is not None and p.pts <= self._last_audio_pts:
            return
        self._last_audio_pts = p.pts
        packet = av.Packet(p.data)
        packet.pts = packet.dts = p.pts
        packet.duration = p.duration
        packet.time_base = Fraction(1, AUDIO_RATE)
        packet.stream = self._audio
        self._container.mux(packet)

    def _open(self, info: SpsInfo, dts: int, audio_backlog: Sequence[AacPacket]) -> None:
        self._period += 1
        self._sps = info
        self._sink = _Sink()
        self._container = av.open(
            self._sink,
            "w",
            format="mp4",
            options={
                "movflags": MOVFLAGS,
                "min_frag_duration": str(self._min_fragment_us),
                "use_editlist": "1",
            },
        )
        self._video = self._container.add_mux_stream("h264", width=info.width, height=info.height)
        self._video.time_base = Fraction(1, VIDEO_RATE)
        # An AAC encoder stream is added only so the muxer gets the AudioSpecificConfig; the packets muxed
        # into it come from the recording's one shared AudioTranscoder.
        self._audio = self._container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        self._audio.time_base = Fraction(1, AUDIO_RATE)
        self._last_dts = None
        self._last_audio_pts = None
        self._period_seq = 0
        if self.start_ticks is None:
            self.start_ticks = dts
        start_audio = dts * AUDIO_RATE // VIDEO_RATE - AAC_FRAME
        for p in audio_backlog:
            if p.pts >= start_audio:
                self._mux_audio(p)
        log.info("angle=%s period=%d %dx%d %s", self.angle, self._period, info.width, info.height, info.codec)

    def close(self) -> list[ClosedSegment]:
        if self._container is None:
            return []
        self._container.close()
        out = self._collect()
        self._container = self._sink = self._video = self._audio = None
        return out

    def _collect(self) -> list[ClosedSegment]:
        sink = self._sink
        if sink is None or not sink.fragments:
            return []
        out: list[ClosedSegment] = []
        for fragment in sink.fragments:
            init_path: Path | None = None
            if self._period_seq == 0 and sink.splitter.init is not None:
                init_path = self._dir / init_name(self._period)
                init_path.write_bytes(sink.splitter.init)
            out.append(self._segment(fragment, init_path))
        sink.fragments.clear()
        return out

    def _segment(self, fragment: Fragment, init_path: Path | None) -> ClosedSegment:
        self._period_seq += 1
        self._seq += 1
        run = fragment.tracks.get(VIDEO_TRACK_ID) or next(iter(fragment.tracks.values()))
        timescale = self._video.time_base.denominator if self._video is not None else VIDEO_RATE
        segment = Segment(
            seq=self._seq,
            period=self._period,
            start_s=run.base_time / timescale,
            duration_s=run.duration / timescale,
            size=len(fragment.data),
        )
        path = self._dir / segment_name(self._seq)
        path.write_bytes(fragment.data)
        assert self._sps is not None
        return ClosedSegment(
            angle=self.angle,
            segment=segment,
            path=path,
            init_path=init_path,
            width=self._sps.width,
            height=self._sps.height,
            codecs=f"{self._sps.codec},mp4a.40.2",
        )


def _sps_info(sps: bytes) -> SpsInfo | None:
    try:
        return parse_sps(sps)
    except ValueError:
        log.warning("unreadable SPS (%d bytes); waiting for the next keyframe", len(sps))
        return None


def _period_key(info: SpsInfo) -> tuple[int, int, str]:
    return (info.width, info.height, info.codec)


class MediaPipeline:
    """Routes a recording's frames: audio → AAC → every open angle; camera/screen video → its angle
    (through the VP8 transcoder when needed). Not thread-safe by design: one worker thread owns it."""

    def __init__(self, out_dir: Path, segment_duration_s: float) -> None:
        self._out_dir = out_dir
        self._segment_s = segment_duration_s
        # Keyframes are requested a little before the target, so cut at the first one after this:
        self._min_fragment_s = max(segment_duration_s - 0.5, segment_duration_s * 0.5)
        self._timeline = Timeline()
        self._audio = AudioTranscoder()
        self._backlog: deque[AacPacket] = deque(maxlen=AUDIO_BACKLOG)
        self._angles: dict[str, AngleWriter] = {}
        self._vp8: dict[str, Vp8Transcoder] = {}
        self._video_end: int = 0  # furthest video dts seen, 90 kHz

    @property
    def dropped_frames(self) -> int:
        return sum(a.dropped_frames for a in self._angles.values())

    def process(self, frames: Sequence[EncodedFrame]) -> list[ClosedSegment]:
        out: list[ClosedSegment] = []
        for frame in frames:
            try:
                out += self._frame(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                # One bad frame must not end the lecture's recording; the next keyframe resynchronises.
                log.warning("track=%s pts=%d frame skipped: %s", frame.track, frame.pts, exc)
        return out

    def _frame(self, frame: EncodedFrame) -> list[ClosedSegment]:
        if frame.track == "audio":
            pts = self._timeline.ticks("audio", frame.pts, frame.time_base, frame.arrival_s, AUDIO_RATE)
            # Before the transcoder fills a gap in the audio with silence: an angle whose video stopped
            # (with the audio, when the publisher went away) ends its period first.
            ended = [c for w in self._angles.values() for c in w.end_if_gap(pts * VIDEO_RATE // AUDIO_RATE)]
            if frame.codec == "pcm_s16le":
                return ended + self._to_angles(self._audio.pcm(frame.data, pts))
            return ended + self._to_angles(self._audio.opus(frame.data, pts))
        if frame.track not in ("camera", "screen"):
            log.debug("ignoring track=%s", frame.track)
            return []
        dts = self._timeline.ticks(frame.track, frame.pts, frame.time_base, frame.arrival_s, VIDEO_RATE)
        self._video_end = max(self._video_end, dts)
        writer = self._angles.get(frame.track)
        if writer is None:
            writer = self._angles[frame.track] = AngleWriter(frame.track, self._out_dir, self._min_fragment_s)
        # A gap ends the period before the silence that keeps the audio flowing covers it.
        out = writer.end_if_gap(dts)
        out += self._keep_audio_flowing(dts)
        if frame.codec == "vp8":
            vp8 = self._vp8.setdefault(frame.track, Vp8Transcoder(self._segment_s))
            for data, pts, key in vp8.frame(frame.data, dts, frame.keyframe):
                out += writer.video(data, pts, key, self._backlog)
        else:
            out += writer.video(frame.data, dts, frame.keyframe, self._backlog)
        return out

    def _keep_audio_flowing(self, video_dts: int) -> list[ClosedSegment]:
        """A lecture without a microphone (or a long mute with no packets) still gets a continuous AAC
        track, so the muxer's interleaving never waits on audio that will not come."""
        video_pts = video_dts * AUDIO_RATE // VIDEO_RATE
        behind = round(SILENCE_AFTER_S * AUDIO_RATE)
        if self._audio.next_pts is None or self._audio.next_pts < video_pts - behind:
            if self._audio.next_pts is None and video_pts < behind:
                return []
            return self._to_angles(self._audio.silence_until(video_pts - behind // 2))
        return []

    def _to_angles(self, packets: list[AacPacket]) -> list[ClosedSegment]:
        if not packets:
            return []
        self._backlog.extend(packets)
        out: list[ClosedSegment] = []
        for writer in self._angles.values():
            out += writer.audio(packets)
        return out

    def close(self) -> list[ClosedSegment]:
        out: list[ClosedSegment] = []
        for track, vp8 in self._vp8.items():
            writer = self._angles[track]
            for data, pts, key in vp8.flush():
                out += writer.video(data, pts, key, self._backlog)
        out += self._to_angles(self._audio.flush())
        for writer in self._angles.values():
            out += writer.close()
        return out
