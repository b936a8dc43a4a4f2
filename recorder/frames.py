"""The encoded-frame interface between the live server and the recorder."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded frame of a published track, exactly as the publisher sent it."""

    track: str  # "camera" | "screen" | "audio"
    codec: str  # "h264" | "vp8" | "opus"
    # H.264: one Annex-B access unit (SPS/PPS in band before IDRs); VP8: one frame; Opus: one packet
    data: bytes
    pts: int  # in time_base units (RTP clock: 90 kHz video, 48 kHz audio)
    time_base: Fraction
    keyframe: bool
    arrival_s: float  # sender-side wall clock for this frame (RTCP-SR mapped when available) — aligns tracks
