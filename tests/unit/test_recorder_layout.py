"""Pure parts of the recorder: keys and names, playlist text, the manifest, SPS reading, fMP4 boxes."""

from __future__ import annotations

import struct
from fractions import Fraction

import pytest

from recorder.fmp4 import FragmentSplitter
from recorder.h264 import find_sps, has_idr, parse_sps
from recorder.layout import (
    AngleTrack,
    Manifest,
    Segment,
    angle_key,
    init_name,
    master_playlist,
    media_playlist,
    segment_name,
)
from recorder.timeline import KeyframeCadence, Timeline

# SPS of a libx264 constrained-baseline 320x180 stream (cropped from 320x192 macroblocks).
SPS_320x180 = bytes.fromhex("6742c00dda05067e7840000003004000000f23c50aa8")


@pytest.mark.parametrize(
    ("seq", "name"), [(1, "seg_000001.m4s"), (42, "seg_000042.m4s"), (123456, "seg_123456.m4s")], ids=str
)
def test_segment_names_sort_in_recording_order(seq: int, name: str) -> None:
    assert segment_name(seq) == name


def test_first_period_uses_init_mp4_and_later_ones_are_numbered() -> None:
    assert [init_name(p) for p in (1, 2, 10)] == ["init.mp4", "init_002.mp4", "init_010.mp4"]
    assert angle_key(7, "r1", "camera", "init.mp4") == "hls/7/r1/camera/init.mp4"


def segs(*durations: float, period_of: dict[int, int] | None = None) -> list[Segment]:
    out, start = [], 0.0
    for i, d in enumerate(durations, start=1):
        out.append(Segment(seq=i, period=(period_of or {}).get(i, 1), start_s=start, duration_s=d, size=100))
        start += d
    return out


def test_live_playlist_has_no_endlist_and_vod_playlist_has_both_vod_tags() -> None:
    live = media_playlist(segs(2.0, 2.1), 2.0, final=False)
    vod = media_playlist(segs(2.0, 2.1), 2.0, final=True)
    assert "#EXT-X-ENDLIST" not in live
    assert "#EXT-X-PLAYLIST-TYPE" not in live
    assert vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    assert vod.count('#EXT-X-MAP:URI="init.mp4"') == 1
    assert "#EXTINF:2.100,\nseg_000002.m4s" in vod


@pytest.mark.parametrize(
    ("durations", "expected"), [((2.0, 1.9), 2), ((2.0, 2.6), 3), ((0.4,), 2)], ids=["even", "long", "short"]
)
def test_target_duration_covers_the_longest_rounded_segment(
    durations: tuple[float, ...], expected: int
) -> None:
    assert f"#EXT-X-TARGETDURATION:{expected}\n" in media_playlist(segs(*durations), 2.0, final=True)


def test_new_period_gets_discontinuity_and_its_own_map() -> None:
    text = media_playlist(segs(2, 2, 2, period_of={3: 2}), 2.0, final=True)
    assert text.index("#EXT-X-DISCONTINUITY") < text.index('#EXT-X-MAP:URI="init_002.mp4"')
    assert text.index('#EXT-X-MAP:URI="init_002.mp4"') < text.index("seg_000003.m4s")


def test_segment_after_a_dropped_one_is_marked_discontinuous() -> None:
    segments = segs(2, 2)
    segments[1] = Segment(2, 1, 4.0, 2.0, 100, discontinuity=True)
    text = media_playlist(segments, 2.0, final=True)
    assert "#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg_000002.m4s" in text


def test_master_lists_angles_camera_first_and_skips_empty_ones() -> None:
    camera = AngleTrack("camera", width=320, height=180, segments=segs(2))
    screen = AngleTrack("screen", segments=segs(2))
    empty = master_playlist([AngleTrack("screen")])
    text = master_playlist([screen, camera])
    assert text.index('NAME="camera",DEFAULT=YES') < text.index('NAME="screen",DEFAULT=NO')
    assert "RESOLUTION=320x180" in text
    assert "camera/index.m3u8" in empty or "NAME=" not in empty


def test_manifest_round_trips_through_json() -> None:
    m = Manifest(7, "r1", 2.0, angles={"camera": AngleTrack("camera", segments=segs(2, 1.5))})
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert back.angles["camera"].duration_s == pytest.approx(3.5)


