"""The downloadable MP4 of an angle, remuxed (no transcode) from its init + .m4s segments."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.layout import Segment, init_name

log = logging.getLogger(__name__)

AAC_FRAME = 1024  # samples per AAC-LC frame


def _period_files(angle_dir: Path, segments: list[Segment]) -> list[tuple[Path, list[Path]]]:
    periods: dict[int, list[Path]] = {}
    for segment in segments:
        path = angle_dir / segment.name
        if path.exists():
            periods.setdefault(segment.period, []).append(path)
    return [(angle_dir / init_name(p), files) for p, files in sorted(periods.items())]


def build_mp4(angle_dir: Path, segments: list[Segment], out_path: Path) -> int:
    """Write `out_path` (h264 + aac, moov up front) from the angle's segments; returns packets written.
    Timestamps are shifted so the file starts at 0; each period's segments are read as one fragmented mp4.
    A gap between periods (the publisher was away) stays a gap on the timeline: the last picture before it
    lasts until the first after it, and the audio is filled with silence, so that players keep sound and
    picture aligned after it (a hole in the audio timestamps is not played as time passing)."""
    written = 0
    offset_s: Fraction | None = None
    outputs: dict[str, Any] = {}
    last_dts: dict[str, int] = {}
    audio_end: int | None = None  # where the audio written so far ends, in its time base
    silence: _Silence | None = None
    with av.open(str(out_path), "w", format="mp4", options={"movflags": "faststart"}) as output:
        for init_path, files in _period_files(angle_dir, segments):
            joined = out_path.with_suffix(".period.mp4")
            with joined.open("wb") as f:
                f.write(init_path.read_bytes())
                for path in files:
                    f.write(path.read_bytes())
            try:
                with av.open(str(joined)) as source:
                    streams = [s for s in source.streams if s.type in ("video", "audio")]
                    if offset_s is None:
                        offset_s = _first_time(streams)
                    for stream in streams:
                        if stream.type not in outputs:
                            outputs[stream.type] = output.add_stream_from_template(stream)
                    for packet in source.demux(streams):
                        if packet.dts is None or packet.stream.type not in outputs:
                            continue
                        kind = packet.stream.type
                        shift = round(offset_s / packet.time_base)
                        packet.dts -= shift
                        packet.pts = packet.pts - shift if packet.pts is not None else packet.dts
                        if kind in last_dts and packet.dts <= last_dts[kind]:
                            continue  # the overlap at a period boundary
                        if kind == "audio":
                            duration = int(packet.duration or AAC_FRAME)
                            if audio_end is not None and packet.dts - audio_end >= duration:
                                silence = silence or _Silence(packet.stream)
                                fillers = silence.packets(audio_end, packet.dts, duration, packet.time_base)
                                for filler in fillers:
                                    filler.stream = outputs[kind]
                                    output.mux(filler)
                                    written += 1
                            audio_end = packet.dts + duration
                        last_dts[kind] = packet.dts
                        packet.stream = outputs[kind]
                        output.mux(packet)
                        written += 1
            finally:
                joined.unlink(missing_ok=True)
    return written


class _Silence:
    """AAC packets of silence in the format of an audio stream (encoded once), to fill a gap."""

    def __init__(self, stream: Any) -> None:
        ctx = stream.codec_context
        encoder: Any = av.CodecContext.create("aac", "w")
        encoder.sample_rate = ctx.sample_rate
        encoder.layout = ctx.layout.name
        encoder.format = "fltp"
        encoder.time_base = Fraction(1, ctx.sample_rate)
        encoder.open()
        encoded: list[bytes] = []
        for i in range(4):
            frame = av.AudioFrame(format="fltp", layout=ctx.layout.name, samples=AAC_FRAME)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = ctx.sample_rate, i * AAC_FRAME
            encoded += [bytes(p) for p in encoder.encode(frame)]
        encoded += [bytes(p) for p in encoder.encode(None)]
        # Any packet past the encoder's priming is a whole frame of silence; the same bytes repeat.
        self._data = encoded[len(encoded) // 2]

    def packets(self, start: int, end: int, duration: int, time_base: Fraction) -> list[Any]:
        out = []
        for dts in range(start, end - duration + 1, duration):
            packet = av.Packet(self._data)
            packet.pts = packet.dts = dts
            packet.duration = duration
            packet.time_base = time_base
            out.append(packet)
        return out


def _first_time(streams: list[Any]) -> Fraction:
    starts = [s.start_time * s.time_base for s in streams if s.start_time is not None]
    return max(min(starts), Fraction(0)) if starts else Fraction(0)
