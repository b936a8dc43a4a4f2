"""Fragmented-MP4 box reading: split a muxer's output into init + fragments and time each fragment."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

INIT_BOXES = (b"ftyp", b"moov")


def iter_boxes(data: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(type, payload, whole box size) of each complete box in `data`; a trailing partial box is ignored."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        if size < header or pos + size > len(data):
            return
        yield kind, data[pos + header : pos + size], size
        pos += size


@dataclass(frozen=True)
class TrackRun:
    """One track's samples in a fragment, in that track's timescale."""

    base_time: int
    duration: int
    samples: int


@dataclass(frozen=True)
class Fragment:
    data: bytes  # moof + mdat, exactly as the muxer wrote them
    tracks: dict[int, TrackRun]


def trex_defaults(init: bytes) -> dict[int, int]:
    """default_sample_duration per track_ID from moov/mvex/trex."""
    out: dict[int, int] = {}
    for kind, payload, _ in iter_boxes(init):
        if kind != b"moov":
            continue
        for k2, p2, _ in iter_boxes(payload):
            if k2 != b"mvex":
                continue
            for k3, p3, _ in iter_boxes(p2):
                if k3 == b"trex":
                    track_id, _desc, duration = struct.unpack_from(">III", p3, 4)
                    out[track_id] = duration
    return out


def _parse_traf(payload: bytes, defaults: dict[int, int]) -> tuple[int, TrackRun]:
    track_id = 0
    default_duration = 0
    base_time = 0
    duration = 0
    samples = 0
    for kind, box, _ in iter_boxes(payload):
        version, flags = box[0], int.from_bytes(box[1:4], "big")
        if kind == b"tfhd":
            track_id = struct.unpack_from(">I", box, 4)[0]
            default_duration = defaults.get(track_id, 0)
            pos = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            if flags & 0x08:
                default_duration = struct.unpack_from(">I", box, pos)[0]
        elif kind == b"tfdt":
            base_time = struct.unpack_from(">Q" if version == 1 else ">I", box, 4)[0]
        elif kind == b"trun":
            count = struct.unpack_from(">I", box, 4)[0]
            pos = 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
            fields = [f for f in (0x100, 0x200, 0x400, 0x800) if flags & f]
            for _ in range(count):
                if flags & 0x100:
                    duration += struct.unpack_from(">I", box, pos)[0]
                else:
                    duration += default_duration
                pos += 4 * len(fields)
            samples += count
    return track_id, TrackRun(base_time=base_time, duration=duration, samples=samples)


def parse_moof(moof_payload: bytes, defaults: dict[int, int]) -> dict[int, TrackRun]:
    runs: dict[int, TrackRun] = {}
    for kind, payload, _ in iter_boxes(moof_payload):
        if kind == b"traf":
            track_id, run = _parse_traf(payload, defaults)
            runs[track_id] = run
    return runs


class FragmentSplitter:
    """Fed the bytes a fragmenting mp4 muxer writes; hands back the init segment once and each complete
    moof+mdat pair as it is completed. Any other top-level box (mfra at close) is dropped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.init: bytes | None = None
        self._init_parts = bytearray()
        self._defaults: dict[int, int] = {}
        self._moof: bytes | None = None
        self._moof_payload = b""

    def feed(self, data: bytes) -> list[Fragment]:
        self._buf += data
        out: list[Fragment] = []
        consumed = 0
        view = bytes(self._buf)
        for kind, payload, size in iter_boxes(view):
            raw = view[consumed : consumed + size]
            consumed += size
            if kind in INIT_BOXES and self.init is None:
                self._init_parts += raw
                if kind == b"moov":
                    self.init = bytes(self._init_parts)
                    self._defaults = trex_defaults(self.init)
            elif kind == b"moof":
                self._moof, self._moof_payload = raw, payload
            elif kind == b"mdat" and self._moof is not None:
                out.append(Fragment(self._moof + raw, parse_moof(self._moof_payload, self._defaults)))
                self._moof = None
        del self._buf[:consumed]
        return out