def test_sps_gives_cropped_size_and_codec_string() -> None:
    info = parse_sps(SPS_320x180)
    assert (info.width, info.height, info.codec) == (320, 180, "avc1.42c00d")


def test_sps_and_idr_are_found_in_an_annex_b_access_unit() -> None:
    au = b"\x00\x00\x00\x01" + SPS_320x180 + b"\x00\x00\x01\x68\xce\x0f\xc8" + b"\x00\x00\x01\x65\x88\x84"
    assert find_sps(au) == SPS_320x180
    assert has_idr(au)
    assert not has_idr(b"\x00\x00\x01\x41\x9a")


def test_truncated_sps_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="SPS"):
        parse_sps(SPS_320x180[:5])


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, body: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + body)


def test_splitter_returns_init_once_and_each_fragment_with_its_timing_even_when_fed_in_pieces() -> None:
    trex = full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 3000, 0, 0))
    init = box(b"ftyp", b"iso6") + box(b"moov", box(b"mvex", trex))
    traf = (
        full(b"tfhd", 0, 0x020000, struct.pack(">I", 1))
        + full(b"tfdt", 1, 0, struct.pack(">Q", 90_000))
        + full(b"trun", 0, 0x000001, struct.pack(">Ii", 4, 0))  # 4 samples, default duration from trex
    )
    fragment = box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", 1)) + box(b"traf", traf)) + box(
        b"mdat", b"x" * 10
    )
    stream = init + fragment + fragment + box(b"mfra", b"")
    splitter = FragmentSplitter()
    got = []
    for i in range(0, len(stream), 7):
        got += splitter.feed(stream[i : i + 7])
    assert splitter.init == init
    assert len(got) == 2
    assert got[0].data == fragment
    run = got[0].tracks[1]
    assert (run.base_time, run.duration, run.samples) == (90_000, 12_000, 4)


def test_timeline_places_tracks_by_first_arrival_and_unwraps_rtp_time() -> None:
    t = Timeline()
    assert t.seconds("audio", 1000, Fraction(1, 48_000), 100.0) == 0
    near_wrap = (1 << 32) - 45_000
    assert t.seconds("screen", near_wrap, Fraction(1, 90_000), 101.0) == 1
    # 1 s later the RTP clock wrapped; arrival jitter (100.7) does not move the frame.
    assert t.seconds("screen", 45_000, Fraction(1, 90_000), 100.7) == 2
    assert t.ticks("audio", 1000 + 48_000, Fraction(1, 48_000), 999.0, 48_000) == 48_000


def test_keyframes_are_requested_until_one_arrives_then_just_before_each_segment() -> None:
    cadence = KeyframeCadence(2.0, lead_s=0.2, min_interval_s=0.5)
    tb = Fraction(1, 90_000)
    assert cadence.observe("camera", 0, tb, keyframe=False)  # no keyframe yet: ask
    assert not cadence.observe("camera", 3000, tb, keyframe=False)  # asked 33 ms ago
    assert not cadence.observe("camera", 6000, tb, keyframe=True)
    asks = [cadence.observe("camera", 6000 + n * 3000, tb, keyframe=False) for n in range(1, 61)]
    assert asks.index(True) + 1 == 54  # the 54th frame, 1.8 s after the keyframe
    assert asks.count(True) == 1  # then not again within min_interval_s


def test_a_keyframe_too_soon_to_start_a_segment_does_not_delay_the_next_request() -> None:
    """The muxer cuts at a keyframe 1.5 s or more after the last cut: an unasked keyframe 1.1 s after a
    cut starts no segment, so the next request still comes 1.8 s after the cut, not 1.8 s after it."""
    cadence = KeyframeCadence(2.0, lead_s=0.2, min_interval_s=0.5)
    tb = Fraction(1, 90_000)
    cadence.observe("camera", 0, tb, keyframe=True)  # a cut at 0
    frames = range(1, 61)  # 30 fps for 2 s
    asks = [cadence.observe("camera", n * 3000, tb, keyframe=n == 33) for n in frames]  # keyframe at 1.1 s
    assert asks.index(True) + 1 == 54, "asked 1.8 s after the cut"
