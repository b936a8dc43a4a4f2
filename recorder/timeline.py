"""One clock for every track of a recording: RTP pts (unwrapped) mapped through arrival times to ticks."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

RTP_WRAP = 1 << 32


@dataclass
class _Anchor:
    first_pts: int
    offset_s: Fraction
    last_raw: int
    wraps: int = 0


class Timeline:
    """Each track's first frame is placed at its arrival time (relative to the first frame of the recording);
    later frames at that place plus their pts delta, so jitter in arrival times never moves a frame, and
    camera, screen and audio share one time axis. RTP timestamps wrap at 2**32; this unwraps them."""

    def __init__(self) -> None:
        self._origin_s: float | None = None
        self._tracks: dict[str, _Anchor] = {}

    @property
    def origin_s(self) -> float | None:
        return self._origin_s

    def seconds(self, track: str, pts: int, time_base: Fraction, arrival_s: float) -> Fraction:
        """Position of a frame on the recording timeline, in seconds (exact)."""
        if self._origin_s is None:
            self._origin_s = arrival_s
        anchor = self._tracks.get(track)
        if anchor is None:
            # A track that starts first defines 0; one whose mapped arrival is a hair earlier is clamped.
            offset = Fraction(max(arrival_s - self._origin_s, 0.0)).limit_denominator(1_000_000)
            anchor = self._tracks[track] = _Anchor(first_pts=pts, offset_s=offset, last_raw=pts)
        delta = pts - anchor.last_raw
        if delta < -(RTP_WRAP // 2):
            anchor.wraps += 1
        elif delta > RTP_WRAP // 2 and anchor.wraps > 0:
            anchor.wraps -= 1  # a late frame from before the wrap
        anchor.last_raw = pts
        unwrapped = pts + anchor.wraps * RTP_WRAP
        return anchor.offset_s + (unwrapped - anchor.first_pts) * time_base

    def ticks(self, track: str, pts: int, time_base: Fraction, arrival_s: float, rate: int) -> int:
        return round(self.seconds(track, pts, time_base, arrival_s) * rate)


@dataclass
class _CadenceState:
    last_pts: int
    media_s: float = 0.0
    keyframe_s: float | None = None
    requested_s: float | None = None


class KeyframeCadence:
    """When to ask a video publisher for a keyframe: until its first one arrives, then `lead_s` before each
    segment is due, at most once per `min_interval_s` of media time (media time, not wall time, so a
    burst of frames after a stall does not become a burst of requests).

    A segment is due `segment_duration_s` after the last *cut*, and the muxer cuts only at a keyframe at
    least `min_fragment_s` after the previous cut (recorder/media.py): a keyframe nobody asked for sooner
    than that (a viewer's, the publisher's own) starts no segment, so it does not move the next request."""

    def __init__(
        self,
        segment_duration_s: float,
        lead_s: float = 0.2,
        min_interval_s: float = 0.5,
        min_fragment_s: float | None = None,
    ) -> None:
        self._due_s = max(segment_duration_s - lead_s, segment_duration_s / 2)
        self._min_interval_s = min_interval_s
        self._min_fragment_s = (
            min_fragment_s
            if min_fragment_s is not None
            else max(segment_duration_s - 0.5, segment_duration_s * 0.5)
        )
        self._tracks: dict[str, _CadenceState] = {}

    def observe(self, track: str, pts: int, time_base: Fraction, keyframe: bool) -> bool:
        """Account for one frame; True when a keyframe should be requested now."""
        state = self._tracks.get(track)
        if state is None:
            state = self._tracks[track] = _CadenceState(last_pts=pts)
        else:
            state.media_s += (
                float(((pts - state.last_pts) % RTP_WRAP) * time_base) if pts != state.last_pts else 0
            )
            state.last_pts = pts
        now = state.media_s
        if keyframe:
            if state.keyframe_s is None or now - state.keyframe_s >= self._min_fragment_s:
                state.keyframe_s = now  # the muxer cuts here
            return False
        if state.keyframe_s is not None and now - state.keyframe_s < self._due_s:
            return False
        if state.requested_s is not None and now - state.requested_s < self._min_interval_s:
            return False
        state.requested_s = now
        return True
