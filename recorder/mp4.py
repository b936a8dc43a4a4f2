"""The downloadable MP4 of an angle, remuxed (no transcode) from its init + .m4s segments."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.layout import Segment, init_name

log = logging.getLogger(__name__)


def _period_files(angle_dir: Path, segments: list[Segment]) -> list[tuple[Path, list[Path]]]:
    periods: dict[int, list[Path]] = {}
    for segment in segments:
        path = angle_dir / segment.name
        if path.exists():
            periods.setdefault(segment.period, []).append(path)
    return [(angle_dir / init_name(p), files) for p, files in sorted(periods.items())]


def build_mp4(angle_dir: Path, segments: list[Segment], out_path: Path) -> int:
    """Write `out_path` (h264 + aac, moov up front) from the angle's segments; returns packets written.
    Timestamps are shifted so the file starts at 0; each period's segments are read as one fragmented mp4."""
    written = 0
    offset_s: Fraction | None = None
    outputs: dict[str, Any] = {}
    last_dts: dict[str, int] = {}
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
                        last_dts[kind] = packet.dts
                        packet.stream = outputs[kind]
                        output.mux(packet)
                        written += 1
            finally:
                joined.unlink(missing_ok=True)
    return written


def _first_time(streams: list[Any]) -> Fraction:
    starts = [s.start_time * s.time_base for s in streams if s.start_time is not None]
    return max(min(starts), Fraction(0)) if starts else Fraction(0)
